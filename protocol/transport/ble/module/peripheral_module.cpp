// credprov-ble-peripheral.so: the BlueZ peripheral behind the C entry points
// of peripheral_module.hpp. Only these two symbols are exported.
#include "credprov/transport/ble/peripheral_module.hpp"

#define CREDPROV_EXPORT __attribute__((visibility("default")))

extern "C" CREDPROV_EXPORT const char* credprov_ble_module_fingerprint() { return CREDPROV_BUILD_FINGERPRINT; }

extern "C" CREDPROV_EXPORT int credprov_ble_create_peripheral(
    const credprov::transport::ble::PeripheralOptions* options,
    std::unique_ptr<credprov::transport::ble::BlePeripheral>* out, std::string* error) {
    try {
        auto p = credprov::transport::ble::create_bluez_peripheral(*options);
        if (!p) {
            *error = p.error().message;
            return 1;
        }
        *out = std::move(*p);
        return 0;
    } catch (const std::exception& e) {
        *error = std::string("ble: ") + e.what();
        return 1;
    }
}
