// Finding and loading credprov-ble-peripheral.so (peripheral_module.hpp).
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <optional>
#include <string>

#include "credprov/transport/ble/peripheral_module.hpp"

namespace credprov::transport::ble {

namespace {

using Fingerprint = const char* (*)();
using Create = int (*)(const PeripheralOptions*, std::unique_ptr<BlePeripheral>*, std::string*);

struct Module {
    Fingerprint fingerprint{nullptr};
    Create create{nullptr};
};

std::filesystem::path program_dir() {
    std::error_code ec;
    auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    return ec ? std::filesystem::path{} : exe.parent_path();
}

Result<Module> open_module() {
    std::string tried;
    for (const auto& dir : peripheral_module_dirs()) {
        const auto file = dir / kPeripheralModuleFile;
        std::error_code ec;
        if (!std::filesystem::is_regular_file(file, ec)) {
            tried += (tried.empty() ? "" : ", ") + dir.string();
            continue;
        }
        // RTLD_LOCAL: the module's symbols (its own copies of the static
        // libraries) never interpose on this program's.
        void* handle = ::dlopen(file.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (handle == nullptr) {
            const char* why = ::dlerror();
            return make_error(ErrorCode::io, "ble: cannot load " + file.string() + ": " + (why ? why : "unknown error"));
        }
        Module m;
        m.fingerprint = reinterpret_cast<Fingerprint>(::dlsym(handle, "credprov_ble_module_fingerprint"));
        m.create = reinterpret_cast<Create>(::dlsym(handle, "credprov_ble_create_peripheral"));
        if (m.fingerprint == nullptr || m.create == nullptr) {
            ::dlclose(handle);
            return make_error(ErrorCode::io, "ble: " + file.string() + " is not a credprov BLE module");
        }
        if (std::strcmp(m.fingerprint(), CREDPROV_BUILD_FINGERPRINT) != 0) {
            const std::string theirs = m.fingerprint();
            ::dlclose(handle);
            return make_error(ErrorCode::io, "ble: " + file.string() + " is from another build (" + theirs +
                                                 "; this program is " + CREDPROV_BUILD_FINGERPRINT + ")");
        }
        return m;  // never unloaded: the peripheral's code lives there
    }
    return make_error(ErrorCode::io, "ble: BLE support is not installed: " + std::string(kPeripheralModuleFile) +
                                         " not found in " + tried +
                                         " (install the agent's BLE module, or build with -DCREDPROV_WITH_BLE=ON)");
}

}  // namespace

std::vector<std::filesystem::path> peripheral_module_dirs() {
    std::vector<std::filesystem::path> dirs;
    if (const char* env = std::getenv("CREDPROV_MODULE_DIR"); env != nullptr && *env != '\0') dirs.emplace_back(env);
    if (auto dir = program_dir(); !dir.empty()) dirs.push_back((dir / ".." / "lib" / "credprov").lexically_normal());
    const std::filesystem::path installed = CREDPROV_MODULE_INSTALL_DIR;
    if (std::find(dirs.begin(), dirs.end(), installed) == dirs.end()) dirs.push_back(installed);
    return dirs;
}

Result<std::unique_ptr<BlePeripheral>> load_peripheral(const PeripheralOptions& options) {
    static std::mutex lock;
    static std::optional<Result<Module>> module;
    Module m;
    {
        std::lock_guard guard(lock);
        if (!module || !*module) module = open_module();
        if (!*module) return module->error();
        m = **module;
    }
    std::unique_ptr<BlePeripheral> out;
    std::string error;
    if (m.create(&options, &out, &error) != 0 || !out) {
        return make_error(ErrorCode::io, error.empty() ? std::string("ble: the module could not create the peripheral") : error);
    }
    return out;
}

}  // namespace credprov::transport::ble
