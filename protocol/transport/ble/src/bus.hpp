// The D-Bus side shared by the BLE peripheral and central: one system bus
// connection driven from the caller's thread (no event-loop thread, so the
// GATT handlers and the protocol run on one thread without locks), and
// asynchronous calls waited for by pumping the connection, which lets
// bluetoothd call back into us (RegisterApplication does) while we wait.
// Internal to the BLE transport.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <sdbus-c++/sdbus-c++.h>

#include "credprov/protocol/result.hpp"

namespace credprov::transport::ble::detail {

inline constexpr const char* kBluez = "org.bluez";
inline constexpr const char* kAdapterIface = "org.bluez.Adapter1";
inline constexpr const char* kDeviceIface = "org.bluez.Device1";
inline constexpr const char* kGattManagerIface = "org.bluez.GattManager1";
inline constexpr const char* kAdvertisingManagerIface = "org.bluez.LEAdvertisingManager1";
inline constexpr const char* kGattServiceIface = "org.bluez.GattService1";
inline constexpr const char* kGattCharacteristicIface = "org.bluez.GattCharacteristic1";
inline constexpr const char* kAdvertisementIface = "org.bluez.LEAdvertisement1";
inline constexpr const char* kPropertiesIface = "org.freedesktop.DBus.Properties";
inline constexpr const char* kObjectManagerIface = "org.freedesktop.DBus.ObjectManager";

using Dict = std::map<std::string, sdbus::Variant>;
using ManagedObjects = std::map<sdbus::ObjectPath, std::map<std::string, Dict>>;

class Bus {
public:
    [[nodiscard]] static Result<std::unique_ptr<Bus>> system();

    [[nodiscard]] sdbus::IConnection& connection() noexcept { return *conn_; }
    [[nodiscard]] int fd() const;

    // Handles pending traffic, then waits up to `timeout` for more and
    // handles that too.
    void pump(std::chrono::milliseconds timeout);

    // A method call on bluetoothd, waited for while pumping. Errors name the
    // step (`what`) and BlueZ's error name and message.
    [[nodiscard]] Result<sdbus::MethodReply> call(const std::string& path, const std::string& iface, const std::string& method,
                                                  const std::function<void(sdbus::MethodCall&)>& args,
                                                  std::chrono::milliseconds timeout, const std::string& what);

    [[nodiscard]] Result<ManagedObjects> managed_objects(std::chrono::milliseconds timeout = std::chrono::seconds(5));
    [[nodiscard]] Result<sdbus::Variant> get_property(const std::string& path, const std::string& iface, const std::string& name);
    [[nodiscard]] Status set_property(const std::string& path, const std::string& iface, const std::string& name,
                                      const sdbus::Variant& value);

    // Subscribes to a signal; the handler runs inside pump().
    [[nodiscard]] sdbus::Slot on_signal(const std::string& match, std::function<void(sdbus::Message&)> handler);

private:
    explicit Bus(std::unique_ptr<sdbus::IConnection> c) : conn_(std::move(c)) {}
    std::unique_ptr<sdbus::IConnection> conn_;
    std::map<std::string, std::unique_ptr<sdbus::IProxy>> proxies_;  // by object path
    sdbus::IProxy& proxy(const std::string& path);
};

// "org.bluez.Error.NotReady: Resource Not Ready" style text for an error.
[[nodiscard]] std::string describe(const sdbus::Error& e);

}  // namespace credprov::transport::ble::detail
