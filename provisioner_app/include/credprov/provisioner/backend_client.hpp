// The provisioner's client of credprov-backend's REST API: JSON over HTTPS
// (cpp-httplib), every request signed with the provisioner's key
// (Credprov-Signature, see network_backend/include/credprov/backend/request_auth.hpp
// for the scheme). Never logs; errors carry the backend's problem detail,
// which the backend keeps secret-free.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "credprov/protocol/crypto.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov::provisioner {

using json = nlohmann::json;

struct BackendReply {
    bool reachable{false};  // false: no HTTP answer at all (the step may be retried)
    int status{0};
    json body;
    [[nodiscard]] bool ok() const noexcept { return reachable && status >= 200 && status < 300; }
    // "HTTP 409: the device already holds …" or "backend unreachable (…)".
    [[nodiscard]] std::string describe() const;
    std::string transport_error;
    std::uint64_t retry_after_s{0};  // a 429's or 503's Retry-After, 0 without one
};

class BackendClient {
public:
    // base_url: https://host:port (http:// only for loopback); ca_file: PEM
    // bundle for the server certificate (empty: the system's).
    BackendClient(std::string base_url, std::string ca_file, const crypto::SigningKey* key, int timeout_s = 10);
    ~BackendClient();
    BackendClient(const BackendClient&) = delete;
    BackendClient& operator=(const BackendClient&) = delete;

    [[nodiscard]] BackendReply get(const std::string& path);
    // Signed with the provisioner key when one is set.
    [[nodiscard]] BackendReply post(const std::string& path, const json& body);

    // Several POST /v1/tokens, /v1/bundles or /v1/receipts requests (path,
    // body) in one POST /v1/batch (decision 0014): `whole` is the batch's own
    // reply; when it is 200, `each` holds every request's reply, in order.
    // The rate limit counts every request in a batch: a 429 is waited out
    // (its Retry-After, at most kRateWaitMax s; `waiting` is told how long)
    // and the batch sent again, up to kRateWaits times.
    struct BatchReply {
        BackendReply whole;
        std::vector<BackendReply> each;
    };
    [[nodiscard]] BatchReply batch(const std::vector<std::pair<std::string, json>>& requests,
                                   const std::function<void(std::uint64_t seconds)>& waiting = {});
    static constexpr std::uint64_t kRateWaitMax = 30;
    static constexpr int kRateWaits = 10;
    // Requests one POST /v1/batch may carry.
    static constexpr std::size_t kBatchMax = 64;

    [[nodiscard]] static Status check_url(const std::string& base_url);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    const crypto::SigningKey* key_;
};

}  // namespace credprov::provisioner
