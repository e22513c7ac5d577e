// The BlueZ peripheral as a loadable module, credprov-ble-peripheral.so
// (decision 0008). credprov-agentd links only this loader: the D-Bus
// libraries (sdbus-c++, libsystemd) are mapped only into an agent whose
// configuration listens on ble:, so a TCP-only device keeps its footprint.
//
// The module is searched, first match wins, in:
//   1. $CREDPROV_MODULE_DIR, when set (tests, relocated installs);
//   2. <directory of the running program>/../lib/credprov (the build tree's
//      and a relocatable install's layout);
//   3. the install directory compiled in (CMAKE_INSTALL_FULL_LIBDIR/credprov).
// The module and the loader must come from the same build: the module
// exports its build fingerprint and the loader refuses another.
#pragma once

#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "credprov/protocol/result.hpp"
#include "credprov/transport/ble/peripheral.hpp"

namespace credprov::transport::ble {

inline constexpr std::string_view kPeripheralModuleFile = "credprov-ble-peripheral.so";

// The directories searched, in order (see above).
[[nodiscard]] std::vector<std::filesystem::path> peripheral_module_dirs();

// Loads the module (once per process; it is never unloaded) and creates the
// peripheral through it. Errors name the directories searched, or the
// dynamic loader's complaint, or the module's own error.
[[nodiscard]] Result<std::unique_ptr<BlePeripheral>> load_peripheral(const PeripheralOptions& options);

}  // namespace credprov::transport::ble

// The module's entry points (C linkage, so dlsym finds them by name).
extern "C" {
// The build fingerprint the module was compiled with (CREDPROV_BUILD_FINGERPRINT).
const char* credprov_ble_module_fingerprint();
// Creates a peripheral; returns 0 and sets *out, or returns non-zero and sets *error.
int credprov_ble_create_peripheral(const credprov::transport::ble::PeripheralOptions* options,
                                   std::unique_ptr<credprov::transport::ble::BlePeripheral>* out, std::string* error);
}
