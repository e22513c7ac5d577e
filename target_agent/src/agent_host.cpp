// DeviceHost over the protected store: attempts, confirmations and commits
// are durable (fsync'd) before the session is allowed to go on.
#include "credprov/agent/agent_host.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace credprov::agent {

AgentHost::AgentHost(Store& store, BackoffPolicy policy, Clock clock, std::string software,
                     DiagnosticRunner diagnostics, ConsentPolicy consent)
    : store_(store),
      policy_(policy),
      clock_(std::move(clock)),
      software_(std::move(software)),
      diagnostics_(std::move(diagnostics)),
      consent_(std::move(consent)) {}

Status AgentHost::consent(OwnerCommandKind kind) {
    const auto& need = consent_.required_for;
    if (std::find(need.begin(), need.end(), kind) == need.end()) return {};
    struct stat st {};
    const bool present = ::stat(consent_.file.c_str(), &st) == 0 && S_ISREG(st.st_mode);
    const std::uint64_t now = clock_();
    const auto made = static_cast<std::uint64_t>(st.st_mtime);
    if (!present || made > now || now - made > consent_.max_age_s) {
        return make_error(ErrorCode::not_authorised, "local consent missing: this device requires " +
                                                         consent_.file.string() + " to be created within " +
                                                         std::to_string(consent_.max_age_s) + " s before the request");
    }
    // One consent, one command.
    if (::unlink(consent_.file.c_str()) != 0) {
        return make_error(ErrorCode::storage, "cannot consume the consent file " + consent_.file.string());
    }
    return {};
}

Result<AttemptDecision> AgentHost::record_pairing_attempt() {
    const std::uint64_t now = clock_();
    const AgentState& current = store_.state();
    const AttemptDecision decision = decide_attempt(policy_, current.attempts, now);
    if (!decision.allowed) {
        if (now < current.attempts.last_attempt_unix) {
            // The clock went backwards: restart the wait from now, durably,
            // so that it can ever end.
            AgentState next = current.clone();
            next.attempts.last_attempt_unix = now;
            if (auto s = store_.commit(next); !s) return s.error();
        }
        return decision;
    }
    AgentState next = current.clone();
    ++next.attempts.unconfirmed;
    next.attempts.last_attempt_unix = now;
    if (auto s = store_.commit(next); !s) return s.error();
    return decision;
}

Status AgentHost::confirm_pairing() {
    if (store_.state().attempts.unconfirmed == 0) return {};
    AgentState next = store_.state().clone();
    next.attempts.unconfirmed = 0;
    return store_.commit(next);
}

const DeviceRecord& AgentHost::record() const { return store_.state().record; }

Status AgentHost::commit(const DeviceRecord& next_record, const SubscriberKeys* keys) {
    AgentState next = store_.state().clone();
    next.record = next_record;
    if (keys != nullptr) {
        next.k.emplace();
        next.opc.emplace();
        std::memcpy(next.k->data(), keys->k.data(), 16);
        std::memcpy(next.opc->data(), keys->opc.data(), 16);
    }
    if (!next_record.credential) {
        next.k.reset();  // Secret<> wipes on destruction
        next.opc.reset();
        next.usim = UsimState{};
    }
    return store_.commit(next);
}

std::vector<DiagnosticResult> AgentHost::run_diagnostics(const std::vector<Diagnostic>& which) {
    std::vector<DiagnosticResult> out;
    out.reserve(which.size());
    for (auto d : which) out.push_back(diagnostics_(d));
    return out;
}

DeviceIdentity identity_from_state(const AgentState& state) {
    DeviceIdentity id = DeviceIdentity::from_seeds(state.identity_seed.span(), state.box_seed.span());
    id.attestation = state.attestation;
    return id;
}

AgentState new_device_state(const DeviceTrust& trust, std::size_t code_digits) {
    AgentState s;
    crypto::random_bytes(s.identity_seed.span());
    crypto::random_bytes(s.box_seed.span());
    const SetupCode code = SetupCode::random(code_digits);
    s.setup_code = SecretBytes(code.prs().data(), code.prs().size());
    s.trust = trust;
    return s;
}

}  // namespace credprov::agent
