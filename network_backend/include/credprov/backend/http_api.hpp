// The REST API over HTTP(S): one route table that names every operation,
// who may call it and its handler; authentication (admin bearer tokens with
// roles, provisioner request signatures), per-identity rate limits, body
// limits, JSON parsing, RFC 9457 problem responses, request metrics and one
// structured log line per request (no bodies, no secrets).
//
// The route table is also what a test compares with openapi.json, so the
// document and the server cannot drift apart.
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "credprov/backend/service.hpp"

namespace httplib {
class Server;
}
namespace spdlog {
class logger;
}

namespace credprov::backend {

// Who may call a route.
struct Access {
    bool anonymous{false};            // public, or a device on the network path
    bool provisioner{false};          // signed by an enrolled provisioner
    std::vector<Role> roles;          // admin-token roles allowed
};

struct RouteInfo {
    std::string method;   // "GET", "POST", "DELETE"
    std::string path;     // OpenAPI template, e.g. "/v1/provisioners/{id}"
    Access access;
};

// Every route the server serves, in registration order.
[[nodiscard]] std::vector<RouteInfo> api_routes();

// POST /v1/batch (decision 0014): its body checked whole. Each request's
// path is one of `batchable` and its body an object (pointing into `body`);
// otherwise the reason, naming the request and field, and nothing runs.
struct BatchRequest {
    std::string path;
    const json* body{nullptr};
};
inline constexpr std::size_t kBatchMax = 64;
[[nodiscard]] Result<std::vector<BatchRequest>> parse_batch(const json& body, const std::vector<std::string>& batchable);

// The OpenAPI document served at /openapi.json (embedded from the repo).
[[nodiscard]] std::string_view openapi_document();

class ApiServer {
public:
    ApiServer(Service& service, Metrics& metrics, std::shared_ptr<spdlog::logger> log);
    ~ApiServer();
    ApiServer(const ApiServer&) = delete;
    ApiServer& operator=(const ApiServer&) = delete;

    // Binds the configured address (port 0 picks a free port).
    [[nodiscard]] Status bind();
    [[nodiscard]] int port() const noexcept { return port_; }
    // Serves until stop(); returns false if the listener failed.
    bool run();
    void stop();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    int port_{0};
};

}  // namespace credprov::backend
