// credprov-agentd's configuration: a TOML file (toml++), then command-line
// overrides. Every bad value is an error naming the file, line and key.
// The configuration holds no secrets; trust anchors in it are public keys.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "credprov/agent/attempt_policy.hpp"
#include "credprov/protocol/device_session.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov::agent {

// Local consent before owner commands, when the owner wants it: a file that
// a local action (a button handler, a technician's shell) creates, valid for
// max_age_s and consumed by the command it approves.
struct ConsentPolicy {
    std::vector<OwnerCommandKind> required_for;  // empty: no consent needed
    std::filesystem::path file{"/run/credprov-agent/consent"};
    std::uint64_t max_age_s{120};
};

// The store's hardware monotonic counter (STORE.md "Rollback"): a TPM 2.0
// NV counter. Without a [tpm] table there is none and a restored old
// snapshot of the store cannot be detected.
struct TpmConfig {
    static constexpr std::uint32_t kDefaultNvIndex = 0x0182A0C0;  // owner range 0x01800000-0x01BFFFFF
    std::string tcti{"device:/dev/tpmrm0"};  // as tpm2-tss takes it, e.g. "swtpm:host=127.0.0.1,port=2321"
    std::uint32_t nv_index{kDefaultNvIndex};
};

// [ble]: the GATT peripheral, served when `listen` has a "ble:" entry.
struct BleConfig {
    bool stop_advertising_in_session{true};  // not connectable by others while a session runs
    bool power_on_adapter{true};             // power the adapter on when it is off
    // After a provisioning session the device keeps advertising this long, so
    // a provisioner whose link or process died after the delivery can come
    // back for the receipt (a retry converges); then it stops.
    std::uint32_t advertise_after_provisioning_s{600};
};

struct AgentConfig {
    std::filesystem::path state_dir{"/var/lib/credprov-agent"};
    std::filesystem::path key_file;  // empty: <state_dir>/store.key
    std::vector<std::string> listen{"unix:/run/credprov-agent/agent.sock"};
    std::string log_level{"info"};
    std::uint32_t session_timeout_s{30};
    BackoffPolicy backoff;
    ConsentPolicy consent;
    // Trust anchors installed into the store at first start (factory-init);
    // afterwards the store is authoritative and these are only compared.
    DeviceTrust trust;
    std::size_t setup_code_digits{10};
    std::optional<TpmConfig> tpm;
    BleConfig ble;  // [tpm] present: the store uses the TPM NV counter

    [[nodiscard]] std::filesystem::path effective_key_file() const {
        return key_file.empty() ? state_dir / "store.key" : key_file;
    }
};

inline constexpr const char* kDefaultConfigPath = "/etc/credprov/agent.toml";

[[nodiscard]] Result<AgentConfig> parse_config(std::string_view toml_text, std::string_view origin);
[[nodiscard]] Result<AgentConfig> load_config(const std::filesystem::path& path);

// Parses a 32-byte public key given as 64 hex digits.
[[nodiscard]] Result<crypto::SignPublicKey> parse_public_key_hex(std::string_view hex, std::string_view what);

}  // namespace credprov::agent
