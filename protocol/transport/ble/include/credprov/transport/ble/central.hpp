// The provisioner's side of BLE: a GATT central through bluetoothd's D-Bus
// API. Discovery with a filter on the credprov service UUID (LE only),
// connection through org.bluez.Device1, characteristics found through the
// object manager, requests written (ATT Write Requests) to the request
// characteristic and responses taken from notifications (PropertiesChanged
// on the response characteristic's Value). Every BlueZ failure becomes an
// error that says what failed: adapter missing or powered off, device not
// found, connection failed, services not resolved, disconnected.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "credprov/protocol/identifiers.hpp"
#include "credprov/protocol/result.hpp"
#include "credprov/transport/ble/gatt_link.hpp"

namespace credprov::transport::ble {

struct DiscoveredDevice {
    std::string address;  // Bluetooth address
    std::string name;     // advertised or remembered name, may be empty
    std::uint16_t discriminator{0};
    bool provisioned{false};
    std::optional<std::int16_t> rssi;
    std::string object_path;  // BlueZ's Device1 object
};

struct CentralOptions {
    std::string adapter{"hci0"};
    bool power_on_adapter{true};
    // Debug lines about the connection and GATT traffic (sizes, never contents).
    std::function<void(const std::string&)> trace;
};

// Scans for `duration`, calling on_found for each credprov device as it
// appears (and again when its RSSI changes); returns what was seen.
[[nodiscard]] Result<std::vector<DiscoveredDevice>> discover(const CentralOptions& options, std::chrono::milliseconds duration,
                                                             const std::function<void(const DiscoveredDevice&)>& on_found = {});

// A connected session with one device: its link, and the counts the BLE
// benchmark reports.
class BleConnection {
public:
    ~BleConnection();
    BleConnection(const BleConnection&) = delete;
    BleConnection& operator=(const BleConnection&) = delete;

    [[nodiscard]] GattLink& link() noexcept;
    // ATT exchanges spent before the first protocol message: the info read,
    // the notification subscription (discovery by the service UUID filter
    // is passive scanning, not ATT).
    [[nodiscard]] int setup_round_trips() const noexcept;
    [[nodiscard]] std::size_t att_mtu() const noexcept;
    void disconnect();

    struct Impl;
    explicit BleConnection(std::unique_ptr<Impl> impl);

private:
    std::unique_ptr<Impl> impl_;
};

// Finds the device by its discriminator (scanning up to `timeout`),
// connects, resolves services, confirms the whole device id from the info
// characteristic and subscribes to responses.
[[nodiscard]] Result<std::unique_ptr<BleConnection>> connect(const CentralOptions& options, const DeviceId& device,
                                                             std::chrono::milliseconds timeout);

}  // namespace credprov::transport::ble
