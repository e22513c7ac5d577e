// credprov-backend's configuration: a TOML file, then command-line
// overrides. Relative paths are taken from the configuration file's folder.
// The file names key files; it never holds a key or a passphrase (a
// passphrase comes from the environment variable it names).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include "credprov/protocol/result.hpp"

namespace credprov::backend {

struct BackendConfig {
    // [server]
    std::string listen{"127.0.0.1"};
    std::uint16_t port{8443};
    std::filesystem::path tls_certificate;  // PEM; empty = plain HTTP (only with allow_plain_http on loopback)
    std::filesystem::path tls_private_key;
    bool allow_plain_http{false};
    std::size_t max_body_bytes{64 * 1024};
    std::size_t threads{32};
    // [storage]
    std::string database{"sqlite:backend.db"};
    std::size_t pool_size{4};
    // [operator]
    std::string operator_name{"credprov operator"};
    std::filesystem::path operator_key{"operator.key"};
    std::filesystem::path operator_certificate{"operator.cert"};  // root-signed; optional
    std::filesystem::path keyring_dir{"operator-keys.d"};         // retired operator keys
    std::filesystem::path data_key{"data.key"};
    std::string passphrase_env;  // name of the variable holding the operator key's passphrase
    // [subscribers]
    std::string plmn{"00101"};
    std::uint64_t msin_first{1};
    std::uint64_t msin_last{999999999};
    std::string amf_hex{"8000"};
    std::string network_name{"credprov"};
    std::filesystem::path op_file;  // optional: 16-byte OP (hex) from which OPc is derived; empty = random OPc
    std::uint64_t pending_ttl_s{900};
    std::uint64_t bundle_ttl_s{86400};
    std::uint64_t token_max_ttl_s{3600};
    std::uint64_t field_ttl_s{7 * 86400};
    std::uint64_t field_pool_max{100};
    std::uint64_t challenge_ttl_s{60};
    std::uint64_t sweep_interval_s{30};
    // [limits]
    std::uint64_t rate_per_second{50};
    std::uint64_t rate_burst{100};
    std::uint64_t clock_skew_s{300};  // accepted age of a signed provisioner request
    // [core]: the core-network connector (decision 0011). No section: no
    // connector and no outbox rows.
    std::string core_kind;                          // "osmo-hlr"; empty = none
    std::string core_ctrl{"127.0.0.1:4259"};        // osmo-hlr CTRL interface
    std::string core_vty{"127.0.0.1:4258"};         // osmo-hlr VTY (listing, for reconciliation)
    std::uint64_t core_timeout_ms{5000};            // per request
    std::uint64_t core_retry_max_s{300};            // cap of the exponential back-off between attempts
    std::uint64_t core_lease_s{60};                 // a claimed outbox row is retried by any node after this
    std::uint64_t core_reconcile_interval_s{0};     // serve repairs drift this often; 0 = only on command
    // [log]
    std::string log_level{"info"};
    std::string log_format{"json"};  // json | text

    std::filesystem::path base_dir{"."};
    [[nodiscard]] std::filesystem::path resolve(const std::filesystem::path& p) const {
        return p.empty() || p.is_absolute() ? p : base_dir / p;
    }
    // The database URL with a relative SQLite path resolved.
    [[nodiscard]] std::string database_url() const;
};

inline constexpr const char* kDefaultBackendConfig = "/etc/credprov/backend.toml";

[[nodiscard]] Result<BackendConfig> parse_backend_config(std::string_view toml_text, std::string_view origin,
                                                         const std::filesystem::path& base_dir);
[[nodiscard]] Result<BackendConfig> load_backend_config(const std::filesystem::path& path);
// Checks cross-field rules (TLS or explicit loopback plain HTTP, IMSI range fits).
[[nodiscard]] Status validate(const BackendConfig& c);

}  // namespace credprov::backend
