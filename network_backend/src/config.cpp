// TOML configuration of the backend, validated field by field.
#include "credprov/backend/config.hpp"

#include <fstream>
#include <sstream>

#include "credprov/backend/core_connector.hpp"
#include "credprov/common/toml_fields.hpp"
#include "credprov/protocol/identifiers.hpp"

namespace credprov::backend {

using namespace toml_fields;

std::string BackendConfig::database_url() const {
    if (database.starts_with("postgres") || database.starts_with("host=") || database.starts_with("dbname=")) {
        return database;
    }
    std::string path = database.starts_with("sqlite:") ? database.substr(7) : database;
    return "sqlite:" + resolve(path).string();
}

Result<BackendConfig> parse_backend_config(std::string_view text, std::string_view origin,
                                           const std::filesystem::path& base_dir) {
    auto parsed = parse_document(text, origin);
    if (!parsed) return parsed.error();
    const toml::table& root = *parsed;
    BackendConfig c;
    c.base_dir = base_dir;
    if (auto s = check_known(root, origin, {"server", "storage", "operator", "subscribers", "limits", "core", "log"}, "top level"); !s) {
        return s.error();
    }
    std::string path;
    auto read_path = [&](const toml::table& t, std::string_view key, std::filesystem::path& out) -> Status {
        path.clear();
        if (auto s = read_string(t, origin, key, path); !s) return s;
        if (!path.empty()) out = path;
        return {};
    };
    if (const toml::table* t = root["server"].as_table()) {
        if (auto s = check_known(*t, origin, {"listen", "port", "tls_certificate", "tls_private_key", "allow_plain_http",
                                              "max_body_bytes", "threads"}, "server"); !s) return s.error();
        Status s = read_string(*t, origin, "listen", c.listen);
        if (s) s = read_uint(*t, origin, "port", c.port, 0, 65535);
        if (s) s = read_path(*t, "tls_certificate", c.tls_certificate);
        if (s) s = read_path(*t, "tls_private_key", c.tls_private_key);
        if (s) s = read_bool(*t, origin, "allow_plain_http", c.allow_plain_http);
        if (s) s = read_uint(*t, origin, "max_body_bytes", c.max_body_bytes, 1024, 1 << 20);
        if (s) s = read_uint(*t, origin, "threads", c.threads, 1, 256);
        if (!s) return s.error();
    }
    if (const toml::table* t = root["storage"].as_table()) {
        if (auto s = check_known(*t, origin, {"database", "pool_size"}, "storage"); !s) return s.error();
        Status s = read_string(*t, origin, "database", c.database);
        if (s) s = read_uint(*t, origin, "pool_size", c.pool_size, 1, 64);
        if (!s) return s.error();
    }
    if (const toml::table* t = root["operator"].as_table()) {
        if (auto s = check_known(*t, origin, {"name", "key", "certificate", "keyring", "data_key", "passphrase_env"},
                                 "operator"); !s) return s.error();
        Status s = read_string(*t, origin, "name", c.operator_name);
        if (s) s = read_path(*t, "key", c.operator_key);
        if (s) s = read_path(*t, "certificate", c.operator_certificate);
        if (s) s = read_path(*t, "keyring", c.keyring_dir);
        if (s) s = read_path(*t, "data_key", c.data_key);
        if (s) s = read_string(*t, origin, "passphrase_env", c.passphrase_env);
        if (!s) return s.error();
        if (!NetworkName::parse(c.operator_name)) {
            return bad(origin, *t->get("name"), "name", "must be 1..32 printable ASCII characters");
        }
    }
    if (const toml::table* t = root["subscribers"].as_table()) {
        if (auto s = check_known(*t, origin, {"plmn", "msin_first", "msin_last", "amf", "network_name", "op_file",
                                              "pending_ttl_s", "bundle_ttl_s", "token_max_ttl_s", "field_ttl_s",
                                              "field_pool_max", "challenge_ttl_s", "sweep_interval_s"},
                                 "subscribers"); !s) return s.error();
        Status s = read_string(*t, origin, "plmn", c.plmn);
        if (s) s = read_uint(*t, origin, "msin_first", c.msin_first, 0, 9999999999ULL);
        if (s) s = read_uint(*t, origin, "msin_last", c.msin_last, 0, 9999999999ULL);
        if (s) s = read_string(*t, origin, "amf", c.amf_hex);
        if (s) s = read_string(*t, origin, "network_name", c.network_name);
        if (s) s = read_path(*t, "op_file", c.op_file);
        if (s) s = read_uint(*t, origin, "pending_ttl_s", c.pending_ttl_s, 1, 30 * 86400);
        if (s) s = read_uint(*t, origin, "bundle_ttl_s", c.bundle_ttl_s, 60, 365 * 86400);
        if (s) s = read_uint(*t, origin, "token_max_ttl_s", c.token_max_ttl_s, 10, 7 * 86400);
        if (s) s = read_uint(*t, origin, "field_ttl_s", c.field_ttl_s, 60, 365 * 86400);
        if (s) s = read_uint(*t, origin, "field_pool_max", c.field_pool_max, 1, 10000);
        if (s) s = read_uint(*t, origin, "challenge_ttl_s", c.challenge_ttl_s, 5, 3600);
        if (s) s = read_uint(*t, origin, "sweep_interval_s", c.sweep_interval_s, 1, 3600);
        if (!s) return s.error();
    }
    if (const toml::table* t = root["limits"].as_table()) {
        if (auto s = check_known(*t, origin, {"rate_per_second", "rate_burst", "clock_skew_s"}, "limits"); !s) {
            return s.error();
        }
        Status s = read_uint(*t, origin, "rate_per_second", c.rate_per_second, 1, 100000);
        if (s) s = read_uint(*t, origin, "rate_burst", c.rate_burst, 1, 100000);
        if (s) s = read_uint(*t, origin, "clock_skew_s", c.clock_skew_s, 10, 3600);
        if (!s) return s.error();
    }
    if (const toml::table* t = root["core"].as_table()) {
        if (auto s = check_known(*t, origin, {"kind", "ctrl", "vty", "timeout_ms", "retry_max_s", "lease_s",
                                              "reconcile_interval_s"}, "core"); !s) return s.error();
        Status s = read_string(*t, origin, "kind", c.core_kind);
        if (s) s = read_string(*t, origin, "ctrl", c.core_ctrl);
        if (s) s = read_string(*t, origin, "vty", c.core_vty);
        if (s) s = read_uint(*t, origin, "timeout_ms", c.core_timeout_ms, 100, 120000);
        if (s) s = read_uint(*t, origin, "retry_max_s", c.core_retry_max_s, 1, 86400);
        if (s) s = read_uint(*t, origin, "lease_s", c.core_lease_s, 5, 3600);
        if (s) s = read_uint(*t, origin, "reconcile_interval_s", c.core_reconcile_interval_s, 0, 7 * 86400);
        if (!s) return s.error();
        // Known kinds; a new connector adds its name here and in make_core_connector().
        if (c.core_kind != "osmo-hlr") {
            const toml::node* kind = t->get("kind");
            return bad(origin, kind != nullptr ? *kind : static_cast<const toml::node&>(*t), "kind",
                       "must be \"osmo-hlr\" (the only core connector so far)");
        }
        std::string host;
        std::uint16_t port = 0;
        for (const char* key : {"ctrl", "vty"}) {
            if (const toml::node* n = t->get(key); n != nullptr &&
                !parse_host_port(std::string_view(key) == "ctrl" ? c.core_ctrl : c.core_vty, host, port)) {
                return bad(origin, *n, key, "must be HOST:PORT, e.g. \"127.0.0.1:4259\" or \"[::1]:4259\"");
            }
        }
        if (c.core_lease_s * 1000 < c.core_timeout_ms * 10) {
            return bad(origin, *t, "lease_s", "must be at least ten request timeouts (timeout_ms), or a slow delivery "
                                              "could be taken over by another node while it still runs");
        }
    }
    if (const toml::table* t = root["log"].as_table()) {
        if (auto s = check_known(*t, origin, {"level", "format"}, "log"); !s) return s.error();
        Status s = read_string(*t, origin, "level", c.log_level);
        if (s) s = read_string(*t, origin, "format", c.log_format);
        if (!s) return s.error();
    }
    if (auto s = validate(c); !s) return make_error(s.error().code, std::string(origin) + ": " + s.error().message);
    return c;
}

Status validate(const BackendConfig& c) {
    if (!Plmn::parse(c.plmn)) return make_error(ErrorCode::malformed, "subscribers.plmn must be 5 or 6 digits (MCC+MNC)");
    const std::size_t msin_digits = 15 - c.plmn.size();
    std::uint64_t limit = 1;
    for (std::size_t i = 0; i < msin_digits; ++i) limit *= 10;
    if (c.msin_first > c.msin_last || c.msin_last >= limit) {
        return make_error(ErrorCode::malformed, "subscribers.msin_first..msin_last must be an ascending range of at most " +
                                                    std::to_string(msin_digits) + " digits");
    }
    Bytes amf;
    if (!from_hex(c.amf_hex, amf) || amf.size() != 2) {
        return make_error(ErrorCode::malformed, "subscribers.amf must be 4 hex digits");
    }
    if (!NetworkName::parse(c.network_name)) {
        return make_error(ErrorCode::malformed, "subscribers.network_name must be 1..32 printable ASCII characters");
    }
    if (c.tls_certificate.empty() != c.tls_private_key.empty()) {
        return make_error(ErrorCode::malformed, "server.tls_certificate and server.tls_private_key go together");
    }
    if (c.tls_certificate.empty()) {
        if (!c.allow_plain_http) {
            return make_error(ErrorCode::malformed,
                              "no TLS certificate configured: set server.tls_certificate and server.tls_private_key, "
                              "or server.allow_plain_http = true for a loopback-only test setup");
        }
        if (c.listen != "127.0.0.1" && c.listen != "::1" && c.listen != "localhost") {
            return make_error(ErrorCode::malformed, "plain HTTP is allowed only on a loopback address (server.listen)");
        }
    }
    if (c.log_format != "json" && c.log_format != "text") {
        return make_error(ErrorCode::malformed, "log.format must be \"json\" or \"text\"");
    }
    if (c.log_level != "trace" && c.log_level != "debug" && c.log_level != "info" && c.log_level != "warn" &&
        c.log_level != "error") {
        return make_error(ErrorCode::malformed, "log.level must be trace, debug, info, warn or error");
    }
    return {};
}

Result<BackendConfig> load_backend_config(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) return make_error(ErrorCode::storage, "cannot read configuration file " + path.string());
    std::stringstream ss;
    ss << in.rdbuf();
    const auto base = std::filesystem::absolute(path).parent_path();
    return parse_backend_config(ss.str(), path.string(), base);
}

}  // namespace credprov::backend
