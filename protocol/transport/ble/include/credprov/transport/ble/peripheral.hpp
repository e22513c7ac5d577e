// The device agent's side of BLE: a GATT peripheral registered with
// bluetoothd over D-Bus (org.bluez.GattManager1.RegisterApplication) and an
// advertisement (org.bluez.LEAdvertisingManager1), following gatt_profile.hpp.
//
// Single-threaded: the owner polls fd() with its other descriptors and
// calls pump() and maintain(); a provisioning session's GattLink drives the
// bus itself while the session runs. maintain() (re-)registers whenever it
// is needed: at start, when the adapter appears or is powered on again, and
// after bluetoothd restarts. One session at a time; a second central is
// refused while one is in a session.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "credprov/protocol/identifiers.hpp"
#include "credprov/protocol/result.hpp"
#include "credprov/protocol/transport.hpp"

namespace credprov::transport::ble {

struct PeripheralOptions {
    std::string adapter{"hci0"};
    DeviceId device;
    std::uint8_t modes{1};           // kModeSealed | kModeField (messages.hpp), shown in the info characteristic
    bool provisioned{false};         // flag in the advertisement and the info characteristic
    bool advertise{true};            // advertise at start
    bool power_on_adapter{true};     // power the adapter on if it is off
    // Debug lines about GATT traffic (sizes, MTU, sessions; never contents).
    std::function<void(const std::string&)> trace;
};

class BlePeripheral {
public:
    virtual ~BlePeripheral() = default;
    BlePeripheral() = default;
    BlePeripheral(const BlePeripheral&) = delete;
    BlePeripheral& operator=(const BlePeripheral&) = delete;

    [[nodiscard]] virtual int fd() const = 0;
    virtual void pump(std::chrono::milliseconds timeout) = 0;

    // Registers the application and the advertisement when they are not (or
    // no longer) registered; retries at most once a second. Returns true when
    // a (re-)registration happened in this call.
    virtual bool maintain() = 0;
    [[nodiscard]] virtual bool registered() const noexcept = 0;
    // Why the last registration attempt failed (empty after a success).
    [[nodiscard]] virtual const std::string& problem() const noexcept = 0;

    // The session a central started with its first write, once; else null.
    [[nodiscard]] virtual std::shared_ptr<Transport> take_session() = 0;
    // Ends the current session and disconnects its central.
    virtual void end_session() = 0;

    virtual void set_advertising(bool on) = 0;
    virtual void set_provisioned(bool provisioned) = 0;
    [[nodiscard]] virtual bool advertising() const noexcept = 0;
};

// The peripheral over BlueZ, in this process (links sdbus-c++,
// credprov_transport_ble): connects to the system bus and exports the GATT
// objects; registration with bluetoothd happens in maintain(). The agent
// daemon loads the same through peripheral_module.hpp instead, so that a
// build without BLE in use maps no D-Bus library.
[[nodiscard]] Result<std::unique_ptr<BlePeripheral>> create_bluez_peripheral(const PeripheralOptions& options);

}  // namespace credprov::transport::ble
