// The credprov GATT profile: what a device agent (GATT peripheral) exposes
// over BLE and what a provisioner (GATT central) looks for. Pure data and
// parsing, no D-Bus: shared by both roles and unit-tested on its own.
//
//   service  8c5e0001-5a1e-4c2b-9f3d-6372656470ff  primary
//     request   ...0002...  write, write-without-response  P -> D fragments (FRAMING.md)
//     response  ...0003...  notify                         D -> P fragments
//     info      ...0004...  read                           DeviceInfoBlob below
//
// Advertisement: the service UUID, and service data on it:
//   [0] profile version (1)   [1..2] discriminator (big endian)   [3] flags
// The discriminator is the first 16 bits of the device id, which is itself a
// hash of the device's identity key: enough to pick the right device among
// many nearby; the info characteristic then confirms the whole id.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/identifiers.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov::transport::ble {

inline constexpr std::string_view kServiceUuid = "8c5e0001-5a1e-4c2b-9f3d-6372656470ff";
inline constexpr std::string_view kRequestUuid = "8c5e0002-5a1e-4c2b-9f3d-6372656470ff";
inline constexpr std::string_view kResponseUuid = "8c5e0003-5a1e-4c2b-9f3d-6372656470ff";
inline constexpr std::string_view kInfoUuid = "8c5e0004-5a1e-4c2b-9f3d-6372656470ff";

inline constexpr std::uint8_t kProfileVersion = 1;
inline constexpr std::string_view kDefaultAdapter = "hci0";
// ATT's default MTU is 23: 20 bytes per write or notification.
inline constexpr std::size_t kDefaultAttMtu = 23;
inline constexpr std::size_t kAttHeader = 3;
// An attribute value is at most 512 bytes (Core spec, Vol 3 Part F 3.2.9),
// whatever the MTU, and one LE data packet (Data Length Extension) carries
// 251 bytes: 244 of ATT value after the L2CAP and ATT headers. Fragments stay
// within one packet; a link that takes less shrinks them (GattLink).
inline constexpr std::size_t kMaxAttValue = 512;
inline constexpr std::size_t kMaxFragment = 244;
inline constexpr std::size_t kMinFragment = kDefaultAttMtu - kAttHeader;  // 20, every link carries it
// The fragment size for a negotiated ATT MTU.
[[nodiscard]] constexpr std::size_t fragment_size_for(std::size_t att_mtu) noexcept {
    const std::size_t payload = att_mtu > kAttHeader ? att_mtu - kAttHeader : 0;
    return payload < kMaxFragment ? payload : kMaxFragment;
}

inline constexpr std::uint8_t kFlagProvisioned = 0x01;

[[nodiscard]] std::uint16_t discriminator_of(const DeviceId& device) noexcept;

struct AdvertisedData {
    std::uint8_t version{kProfileVersion};
    std::uint16_t discriminator{0};
    std::uint8_t flags{0};
    [[nodiscard]] Bytes encode() const;
    // malformed when too short or of another profile version.
    [[nodiscard]] static Result<AdvertisedData> decode(ByteView data);
};

// The info characteristic: what anyone in range may read before pairing.
struct DeviceInfoBlob {
    std::uint8_t version{kProfileVersion};
    DeviceId device;
    std::uint8_t modes{1};  // kModeSealed | kModeField bits (messages.hpp)
    std::uint8_t flags{0};
    [[nodiscard]] Bytes encode() const;  // 19 bytes
    [[nodiscard]] static Result<DeviceInfoBlob> decode(ByteView data);
};

// "hci0".."hci99": checked before it becomes a D-Bus object path.
[[nodiscard]] bool valid_adapter_name(std::string_view name) noexcept;

// Provisioner side: "ble:<device id>" or "ble:<device id>@hciN".
struct BleTarget {
    DeviceId device;
    std::string adapter{kDefaultAdapter};
    [[nodiscard]] static Result<BleTarget> parse(std::string_view text);
};

// Agent side (a `listen` entry): "ble:" or "ble:hciN".
[[nodiscard]] Result<std::string> parse_listen_adapter(std::string_view text);

[[nodiscard]] inline bool is_ble_address(std::string_view text) noexcept { return text.substr(0, 4) == "ble:"; }

}  // namespace credprov::transport::ble
