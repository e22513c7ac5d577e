// The GATT central (central.hpp).
#include "credprov/transport/ble/central.hpp"

#include <algorithm>
#include <map>

#include "bus.hpp"
#include "credprov/transport/ble/gatt_profile.hpp"

namespace credprov::transport::ble {

using namespace std::chrono_literals;
using detail::Bus;
using detail::Dict;

namespace {

constexpr std::uint16_t kCompanyId = 0xFFFF;  // see peripheral.cpp

std::string adapter_path(const std::string& adapter) { return "/org/bluez/" + adapter; }

// Makes sure the adapter exists and is powered.
Status ready_adapter(Bus& bus, const CentralOptions& o) {
    const std::string path = adapter_path(o.adapter);
    auto powered = bus.get_property(path, detail::kAdapterIface, "Powered");
    if (!powered) return make_error(ErrorCode::io, "ble: adapter " + o.adapter + " is not available (" + powered.error().message + ")");
    if (powered->get<bool>()) return {};
    if (!o.power_on_adapter) return make_error(ErrorCode::io, "ble: adapter " + o.adapter + " is powered off");
    return bus.set_property(path, detail::kAdapterIface, "Powered", sdbus::Variant(true));
}

// Tracks credprov devices seen during one scan.
class Scan {
public:
    Scan(Bus& bus, std::string adapter, std::function<void(const DiscoveredDevice&)> on_found)
        : bus_(bus), adapter_(std::move(adapter)), on_found_(std::move(on_found)) {
        const std::string ns = adapter_path(adapter_);
        added_ = bus_.on_signal("type='signal',sender='org.bluez',interface='org.freedesktop.DBus.ObjectManager',member='InterfacesAdded'",
                                [this](sdbus::Message& m) {
                                    sdbus::ObjectPath path;
                                    std::map<std::string, Dict> ifaces;
                                    m >> path >> ifaces;
                                    auto it = ifaces.find(detail::kDeviceIface);
                                    if (it != ifaces.end()) merge(path, it->second);
                                });
        changed_ = bus_.on_signal("type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',"
                                  "member='PropertiesChanged',path_namespace='" + ns + "'",
                                  [this](sdbus::Message& m) {
                                      std::string iface;
                                      Dict props;
                                      m >> iface >> props;
                                      if (iface == detail::kDeviceIface) merge(m.getPath(), props);
                                  });
    }

    Status start() {
        const std::string path = adapter_path(adapter_);
        Dict filter{{"UUIDs", sdbus::Variant(std::vector<std::string>{std::string(kServiceUuid)})},
                    {"Transport", sdbus::Variant(std::string("le"))},
                    {"DuplicateData", sdbus::Variant(true)}};
        auto f = bus_.call(path, detail::kAdapterIface, "SetDiscoveryFilter", [&](sdbus::MethodCall& c) { c << filter; }, 5s,
                           "setting the discovery filter");
        if (!f) return f.error();
        // Devices BlueZ already knows and currently hears (they have an RSSI).
        if (auto objects = bus_.managed_objects(); objects) {
            for (const auto& [p, ifaces] : *objects) {
                auto it = ifaces.find(detail::kDeviceIface);
                if (it != ifaces.end() && p.rfind(path + "/", 0) == 0) merge(p, it->second);
            }
        }
        auto s = bus_.call(path, detail::kAdapterIface, "StartDiscovery", nullptr, 5s, "starting discovery");
        if (!s && s.error().message.find("InProgress") == std::string::npos) return s.error();
        running_ = true;
        return {};
    }
    void stop() {
        if (!running_) return;
        running_ = false;
        (void)bus_.call(adapter_path(adapter_), detail::kAdapterIface, "StopDiscovery", nullptr, 5s, "stopping discovery");
    }
    ~Scan() { stop(); }

