// Creating and opening a device's store: factory-init (explicit, by
// credprov-agentctl) or first start (credprov-agentd with an empty state
// directory), and the diagnostics the daemon runs for its owner.
#pragma once

#include <optional>

#include "credprov/agent/agent_host.hpp"
#include "credprov/agent/config.hpp"
#include "credprov/agent/store.hpp"

namespace credprov::agent {

// Creates identity, setup code and trust anchors in a new store;
// ErrorCode::already_provisioned if one exists. `counter` is the store's
// monotonic counter (open_configured_counter() or no_counter()) and must
// outlive the store.
[[nodiscard]] Result<Store> factory_init(const AgentConfig& cfg, const std::optional<SignedObject>& attestation,
                                         MonotonicCounter& counter);
// Opens the store, creating it on first start if the state directory holds none.
[[nodiscard]] Result<Store> open_or_create_store(const AgentConfig& cfg, bool log, MonotonicCounter& counter);
[[nodiscard]] Result<SignedObject> read_attestation_file(const std::filesystem::path& path);

// The fixed set of diagnostics: self-test, store check, AKA self-check,
// transport information.
[[nodiscard]] DiagnosticRunner make_diagnostic_runner(const AgentConfig& cfg, Store& store);

}  // namespace credprov::agent
