// The device's network path to the operator's backend (credprov-backend):
// the attach check with the stored credential (AKA through the soft-USIM)
// and the deprovisioning notice (PROTOCOL.md 6.5).
//
// The protocol of the network path is the backend's REST API (its
// openapi.json: /v1/attach/challenge, /v1/attach/response,
// /v1/devices/{id}/notice). The soft-USIM's SQN state is committed before
// RES leaves the device, as a USIM does; a notice is applied only if it is
// owner-signed for this device with a counter above the last one
// (apply_network_deprovision). Never logs or returns K, OPc, RES, CK or IK.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "credprov/agent/agent_state.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov::agent {

// JSON over HTTP(S) to the backend; the HTTP implementation is
// make_http_backend_client, tests may bring their own.
class BackendClient {
public:
    virtual ~BackendClient() = default;
    struct Answer {
        int status{0};
        std::string body;
    };
    [[nodiscard]] virtual Result<Answer> get(const std::string& path) = 0;
    [[nodiscard]] virtual Result<Answer> post(const std::string& path, const std::string& json) = 0;
};

// base_url: "https://host:port" or "http://127.0.0.1:port"; ca_file: PEM
// bundle to verify the server with (empty: the system's).
[[nodiscard]] Result<std::unique_ptr<BackendClient>> make_http_backend_client(const std::string& base_url,
                                                                              const std::string& ca_file,
                                                                              int timeout_s = 10);

struct NetworkReport {
    // attached | rejected | deprovisioned | no-credential | no-notice | stale-notice
    std::string verdict;
    std::string imsi;
    bool resynchronised{false};
    bool notice_applied{false};
    std::optional<std::uint64_t> counter;  // of an applied notice
};

using CommitState = std::function<Status(const AgentState& next)>;

// One attach check: challenge, soft-USIM, response (after a resynchronisation
// once more). A deprovisioned answer carries the notice, which is applied.
[[nodiscard]] Result<NetworkReport> attach_check(const AgentState& state, BackendClient& backend,
                                                 const CommitState& commit);

// Fetches this device's deprovisioning notice, if the backend has one, and
// applies it when it is newer than what the device has applied.
[[nodiscard]] Result<NetworkReport> fetch_notice(const AgentState& state, BackendClient& backend,
                                                 const CommitState& commit);

}  // namespace credprov::agent
