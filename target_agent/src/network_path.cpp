// Attach check and deprovisioning notices over the backend's REST API.
#include "credprov/agent/network_path.hpp"

#include <sodium.h>

#include <nlohmann/json.hpp>

#include "credprov/agent/agent_host.hpp"
#include "credprov/aka/usim.hpp"

namespace credprov::agent {
namespace {

using json = nlohmann::json;

Error backend_error(const std::string& what, const BackendClient::Answer& a) {
    // The backend's problem detail is secret-free by contract; quote it.
    std::string detail;
    const json body = json::parse(a.body, nullptr, false);
    if (body.is_object() && body.contains("detail") && body["detail"].is_string()) detail = ": " + body["detail"].get<std::string>();
    return make_error(ErrorCode::io, what + " failed with HTTP " + std::to_string(a.status) + detail);
}

Result<json> object_of(const BackendClient::Answer& a, const std::string& what) {
    json body = json::parse(a.body, nullptr, false);
    if (!body.is_object()) return make_error(ErrorCode::malformed, what + ": the backend's answer is not a JSON object");
    return body;
}

template <std::size_t N>
Result<ByteArray<N>> hex_field(const json& j, const char* key) {
    Bytes b;
    if (!j.contains(key) || !j[key].is_string() || !from_hex(j[key].get<std::string>(), b) || b.size() != N) {
        return make_error(ErrorCode::malformed, std::string("the backend's '") + key + "' is not " + std::to_string(N) + " bytes of hex");
    }
    ByteArray<N> out{};
    std::copy(b.begin(), b.end(), out.begin());
    return out;
}

Result<SignedObject> decode_notice(const json& j) {
    if (!j.contains("notice") || !j["notice"].is_string()) return make_error(ErrorCode::malformed, "no notice in the answer");
    const std::string& b64 = j["notice"].get_ref<const std::string&>();
    if (b64.size() > 4096) return make_error(ErrorCode::oversized, "the notice is too large");
    Bytes raw(b64.size());
    std::size_t len = 0;
    if (sodium_base642bin(raw.data(), raw.size(), b64.data(), b64.size(), nullptr, &len, nullptr,
                          sodium_base64_VARIANT_ORIGINAL) != 0) {
        return make_error(ErrorCode::malformed, "the notice is not base64");
    }
    raw.resize(len);
    return SignedObject::decode(raw);
}

// Verifies and commits a notice; the credential, its keys and the USIM
// state go, identity and counters stay.
Result<NetworkReport> apply_notice(const AgentState& state, const SignedObject& notice, const CommitState& commit) {
    NetworkReport report;
    report.verdict = "deprovisioned";
    const DeviceIdentity identity = identity_from_state(state);
    auto next_record = apply_network_deprovision(identity, state.trust, state.record, notice);
    if (!next_record) {
        if (next_record.error().code == ErrorCode::stale_counter) {
            report.verdict = "stale-notice";  // already applied, or older than the last owner command
            return report;
        }
        return next_record.error();
    }
    AgentState next = state.clone();
    next.record = std::move(*next_record);
    next.k.reset();
    next.opc.reset();
    next.usim = UsimState{};
    if (auto st = commit(next); !st) return st.error();
    report.notice_applied = true;
    report.counter = next.record.deprovision_epoch;
    return report;
}

}  // namespace

Result<NetworkReport> attach_check(const AgentState& state, BackendClient& backend, const CommitState& commit) {
    NetworkReport report;
    if (!state.record.credential || !state.k || !state.opc) {
        report.verdict = "no-credential";
        return report;
    }
    const std::string imsi = state.record.credential->profile.imsi.str();
    report.imsi = imsi;
    const auto keys = aka::SubscriberKeys::from_k_and_opc(state.k->span(), state.opc->span());
    auto usim = aka::UsimSqnState::from_bytes(state.usim.sqn_state);
    if (!usim) return make_error(ErrorCode::storage, "stored SQN state: " + usim.error().message);
    aka::UsimSqnState sqn_state = *usim;
    for (int round = 0; round < 2; ++round) {
        auto ch = backend.post("/v1/attach/challenge", json{{"imsi", imsi}}.dump());
        if (!ch) return ch.error();
        if (ch->status != 200) return backend_error("attach challenge", *ch);
        auto body = object_of(*ch, "attach challenge");
        if (!body) return body.error();
        if (body->value("verdict", "") == "deprovisioned") {
            if (!body->contains("notice")) {
                report.verdict = "deprovisioned";
                return report;
            }
            auto notice = decode_notice(*body);
            if (!notice) return notice.error();
            auto applied = apply_notice(state, *notice, commit);
            if (applied) applied->imsi = imsi;
            return applied;
        }
        auto rand = hex_field<16>(*body, "rand");
        auto autn = hex_field<16>(*body, "autn");
        if (!rand || !autn || !body->contains("challenge_id") || !(*body)["challenge_id"].is_string()) {
            return make_error(ErrorCode::malformed, "the attach challenge is malformed");
        }
        const std::string id = (*body)["challenge_id"].get<std::string>();
        auto result = aka::usim_authenticate(keys, sqn_state, aka::Rand{*rand}, aka::Autn{*autn});
        if (!result) {
            // The network does not know this credential: answer nothing it
            // could use, report.
            report.verdict = "rejected";
            return report;
        }
        if (const auto* sync = std::get_if<aka::SyncFailure>(&*result)) {
            auto rs = backend.post("/v1/attach/response", json{{"challenge_id", id}, {"auts", to_hex(sync->auts.bytes)}}.dump());
            if (!rs) return rs.error();
            if (rs->status != 200) return backend_error("attach resynchronisation", *rs);
            report.resynchronised = true;
            continue;
        }
        auto& ok = std::get<aka::AkaSuccess>(*result);
        // As a USIM does: the accepted SQN is stored before RES is sent.
        AgentState next = state.clone();
        next.usim.sqn_state = ok.new_state.to_bytes();
        if (auto st = commit(next); !st) return st.error();
        std::string res_hex = to_hex(ok.res.span());
        auto ans = backend.post("/v1/attach/response", json{{"challenge_id", id}, {"res", res_hex}}.dump());
        sodium_memzero(res_hex.data(), res_hex.size());
        if (!ans) return ans.error();
        if (ans->status != 200) return backend_error("attach response", *ans);
        auto verdict = object_of(*ans, "attach response");
        if (!verdict) return verdict.error();
        report.verdict = verdict->value("verdict", "rejected");
        return report;
    }
    report.verdict = "rejected";
    return report;
}

Result<NetworkReport> fetch_notice(const AgentState& state, BackendClient& backend, const CommitState& commit) {
    const DeviceIdentity identity = identity_from_state(state);
    auto a = backend.get("/v1/devices/" + identity.id.to_string() + "/notice");
    if (!a) return a.error();
    if (a->status == 404) {
        NetworkReport r;
        r.verdict = "no-notice";
        return r;
    }
    if (a->status != 200) return backend_error("notice fetch", *a);
    auto body = object_of(*a, "notice fetch");
    if (!body) return body.error();
    auto notice = decode_notice(*body);
    if (!notice) return notice.error();
    return apply_notice(state, *notice, commit);
}

}  // namespace credprov::agent
