// libFuzzer harness for the BLE profile's decoders of what any radio nearby
// may send: advertised data, the info characteristic and BLE addresses. A
// decode that succeeds must re-encode to the same leading bytes.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "credprov/transport/ble/gatt_profile.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace credprov::transport::ble;
    const credprov::ByteView bytes(data, size);
    if (auto a = AdvertisedData::decode(bytes)) {
        const auto again = a->encode();
        if (again.size() > size || !std::equal(again.begin(), again.end(), data)) std::abort();
    }
    if (auto i = DeviceInfoBlob::decode(bytes)) {
        const auto again = i->encode();
        if (again.size() > size || !std::equal(again.begin(), again.end(), data)) std::abort();
    }
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    if (auto t = BleTarget::parse(text)) {
        if (!valid_adapter_name(t->adapter)) std::abort();
    }
    (void)parse_listen_adapter(text);
    return 0;
}
