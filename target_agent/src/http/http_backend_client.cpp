// BackendClient over cpp-httplib (HTTPS through OpenSSL). Kept out of the
// agent core library so only the programs that reach the backend link an
// HTTP stack.
#include <httplib.h>

#include "credprov/agent/network_path.hpp"

namespace credprov::agent {
namespace {

class HttpBackendClient final : public BackendClient {
public:
    HttpBackendClient(const std::string& base, const std::string& ca, int timeout_s) : cli_(base) {
        cli_.set_connection_timeout(timeout_s, 0);
        cli_.set_read_timeout(timeout_s, 0);
        cli_.set_write_timeout(timeout_s, 0);
        if (!ca.empty()) cli_.set_ca_cert_path(ca.c_str());
        cli_.enable_server_certificate_verification(true);
    }
    Result<Answer> get(const std::string& path) override { return answer(cli_.Get(path)); }
    Result<Answer> post(const std::string& path, const std::string& body) override {
        return answer(cli_.Post(path, body, "application/json"));
    }

private:
    static Result<Answer> answer(const httplib::Result& r) {
        if (!r) return make_error(ErrorCode::io, "cannot reach the backend (" + httplib::to_string(r.error()) + " error)");
        return Answer{r->status, r->body};
    }
    httplib::Client cli_;
};

}  // namespace

Result<std::unique_ptr<BackendClient>> make_http_backend_client(const std::string& base_url, const std::string& ca_file,
                                                                int timeout_s) {
    if (!base_url.starts_with("https://") && !base_url.starts_with("http://")) {
        return make_error(ErrorCode::malformed, "the backend URL must start with https:// (or http:// on loopback)");
    }
    if (base_url.starts_with("http://") && !base_url.starts_with("http://127.0.0.1") &&
        !base_url.starts_with("http://localhost") && !base_url.starts_with("http://[::1]")) {
        return make_error(ErrorCode::malformed, "plain http:// is accepted only for a loopback backend");
    }
    return std::unique_ptr<BackendClient>(std::make_unique<HttpBackendClient>(base_url, ca_file, timeout_s));
}

}  // namespace credprov::agent
