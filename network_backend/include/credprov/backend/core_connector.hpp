// The core-network connector: what the backend needs from an HLR/HSS that
// serves its active subscribers to a real core network (decision 0011).
//
// The backend stays the source of truth; a connector only mirrors state into
// the core: upsert a subscriber with its Milenage K/OPc, remove one, and read
// back what the core holds for reconciliation. Every call is idempotent:
// upserting an existing subscriber or removing a missing one succeeds when
// the end state is the one asked for. The outbox (core_outbox table) calls it
// at least once per change, in order per IMSI.
//
// K and OPc travel only in guarded types (SubscriberKeys: Secret<16>), are
// wiped after use and never appear in an error message or a log line.
// Implementations register their `kind` in make_core_connector().
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "credprov/protocol/result.hpp"
#include "credprov/protocol/signed_objects.hpp"

namespace credprov::backend {

struct BackendConfig;

// What the backend wants the core to hold for one IMSI.
struct CoreSubscriber {
    std::string imsi;                               // 15 digits
    std::optional<std::string> msisdn;              // unset: leave the core's as it is
    const SubscriberKeys* keys{nullptr};            // Milenage K and OPc; borrowed, never copied out of guarded memory
    std::optional<std::array<std::uint8_t, 2>> amf; // a core that cannot store AMF ignores it (osmo-hlr 1.5 does)
};

// What the core holds for one IMSI, as read back for reconciliation.
struct CoreRecord {
    std::string imsi;
    std::optional<std::string> msisdn;
    // Milenage with OPc (not OP) and both keys readable; K/OPc in guarded memory.
    std::optional<SubscriberKeys> milenage;
    std::string auth_summary;  // "milenage/opc", "milenage/op", "none", ...: never key bytes
};

class CoreConnector {
public:
    virtual ~CoreConnector() = default;
    [[nodiscard]] virtual std::string_view kind() const noexcept = 0;
    // Where it talks to (for logs and status), e.g. "ctrl 127.0.0.1:4259".
    [[nodiscard]] virtual std::string endpoint() const = 0;

    // Creates the subscriber if missing, then sets its keys (and MSISDN when given).
    [[nodiscard]] virtual Status upsert(const CoreSubscriber& s) = 0;
    // Deletes it; a subscriber that does not exist is success.
    [[nodiscard]] virtual Status remove(const std::string& imsi) = 0;
    // std::nullopt when the core does not know the IMSI.
    [[nodiscard]] virtual Result<std::optional<CoreRecord>> get(const std::string& imsi) = 0;
    // Every IMSI the core holds (including ones credprov does not manage).
    [[nodiscard]] virtual Result<std::vector<std::string>> list() = 0;
};

// The connector [core] configures; nullptr when there is no [core] section.
// An unknown kind is rejected by the configuration parser already.
[[nodiscard]] Result<std::unique_ptr<CoreConnector>> make_core_connector(const BackendConfig& cfg);

// "host:port" with an IPv4 or IPv6 literal or a name; false when malformed.
[[nodiscard]] bool parse_host_port(std::string_view text, std::string& host, std::uint16_t& port);

}  // namespace credprov::backend
