// The peripheral module loader (peripheral_module.hpp): where it looks, what
// it says when the module is missing or broken, and that a found module's
// code runs.
#include <doctest/doctest.h>

#include <cstdlib>
#include <fstream>

#include "credprov/transport/ble/peripheral_module.hpp"
#include "scratch.hpp"

using namespace credprov;
using namespace credprov::transport::ble;

namespace {

struct ModuleDir {
    explicit ModuleDir(const std::filesystem::path& dir) { ::setenv("CREDPROV_MODULE_DIR", dir.c_str(), 1); }
    ~ModuleDir() { ::unsetenv("CREDPROV_MODULE_DIR"); }
    ModuleDir(const ModuleDir&) = delete;
    ModuleDir& operator=(const ModuleDir&) = delete;
};

}  // namespace

TEST_CASE("ble module: searched in $CREDPROV_MODULE_DIR, beside the program, then the install directory") {
    credprov::testing::ScratchDir scratch;
    {
        ModuleDir env(scratch.path());
        const auto dirs = peripheral_module_dirs();
        REQUIRE(dirs.size() >= 2);
        CHECK(dirs.front() == scratch.path());
        CHECK(dirs.back() == std::filesystem::path(CREDPROV_TEST_MODULE_INSTALL_DIR));
    }
    const auto dirs = peripheral_module_dirs();
    REQUIRE_FALSE(dirs.empty());
    CHECK(dirs.front().filename() == "credprov");
    CHECK(dirs.front().parent_path().filename() == "lib");
}

TEST_CASE("ble module: a file that is not a loadable module is refused with the loader's reason") {
    credprov::testing::ScratchDir scratch;
    std::ofstream(scratch.path() / std::string(kPeripheralModuleFile)) << "not an ELF object";
    ModuleDir env(scratch.path());
    PeripheralOptions o;
    auto p = load_peripheral(o);
    REQUIRE_FALSE(p);
    CHECK(p.error().message.find("cannot load") != std::string::npos);
    CHECK(p.error().message.find(scratch.path().string()) != std::string::npos);
}

TEST_CASE("ble module: the built module is found and its own checks answer") {
    ModuleDir env(CREDPROV_TEST_MODULE_DIR);
    PeripheralOptions o;
    o.adapter = "wlan0";  // the module refuses it before touching D-Bus
    auto p = load_peripheral(o);
    REQUIRE_FALSE(p);
    CHECK(p.error().message == "ble: the adapter must be hci0..hci99");
}
