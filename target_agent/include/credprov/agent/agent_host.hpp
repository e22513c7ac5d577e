// The agent's side of the protocol's DeviceHost: every durable step of a
// session goes through the protected store (store.hpp) before the session
// may continue.
//
// Never logs key material, the setup code, K or OPc; log lines name only
// bundle ids, counters and error causes.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "credprov/agent/attempt_policy.hpp"
#include "credprov/agent/config.hpp"
#include "credprov/agent/store.hpp"
#include "credprov/protocol/device_session.hpp"

namespace credprov::agent {

using Clock = std::function<std::uint64_t()>;  // seconds since the Unix epoch
using DiagnosticRunner = std::function<DiagnosticResult(Diagnostic)>;

class AgentHost final : public DeviceHost {
public:
    AgentHost(Store& store, BackoffPolicy policy, Clock clock, std::string software, DiagnosticRunner diagnostics,
              ConsentPolicy consent = {});

    Result<AttemptDecision> record_pairing_attempt() override;
    Status confirm_pairing() override;
    const DeviceRecord& record() const override;
    Status commit(const DeviceRecord& next, const SubscriberKeys* keys) override;
    std::vector<DiagnosticResult> run_diagnostics(const std::vector<Diagnostic>& which) override;
    std::string software() const override { return software_; }
    Status consent(OwnerCommandKind kind) override;

private:
    Store& store_;
    BackoffPolicy policy_;
    Clock clock_;
    std::string software_;
    DiagnosticRunner diagnostics_;
    ConsentPolicy consent_;
};

// The device's identity keys, derived from the store's seeds.
[[nodiscard]] DeviceIdentity identity_from_state(const AgentState& state);

// A fresh state for factory-init: new identity, a random setup code of
// `code_digits` digits, the given trust anchors, nothing else.
[[nodiscard]] AgentState new_device_state(const DeviceTrust& trust, std::size_t code_digits);

}  // namespace credprov::agent
