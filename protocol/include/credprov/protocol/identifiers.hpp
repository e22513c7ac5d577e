// Strong types for the identifiers that cross the wire: device ids, bundle
// ids, IMSIs, PLMNs, network names, setup codes and token operations.
//
// Every parse validates fully and returns a typed error whose message never
// repeats a setup code.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/crypto.hpp"
#include "credprov/protocol/result.hpp"
#include "credprov/protocol/secret.hpp"

namespace credprov {

inline constexpr std::uint64_t kProtocolVersion = 1;

// device_id = SHA-512("credprov/v1 device-id" || 0x00 || identity public key)[0..16]:
// 128 bits, printed on the label in lower-case RFC 4648 base32 (26 characters).
struct DeviceId {
    static constexpr std::size_t kBytes = 16;
    ByteArray<kBytes> bytes{};

    [[nodiscard]] static DeviceId from_public_key(const crypto::SignPublicKey& key);
    [[nodiscard]] static Result<DeviceId> parse(std::string_view base32);
    [[nodiscard]] std::string to_string() const;  // base32, no padding
    // Short discriminator for advertisements (first 2 bytes, 16 bits).
    [[nodiscard]] std::uint16_t discriminator() const noexcept;
    friend bool operator==(const DeviceId&, const DeviceId&) = default;
};

// A device-id prefix for tokens that cover a batch of devices: 1..16 bytes.
[[nodiscard]] bool has_prefix(const DeviceId& id, ByteView prefix) noexcept;

struct BundleId {
    static constexpr std::size_t kBytes = 16;
    ByteArray<kBytes> bytes{};
    [[nodiscard]] static BundleId random();
    [[nodiscard]] std::string to_string() const { return to_hex(bytes); }
    friend bool operator==(const BundleId&, const BundleId&) = default;
};

// IMSI / SUPI digits: 6..15 decimal digits.
class Imsi {
public:
    [[nodiscard]] static Result<Imsi> parse(std::string_view digits);
    [[nodiscard]] const std::string& str() const noexcept { return digits_; }
    friend bool operator==(const Imsi&, const Imsi&) = default;

private:
    std::string digits_;
};

// PLMN id as MCC+MNC digits: 5 or 6 decimal digits.
class Plmn {
public:
    [[nodiscard]] static Result<Plmn> parse(std::string_view digits);
    [[nodiscard]] const std::string& str() const noexcept { return digits_; }
    friend bool operator==(const Plmn&, const Plmn&) = default;

private:
    std::string digits_;
};

// Network name: 1..32 printable ASCII characters.
class NetworkName {
public:
    static constexpr std::size_t kMaxLength = 32;
    [[nodiscard]] static Result<NetworkName> parse(std::string_view name);
    [[nodiscard]] const std::string& str() const noexcept { return name_; }
    friend bool operator==(const NetworkName&, const NetworkName&) = default;

private:
    std::string name_;
};

// The setup code printed on the label: 8..16 decimal digits. Secret.
class SetupCode {
public:
    static constexpr std::size_t kMinDigits = 8;
    static constexpr std::size_t kMaxDigits = 16;
    [[nodiscard]] static Result<SetupCode> parse(std::string_view digits);
    [[nodiscard]] static SetupCode random(std::size_t digits = 10);
    // PRS for CPace: the digits as fixed-length ASCII.
    [[nodiscard]] ByteView prs() const noexcept { return digits_.view(); }
    [[nodiscard]] std::size_t size() const noexcept { return digits_.size(); }
    // Reveals the digits: for label printing only, never for logs.
    [[nodiscard]] std::string reveal() const {
        return std::string(digits_.view().begin(), digits_.view().end());
    }

private:
    SecretBytes digits_;
};

// Operations an authorisation token may allow, listed explicitly.
enum class Operation : std::uint8_t {
    query = 1,
    deliver_sealed = 2,
    deliver_field = 3,
    reconfigure = 4,
    diagnose = 5,
    deprovision = 6,
    transfer = 7,
};
inline constexpr std::uint64_t kMaxOperation = 7;
[[nodiscard]] std::string_view to_string(Operation op) noexcept;

// Transport types bound into CPace's channel identifier.
enum class TransportType : std::uint8_t { tcp = 1, ble = 2, nfc = 3, loopback = 4 };

// What a label's QR code (or NFC sticker) carries so a provisioner can pair:
//   CP1:<DEVICE-ID in upper-case base32>:<setup code digits>:<transport bits>
// Upper case and digits only, so the QR code uses its compact alphanumeric
// mode. Transport bits: 1 = TCP, 2 = BLE, 4 = NFC. Holds the setup code:
// treat the payload as a secret.
inline constexpr std::uint8_t kBootstrapTcp = 1;
inline constexpr std::uint8_t kBootstrapBle = 2;
inline constexpr std::uint8_t kBootstrapNfc = 4;

struct BootstrapPayload {
    DeviceId device;
    SetupCode code;
    std::uint8_t transports{kBootstrapTcp};

    [[nodiscard]] SecretBytes encode() const;
    [[nodiscard]] static Result<BootstrapPayload> parse(std::string_view text);
};

}  // namespace credprov