    [[nodiscard]] std::vector<DiscoveredDevice> devices() const {
        std::vector<DiscoveredDevice> out;
        for (const auto& [path, d] : found_) out.push_back(d);
        return out;
    }

private:
    void merge(const std::string& path, const Dict& props) {
        if (path.rfind(adapter_path(adapter_) + "/", 0) != 0) return;
        Dict& all = props_[path];
        for (const auto& [k, v] : props) all[k] = v;
        auto d = parse(path, all);
        if (!d) return;
        found_[path] = *d;
        if (on_found_) on_found_(*d);
    }

    static std::optional<DiscoveredDevice> parse(const std::string& path, const Dict& all) {
        try {
            auto rssi = all.find("RSSI");
            auto md = all.find("ManufacturerData");
            if (rssi == all.end() || md == all.end()) return std::nullopt;  // not heard in this scan, or not ours
            auto data = md->second.get<std::map<std::uint16_t, sdbus::Variant>>();
            auto ours = data.find(kCompanyId);
            if (ours == data.end()) return std::nullopt;
            auto bytes = ours->second.get<std::vector<std::uint8_t>>();
            auto adv = AdvertisedData::decode(ByteView(bytes.data(), bytes.size()));
            if (!adv) return std::nullopt;
            DiscoveredDevice d;
            d.object_path = path;
            d.discriminator = adv->discriminator;
            d.provisioned = (adv->flags & kFlagProvisioned) != 0;
            d.rssi = rssi->second.get<std::int16_t>();
            if (auto a = all.find("Address"); a != all.end()) d.address = a->second.get<std::string>();
            if (auto n = all.find("Name"); n != all.end()) d.name = n->second.get<std::string>();
            return d;
        } catch (const sdbus::Error&) {
            return std::nullopt;  // a property of an unexpected type: not a credprov device
        }
    }

    Bus& bus_;
    std::string adapter_;
    std::function<void(const DiscoveredDevice&)> on_found_;
    std::map<std::string, Dict> props_;
    std::map<std::string, DiscoveredDevice> found_;
    sdbus::Slot added_, changed_;
    bool running_{false};
};

}  // namespace

Result<std::vector<DiscoveredDevice>> discover(const CentralOptions& options, std::chrono::milliseconds duration,
                                               const std::function<void(const DiscoveredDevice&)>& on_found) {
    if (!valid_adapter_name(options.adapter)) return make_error(ErrorCode::malformed, "ble: the adapter must be hci0..hci99");
    auto bus = Bus::system();
    if (!bus) return bus.error();
    if (auto st = ready_adapter(**bus, options); !st) return st.error();
    Scan scan(**bus, options.adapter, on_found);
    if (auto st = scan.start(); !st) return st.error();
    const auto end = std::chrono::steady_clock::now() + duration;
    while (std::chrono::steady_clock::now() < end) (*bus)->pump(100ms);
    scan.stop();
    return scan.devices();
}

struct BleConnection::Impl {
    std::function<void(const std::string&)> trace;
    std::unique_ptr<Bus> bus;
    std::string device_path;
    std::string request_path, response_path, info_path;
    std::unique_ptr<GattLink> link;
    sdbus::Slot notifications, disconnects;
    int setup_round_trips{0};
    std::size_t mtu{kDefaultAttMtu};
    bool connected{false};

