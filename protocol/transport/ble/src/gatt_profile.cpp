// The credprov GATT profile (gatt_profile.hpp).
#include "credprov/transport/ble/gatt_profile.hpp"

#include <algorithm>

namespace credprov::transport::ble {

std::uint16_t discriminator_of(const DeviceId& device) noexcept {
    return static_cast<std::uint16_t>((device.bytes[0] << 8) | device.bytes[1]);
}

Bytes AdvertisedData::encode() const {
    return Bytes{version, static_cast<std::uint8_t>(discriminator >> 8), static_cast<std::uint8_t>(discriminator & 0xff), flags};
}

Result<AdvertisedData> AdvertisedData::decode(ByteView data) {
    if (data.size() < 4) return make_error(ErrorCode::malformed, "advertised service data is shorter than 4 bytes");
    if (data[0] != kProfileVersion) return make_error(ErrorCode::malformed, "advertised profile version is not 1");
    AdvertisedData a;
    a.version = data[0];
    a.discriminator = static_cast<std::uint16_t>((data[1] << 8) | data[2]);
    a.flags = data[3];
    return a;
}

Bytes DeviceInfoBlob::encode() const {
    Bytes out;
    out.reserve(3 + DeviceId::kBytes);
    out.push_back(version);
    out.insert(out.end(), device.bytes.begin(), device.bytes.end());
    out.push_back(modes);
    out.push_back(flags);
    return out;
}

Result<DeviceInfoBlob> DeviceInfoBlob::decode(ByteView data) {
    if (data.size() < 3 + DeviceId::kBytes) return make_error(ErrorCode::malformed, "device info is shorter than 19 bytes");
    if (data[0] != kProfileVersion) return make_error(ErrorCode::malformed, "device info profile version is not 1");
    DeviceInfoBlob b;
    b.version = data[0];
    std::copy_n(data.begin() + 1, DeviceId::kBytes, b.device.bytes.begin());
    b.modes = data[1 + DeviceId::kBytes];
    b.flags = data[2 + DeviceId::kBytes];
    return b;
}

bool valid_adapter_name(std::string_view name) noexcept {
    if (name.size() < 4 || name.size() > 5 || name.substr(0, 3) != "hci") return false;
    return std::all_of(name.begin() + 3, name.end(), [](char c) { return c >= '0' && c <= '9'; });
}

Result<BleTarget> BleTarget::parse(std::string_view text) {
    if (!is_ble_address(text)) return make_error(ErrorCode::malformed, "a BLE address starts with 'ble:'");
    std::string_view rest = text.substr(4);
    BleTarget t;
    if (auto at = rest.find('@'); at != std::string_view::npos) {
        t.adapter = std::string(rest.substr(at + 1));
        rest = rest.substr(0, at);
        if (!valid_adapter_name(t.adapter)) return make_error(ErrorCode::malformed, "the adapter after '@' must be hci0..hci99");
    }
    auto id = DeviceId::parse(rest);
    if (!id) return make_error(ErrorCode::malformed, "ble:<device id>: the device id must be 26 base32 characters");
    t.device = *id;
    return t;
}

Result<std::string> parse_listen_adapter(std::string_view text) {
    if (!is_ble_address(text)) return make_error(ErrorCode::malformed, "a BLE listen address starts with 'ble:'");
    const std::string_view rest = text.substr(4);
    if (rest.empty()) return std::string(kDefaultAdapter);
    if (!valid_adapter_name(rest)) return make_error(ErrorCode::malformed, "ble:<adapter>: the adapter must be hci0..hci99");
    return std::string(rest);
}

}  // namespace credprov::transport::ble
