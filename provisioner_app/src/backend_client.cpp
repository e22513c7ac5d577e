// BackendClient over cpp-httplib.
#include "credprov/provisioner/backend_client.hpp"

#include <httplib.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <ctime>
#include <thread>

#include "credprov/common/request_auth.hpp"

namespace credprov::provisioner {

std::string BackendReply::describe() const {
    if (!reachable) return "backend unreachable (" + transport_error + ")";
    std::string s = "HTTP " + std::to_string(status);
    if (body.is_object() && body.contains("detail") && body["detail"].is_string()) s += ": " + body["detail"].get<std::string>();
    return s;
}

struct BackendClient::Impl {
    httplib::Client cli;
    explicit Impl(const std::string& url) : cli(url) {}
};

Status BackendClient::check_url(const std::string& u) {
    if (!u.starts_with("https://") && !u.starts_with("http://")) {
        return make_error(ErrorCode::malformed, "the backend URL must start with https:// (or http:// on loopback)");
    }
    if (u.starts_with("http://") && !u.starts_with("http://127.0.0.1") && !u.starts_with("http://localhost") &&
        !u.starts_with("http://[::1]")) {
        return make_error(ErrorCode::malformed, "plain http:// is accepted only for a loopback backend");
    }
    return {};
}

BackendClient::BackendClient(std::string base_url, std::string ca_file, const crypto::SigningKey* key, int timeout_s)
    : impl_(std::make_unique<Impl>(base_url)), key_(key) {
    impl_->cli.set_connection_timeout(timeout_s, 0);
    impl_->cli.set_read_timeout(timeout_s, 0);
    impl_->cli.set_write_timeout(timeout_s, 0);
    // One connection (one TLS handshake) for a session's requests: the token
    // and the bundle go back to back; a connection the server has closed in
    // the meantime (its keep-alive timeout) is opened again by the next request.
    impl_->cli.set_keep_alive(true);
    impl_->cli.set_tcp_nodelay(true);
    if (!ca_file.empty()) impl_->cli.set_ca_cert_path(ca_file.c_str());
    impl_->cli.enable_server_certificate_verification(true);
}

BackendClient::~BackendClient() = default;

namespace {
BackendReply to_reply(const httplib::Result& r) {
    BackendReply out;
    if (!r) {
        out.transport_error = httplib::to_string(r.error());
        return out;
    }
    out.reachable = true;
    out.status = r->status;
    out.body = json::parse(r->body, nullptr, false);
    if (out.body.is_discarded()) out.body = json::object();
    const std::string retry = r->get_header_value("Retry-After");
    std::uint64_t seconds = 0;
    if (const auto [p, ec] = std::from_chars(retry.data(), retry.data() + retry.size(), seconds);
        ec == std::errc{} && p == retry.data() + retry.size() && !retry.empty()) {
        out.retry_after_s = seconds;
    }
    return out;
}

// A kept connection the server closes (its keep-alive timeout) just as a
// request goes out fails that request at once: send it again, once, on a new
// connection. Every backend request may be repeated (the API's idempotency).
template <typename Send>
httplib::Result with_one_retry(Send send) {
    const auto started = std::chrono::steady_clock::now();
    auto r = send();
    const bool quick = std::chrono::steady_clock::now() - started < std::chrono::seconds(1);
    if (!r && quick && (r.error() == httplib::Error::Read || r.error() == httplib::Error::Write)) r = send();
    return r;
}

}  // namespace

BackendReply BackendClient::get(const std::string& path) {
    return to_reply(with_one_retry([&] { return impl_->cli.Get(path); }));
}

BackendReply BackendClient::post(const std::string& path, const json& body) {
    const std::string payload = body.dump();
    httplib::Headers headers;
    if (key_ != nullptr) {
        const auto now = static_cast<std::uint64_t>(std::time(nullptr));
        headers.emplace("Authorization", sign_request(*key_, "POST", path, now, payload));
    }
    return to_reply(with_one_retry([&] { return impl_->cli.Post(path, headers, payload, "application/json"); }));
}

BackendClient::BatchReply BackendClient::batch(const std::vector<std::pair<std::string, json>>& requests,
                                               const std::function<void(std::uint64_t)>& waiting) {
    json list = json::array();
    for (const auto& [path, body] : requests) list.push_back(json{{"path", path}, {"body", body}});
    const json envelope{{"requests", std::move(list)}};
    BatchReply out{post("/v1/batch", envelope), {}};
    for (int waits = 0; out.whole.reachable && out.whole.status == 429 && waits < kRateWaits; ++waits) {
        const std::uint64_t seconds = std::clamp<std::uint64_t>(out.whole.retry_after_s, 1, kRateWaitMax);
        if (waiting) waiting(seconds);
        std::this_thread::sleep_for(std::chrono::seconds(seconds));
        out.whole = post("/v1/batch", envelope);
    }
    if (!out.whole.ok()) return out;
    const json* answers = out.whole.body.contains("responses") ? &out.whole.body["responses"] : nullptr;
    if (answers == nullptr || !answers->is_array() || answers->size() != requests.size()) {
        // Not an answer to this batch: as good as none (the requests are
        // idempotent, so the caller may send them again).
        out.whole = BackendReply{false, 0, json(), "the backend's answer to the batch does not match it"};
        return out;
    }
    for (const auto& a : *answers) {
        const bool well_formed = a.is_object() && a.contains("status") && a["status"].is_number_integer() && a.contains("body");
        out.each.push_back(well_formed ? BackendReply{true, a["status"].get<int>(), a["body"], {}}
                                       : BackendReply{false, 0, json(), "the backend's answer to the batch does not match it"});
    }
    return out;
}

}  // namespace credprov::provisioner