    Status write(ByteView fragment) {
        if (trace) trace("ble: write of " + std::to_string(fragment.size()) + " bytes");
        auto r = bus->call(request_path, detail::kGattCharacteristicIface, "WriteValue",
                           [&](sdbus::MethodCall& c) {
                               c << std::vector<std::uint8_t>(fragment.begin(), fragment.end())
                                 << Dict{{"type", sdbus::Variant(std::string("request"))}};
                           },
                           5s, "writing to the device");
        if (!r) {
            if (r.error().message.find("Invalid Length") != std::string::npos) return make_error(ErrorCode::oversized, r.error().message);
            return make_error(r.error().code == ErrorCode::timeout ? ErrorCode::timeout : ErrorCode::closed, r.error().message);
        }
        return {};
    }
};

BleConnection::BleConnection(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
BleConnection::~BleConnection() { disconnect(); }
GattLink& BleConnection::link() noexcept { return *impl_->link; }
int BleConnection::setup_round_trips() const noexcept { return impl_->setup_round_trips; }
std::size_t BleConnection::att_mtu() const noexcept { return impl_->mtu; }

void BleConnection::disconnect() {
    if (!impl_ || !impl_->connected) return;
    impl_->connected = false;
    impl_->notifications = {};
    impl_->disconnects = {};
    (void)impl_->bus->call(impl_->response_path, detail::kGattCharacteristicIface, "StopNotify", nullptr, 2s, "unsubscribing");
    (void)impl_->bus->call(impl_->device_path, detail::kDeviceIface, "Disconnect", nullptr, 5s, "disconnecting");
}

namespace {

// Writes go as ATT Write Requests: each is acknowledged, so a fragment the
// device could not take fails here instead of breaking the message later
// (a message is one or two fragments at the usual negotiated MTU).

// Connects to one candidate; on success the connection is subscribed and
// its device id confirmed.
Result<std::unique_ptr<BleConnection::Impl>> open_candidate(std::unique_ptr<Bus>& bus, const std::string& path, const DeviceId& device,
                                                            std::chrono::steady_clock::time_point deadline,
                                                            const std::function<void(const std::string&)>& trace) {
    auto impl = std::make_unique<BleConnection::Impl>();
    impl->trace = trace;
    auto note = [&](const std::string& line) {
        if (trace) trace(line);
    };
    note("ble: connecting to " + path);
    impl->device_path = path;
    auto left = [&] {
        return std::max(1000ms, std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
    };
    auto c = bus->call(path, detail::kDeviceIface, "Connect", nullptr, left(), "connecting to the device");
    if (!c) return make_error(ErrorCode::io, "ble: connection failed: " + c.error().message);
    impl->connected = true;
    auto fail = [&](Error e) {
        (void)bus->call(path, detail::kDeviceIface, "Disconnect", nullptr, 5s, "disconnecting");
        return e;
    };
    // Services are resolved shortly after the connection.
    bool resolved = false;
    while (!resolved && std::chrono::steady_clock::now() < deadline) {
        auto r = bus->get_property(path, detail::kDeviceIface, "ServicesResolved");
        if (r && r->get<bool>()) {
            resolved = true;
            break;
        }
        bus->pump(50ms);
    }
    if (!resolved) return fail(make_error(ErrorCode::timeout, "ble: the device's services were not resolved in time"));
    note("ble: connected; services resolved");
    auto objects = bus->managed_objects();
    if (!objects) return fail(objects.error());
    std::string service_path;
    for (const auto& [p, ifaces] : *objects) {
        auto s = ifaces.find(detail::kGattServiceIface);
        if (s == ifaces.end() || p.rfind(path + "/", 0) != 0) continue;
        auto uuid = s->second.find("UUID");
        if (uuid != s->second.end() && uuid->second.get<std::string>() == kServiceUuid) service_path = p;
    }
    if (service_path.empty()) return fail(make_error(ErrorCode::io, "ble: the device has no credprov service"));
    for (const auto& [p, ifaces] : *objects) {
        auto ch = ifaces.find(detail::kGattCharacteristicIface);
        if (ch == ifaces.end() || p.rfind(service_path + "/", 0) != 0) continue;
        auto uuid = ch->second.find("UUID");
        if (uuid == ch->second.end()) continue;
        const auto u = uuid->second.get<std::string>();
        if (u == kRequestUuid) impl->request_path = p;
        if (u == kResponseUuid) impl->response_path = p;
        if (u == kInfoUuid) impl->info_path = p;
        if (u == kRequestUuid) {
            if (auto mtu = ch->second.find("MTU"); mtu != ch->second.end()) impl->mtu = mtu->second.get<std::uint16_t>();
        }
    }
    if (impl->request_path.empty() || impl->response_path.empty() || impl->info_path.empty()) {
        return fail(make_error(ErrorCode::io, "ble: the credprov service lacks a characteristic"));
    }
    auto info = bus->call(impl->info_path, detail::kGattCharacteristicIface, "ReadValue", [](sdbus::MethodCall& m) { m << Dict{}; }, left(),
                          "reading the device info");
    if (!info) return fail(info.error());
    ++impl->setup_round_trips;
    std::vector<std::uint8_t> blob;
    *info >> blob;
    auto parsed = DeviceInfoBlob::decode(ByteView(blob.data(), blob.size()));
    if (!parsed) return fail(parsed.error());
    if (!(parsed->device == device)) return fail(make_error(ErrorCode::io, "ble: another device with the same discriminator"));
    note("ble: device id confirmed; ATT MTU " + std::to_string(impl->mtu));
    return impl;
}

}  // namespace

Result<std::unique_ptr<BleConnection>> connect(const CentralOptions& options, const DeviceId& device, std::chrono::milliseconds timeout) {
    if (!valid_adapter_name(options.adapter)) return make_error(ErrorCode::malformed, "ble: the adapter must be hci0..hci99");
    auto bus = Bus::system();
    if (!bus) return bus.error();
    if (auto st = ready_adapter(**bus, options); !st) return st.error();
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    const std::uint16_t wanted = discriminator_of(device);
    std::vector<std::string> tried;
    Error last = make_error(ErrorCode::io, "ble: no device with this id was found nearby (is it advertising?)");
    while (std::chrono::steady_clock::now() < deadline) {
        std::string candidate;
        {
            Scan scan(**bus, options.adapter, {});
            if (auto st = scan.start(); !st) return st.error();
            while (candidate.empty() && std::chrono::steady_clock::now() < deadline) {
                (*bus)->pump(50ms);
                for (const auto& d : scan.devices()) {
                    if (d.discriminator == wanted && std::find(tried.begin(), tried.end(), d.object_path) == tried.end()) {
                        candidate = d.object_path;
                        break;
                    }
                }
            }
        }  // discovery stops before connecting
        if (candidate.empty()) break;
        tried.push_back(candidate);
        auto opened = open_candidate(*bus, candidate, device, deadline, options.trace);
        if (!opened) {
            last = opened.error();
            continue;
        }
        auto impl = std::move(*opened);
        Bus* b = bus->get();
        BleConnection::Impl* raw = impl.get();
        impl->link = std::make_unique<GattLink>(
            fragment_size_for(impl->mtu), [raw](ByteView f) { return raw->write(f); }, [b](std::chrono::milliseconds t) { b->pump(t); });
        impl->notifications = b->on_signal("type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',"
                                           "member='PropertiesChanged',path='" + impl->response_path + "'",
                                           [raw](sdbus::Message& m) {
                                               std::string iface;
                                               Dict props;
                                               m >> iface >> props;
                                               auto v = props.find("Value");
                                               if (iface != detail::kGattCharacteristicIface || v == props.end()) return;
                                               auto bytes = v->second.get<std::vector<std::uint8_t>>();
                                               if (raw->trace) raw->trace("ble: notification of " + std::to_string(bytes.size()) + " bytes");
                                               raw->link->fragment_received(ByteView(bytes.data(), bytes.size()));
                                           });
        impl->disconnects = b->on_signal("type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',"
                                         "member='PropertiesChanged',path='" + impl->device_path + "'",
                                         [raw](sdbus::Message& m) {
                                             std::string iface;
                                             Dict props;
                                             m >> iface >> props;
                                             auto c = props.find("Connected");
                                             if (iface == detail::kDeviceIface && c != props.end() && !c->second.get<bool>()) {
                                                 raw->link->link_lost(make_error(ErrorCode::closed, "ble: the device disconnected"));
                                             }
                                         });
        auto sub = b->call(impl->response_path, detail::kGattCharacteristicIface, "StartNotify", nullptr, 5s, "subscribing to responses");
        if (!sub) {
            (void)b->call(impl->device_path, detail::kDeviceIface, "Disconnect", nullptr, 5s, "disconnecting");
            return sub.error();
        }
        ++impl->setup_round_trips;
        impl->bus = std::move(*bus);
        return std::make_unique<BleConnection>(std::move(impl));
    }
    return last;
}

}  // namespace credprov::transport::ble
