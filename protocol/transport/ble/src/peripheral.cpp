// The BlueZ peripheral (peripheral.hpp): the GATT application and advertisement
// objects this process exports, and their registration with bluetoothd.
#include "credprov/transport/ble/peripheral.hpp"

#include <cstdio>

#include "bus.hpp"
#include "credprov/transport/ble/gatt_link.hpp"
#include "credprov/transport/ble/gatt_profile.hpp"

namespace credprov::transport::ble {

using namespace std::chrono_literals;
using detail::Bus;
using detail::Dict;

namespace {

// Company identifier 0xFFFF is the Bluetooth SIG's value for internal use and
// tests; a product needs an assigned identifier (decision 0007).
constexpr std::uint16_t kCompanyId = 0xFFFF;

std::string adapter_path(const std::string& adapter) { return "/org/bluez/" + adapter; }

}  // namespace

class BluezPeripheral final : public BlePeripheral {
public:
    struct Impl;
    explicit BluezPeripheral(std::unique_ptr<Impl> impl);
    ~BluezPeripheral() override;
    [[nodiscard]] int fd() const override;
    void pump(std::chrono::milliseconds timeout) override;
    bool maintain() override;
    [[nodiscard]] bool registered() const noexcept override;
    [[nodiscard]] const std::string& problem() const noexcept override;
    [[nodiscard]] std::shared_ptr<Transport> take_session() override;
    void end_session() override;
    void set_advertising(bool on) override;
    void set_provisioned(bool provisioned) override;
    [[nodiscard]] bool advertising() const noexcept override;

private:
    std::unique_ptr<Impl> impl_;
};

struct BluezPeripheral::Impl {
    PeripheralOptions options;
    std::unique_ptr<Bus> bus;
    std::string root;  // our objects' root path
    std::unique_ptr<sdbus::IObject> app, service, request, response, info, advertisement;
    std::vector<sdbus::Slot> watches;

    bool app_registered{false};
    bool adv_registered{false};
    bool advertising_wanted{true};
    std::string problem;
    std::chrono::steady_clock::time_point next_attempt{};

    bool notifying{false};
    std::vector<std::uint8_t> response_value;
    std::shared_ptr<GattLink> session;
    bool session_taken{false};
    std::string session_device;  // BlueZ object path of the central
    sdbus::Slot session_watch;

    void lost_bluez(const std::string& why) {
        app_registered = false;
        adv_registered = false;
        notifying = false;
        next_attempt = {};
        if (session) session->link_lost(make_error(ErrorCode::closed, "ble: " + why));
    }

    std::shared_ptr<GattLink> open_session(const std::string& device) {
        trace("ble: session opened by " + device);
        session_device = device;
        session_taken = false;
        auto* self = this;
        session = std::make_shared<GattLink>(
            fragment_size_for(kDefaultAttMtu), [self](ByteView f) { return self->notify(f); }, [self](std::chrono::milliseconds t) { self->bus->pump(t); });
        // The central going away ends the session (a clean, resumable failure).
        session_watch = bus->on_signal("type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',"
                                       "member='PropertiesChanged',path='" + device + "'",
                                       [self](sdbus::Message& m) {
                                           std::string iface;
                                           Dict changed;
                                           m >> iface >> changed;
                                           auto it = changed.find("Connected");
                                           if (iface == detail::kDeviceIface && it != changed.end() && !it->second.get<bool>() &&
                                               self->session) {
                                               self->session->link_lost(make_error(ErrorCode::closed, "ble: the central disconnected"));
                                           }
                                       });
        return session;
    }

    Status notify(ByteView fragment) {
        if (!notifying) return make_error(ErrorCode::closed, "ble: the central is not subscribed to responses");
        response_value.assign(fragment.begin(), fragment.end());
        trace("ble: notification of " + std::to_string(fragment.size()) + " bytes");
        try {
            response->emitPropertiesChangedSignal(detail::kGattCharacteristicIface, {"Value"});
        } catch (const sdbus::Error& e) {
            return make_error(ErrorCode::io, "ble: notify failed: " + detail::describe(e));
        }
        bus->pump(0ms);  // flush, and take in whatever arrived meanwhile
        return {};
    }

    void trace(const std::string& line) const {
        if (options.trace) options.trace(line);
    }

    void on_write(const std::vector<std::uint8_t>& value, const Dict& opts) {
        try {
            take_write(value, opts);
        } catch (const sdbus::Error& e) {
            trace("ble: write refused: " + detail::describe(e));
            throw;
        }
    }

    void take_write(const std::vector<std::uint8_t>& value, const Dict& opts) {
        std::string device;
        if (auto it = opts.find("device"); it != opts.end()) device = it->second.get<sdbus::ObjectPath>();
        std::size_t mtu = kDefaultAttMtu;
        if (auto it = opts.find("mtu"); it != opts.end()) mtu = it->second.get<std::uint16_t>();
        if (session && !session->failed() && !session->is_closed() && device != session_device) {
            throw sdbus::Error("org.bluez.Error.InProgress", "another provisioner is in a session with this device");
        }
        if (!session || session->failed() || session->is_closed()) open_session(device);
        if (fragment_size_for(mtu) >= 4) session->set_fragment_size(fragment_size_for(mtu));
        trace("ble: write of " + std::to_string(value.size()) + " bytes from " + device + " (mtu " + std::to_string(mtu) + ")");
        session->fragment_received(ByteView(value.data(), value.size()));
    }

    Bytes advertised() const {
        AdvertisedData a;
        a.discriminator = discriminator_of(options.device);
        a.flags = options.provisioned ? kFlagProvisioned : 0;
        return a.encode();
    }

    void export_objects() {
        auto& c = bus->connection();
        app = sdbus::createObject(c, root);
        app->addObjectManager();
        app->finishRegistration();

        const std::string service_path = root + "/service0";
        service = sdbus::createObject(c, service_path);
        service->registerProperty("UUID").onInterface(detail::kGattServiceIface).withGetter([] { return std::string(kServiceUuid); });
        service->registerProperty("Primary").onInterface(detail::kGattServiceIface).withGetter([] { return true; });
        service->finishRegistration();

        auto characteristic = [&](const std::string& name, std::string_view uuid, std::vector<std::string> flags) {
            auto o = sdbus::createObject(c, service_path + "/" + name);
            o->registerProperty("UUID").onInterface(detail::kGattCharacteristicIface).withGetter([uuid] { return std::string(uuid); });
            o->registerProperty("Service").onInterface(detail::kGattCharacteristicIface).withGetter([service_path] {
                return sdbus::ObjectPath(service_path);
            });
            o->registerProperty("Flags").onInterface(detail::kGattCharacteristicIface).withGetter([flags] { return flags; });
            return o;
        };
        request = characteristic("request", kRequestUuid, {"write", "write-without-response"});
        request->registerMethod("WriteValue")
            .onInterface(detail::kGattCharacteristicIface)
            .withInputParamNames("value", "options")
            .implementedAs([this](const std::vector<std::uint8_t>& value, const Dict& opts) { on_write(value, opts); });
        request->finishRegistration();

        response = characteristic("response", kResponseUuid, {"notify"});
        response->registerProperty("Value").onInterface(detail::kGattCharacteristicIface).withGetter([this] { return response_value; });
        response->registerProperty("Notifying").onInterface(detail::kGattCharacteristicIface).withGetter([this] { return notifying; });
        response->registerMethod("StartNotify").onInterface(detail::kGattCharacteristicIface).implementedAs([this] { notifying = true; });
        response->registerMethod("StopNotify").onInterface(detail::kGattCharacteristicIface).implementedAs([this] {
            notifying = false;
            if (session) session->link_lost(make_error(ErrorCode::closed, "ble: the central unsubscribed from responses"));
        });
        response->finishRegistration();

        info = characteristic("info", kInfoUuid, {"read"});
        info->registerMethod("ReadValue")
            .onInterface(detail::kGattCharacteristicIface)
            .withInputParamNames("options")
            .withOutputParamNames("value")
            .implementedAs([this](const Dict& opts) {
                DeviceInfoBlob b;
                b.device = options.device;
                b.modes = options.modes;
                b.flags = options.provisioned ? kFlagProvisioned : 0;
                const Bytes blob = b.encode();
                std::size_t offset = 0;
                if (auto it = opts.find("offset"); it != opts.end()) offset = it->second.get<std::uint16_t>();
                if (offset > blob.size()) throw sdbus::Error("org.bluez.Error.InvalidOffset", "offset beyond the value");
                return std::vector<std::uint8_t>(blob.begin() + static_cast<std::ptrdiff_t>(offset), blob.end());
            });
        info->finishRegistration();

        advertisement = sdbus::createObject(c, root + "/advertisement0");
        advertisement->registerProperty("Type").onInterface(detail::kAdvertisementIface).withGetter([] { return std::string("peripheral"); });
        advertisement->registerProperty("ServiceUUIDs").onInterface(detail::kAdvertisementIface).withGetter([] {
            return std::vector<std::string>{std::string(kServiceUuid)};
        });
        advertisement->registerProperty("ManufacturerData").onInterface(detail::kAdvertisementIface).withGetter([this] {
            const Bytes data = advertised();
            return std::map<std::uint16_t, sdbus::Variant>{{kCompanyId, sdbus::Variant(std::vector<std::uint8_t>(data.begin(), data.end()))}};
        });
        advertisement->registerProperty("Discoverable").onInterface(detail::kAdvertisementIface).withGetter([] { return true; });
        advertisement->registerMethod("Release").onInterface(detail::kAdvertisementIface).implementedAs([this] { adv_registered = false; });
        advertisement->finishRegistration();
    }

    void watch_bluez() {
        auto* self = this;
        watches.push_back(bus->on_signal(
            "type='signal',sender='org.freedesktop.DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.bluez'",
            [self](sdbus::Message&) { self->lost_bluez("bluetoothd went away"); }));
        watches.push_back(bus->on_signal("type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties',"
                                         "member='PropertiesChanged',path='" + adapter_path(options.adapter) + "'",
                                         [self](sdbus::Message& m) {
                                             std::string iface;
                                             Dict changed;
                                             m >> iface >> changed;
                                             auto it = changed.find("Powered");
                                             if (iface == detail::kAdapterIface && it != changed.end() && !it->second.get<bool>()) {
                                                 self->lost_bluez("the adapter was powered off");
                                             }
                                         }));
        watches.push_back(bus->on_signal("type='signal',sender='org.bluez',interface='org.freedesktop.DBus.ObjectManager',"
                                         "member='InterfacesRemoved'",
                                         [self](sdbus::Message& m) {
                                             sdbus::ObjectPath path;
                                             m >> path;
                                             if (path == adapter_path(self->options.adapter)) self->lost_bluez("the adapter disappeared");
                                         }));
    }

    bool register_all() {
        const std::string adapter = adapter_path(options.adapter);
        auto powered = bus->get_property(adapter, detail::kAdapterIface, "Powered");
        if (!powered) {
            problem = "adapter " + options.adapter + " is not available (" + powered.error().message + ")";
            return false;
        }
        if (!powered->get<bool>()) {
            if (!options.power_on_adapter) {
                problem = "adapter " + options.adapter + " is powered off";
                return false;
            }
            if (auto st = bus->set_property(adapter, detail::kAdapterIface, "Powered", sdbus::Variant(true)); !st) {
                problem = "cannot power on adapter " + options.adapter + ": " + st.error().message;
                return false;
            }
        }
        if (!app_registered) {
            auto r = bus->call(adapter, detail::kGattManagerIface, "RegisterApplication",
                               [&](sdbus::MethodCall& c) { c << sdbus::ObjectPath(root) << Dict{}; }, 10s, "registering the GATT application");
            if (!r && r.error().message.find("AlreadyExists") == std::string::npos) {
                problem = r.error().message;
                return false;
            }
            app_registered = true;
        }
        if (advertising_wanted && !adv_registered) {
            auto r = bus->call(adapter, detail::kAdvertisingManagerIface, "RegisterAdvertisement",
                               [&](sdbus::MethodCall& c) { c << sdbus::ObjectPath(root + "/advertisement0") << Dict{}; }, 10s,
                               "registering the advertisement");
            if (!r && r.error().message.find("AlreadyExists") == std::string::npos) {
                problem = r.error().message;
                return false;
            }
            adv_registered = true;
        }
        problem.clear();
        return true;
    }

    void unregister_advertisement() {
        if (!adv_registered) return;
        (void)bus->call(adapter_path(options.adapter), detail::kAdvertisingManagerIface, "UnregisterAdvertisement",
                        [&](sdbus::MethodCall& c) { c << sdbus::ObjectPath(root + "/advertisement0"); }, 5s,
                        "unregistering the advertisement");
        adv_registered = false;
    }
};

BluezPeripheral::BluezPeripheral(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

BluezPeripheral::~BluezPeripheral() {
    if (!impl_) return;
    impl_->unregister_advertisement();
    if (impl_->app_registered) {
        (void)impl_->bus->call(adapter_path(impl_->options.adapter), detail::kGattManagerIface, "UnregisterApplication",
                               [&](sdbus::MethodCall& c) { c << sdbus::ObjectPath(impl_->root); }, 2s, "unregistering");
    }
}

Result<std::unique_ptr<BlePeripheral>> create_bluez_peripheral(const PeripheralOptions& options) {
    if (!valid_adapter_name(options.adapter)) return make_error(ErrorCode::malformed, "ble: the adapter must be hci0..hci99");
    auto bus = Bus::system();
    if (!bus) return bus.error();
    auto impl = std::make_unique<BluezPeripheral::Impl>();
    impl->options = options;
    impl->advertising_wanted = options.advertise;
    impl->bus = std::move(*bus);
    impl->root = "/org/credprov/agent/" + options.adapter;
    try {
        impl->export_objects();
        impl->watch_bluez();
    } catch (const sdbus::Error& e) {
        return make_error(ErrorCode::io, "ble: cannot export the GATT objects: " + detail::describe(e));
    }
    return std::unique_ptr<BlePeripheral>(std::make_unique<BluezPeripheral>(std::move(impl)));
}

int BluezPeripheral::fd() const { return impl_->bus->fd(); }
void BluezPeripheral::pump(std::chrono::milliseconds timeout) { impl_->bus->pump(timeout); }

bool BluezPeripheral::maintain() {
    auto& i = *impl_;
    if (i.app_registered && (i.adv_registered || !i.advertising_wanted)) return false;
    const auto now = std::chrono::steady_clock::now();
    if (now < i.next_attempt) return false;
    i.next_attempt = now + 1s;
    return i.register_all();
}

bool BluezPeripheral::registered() const noexcept { return impl_->app_registered; }
const std::string& BluezPeripheral::problem() const noexcept { return impl_->problem; }

std::shared_ptr<Transport> BluezPeripheral::take_session() {
    auto& i = *impl_;
    if (!i.session || i.session_taken) return nullptr;
    i.session_taken = true;
    auto* self = impl_.get();
    i.session->on_close = [self] { self->session_watch = {}; };
    return i.session;
}

void BluezPeripheral::end_session() {
    auto& i = *impl_;
    if (!i.session) return;
    const std::string device = i.session_device;
    i.session.reset();
    i.session_watch = {};
    i.notifying = false;
    if (!device.empty()) {
        (void)i.bus->call(device, detail::kDeviceIface, "Disconnect", nullptr, 3s, "disconnecting the central");
    }
}

void BluezPeripheral::set_advertising(bool on) {
    auto& i = *impl_;
    i.advertising_wanted = on;
    if (!on) i.unregister_advertisement();
    else i.next_attempt = {};
}

void BluezPeripheral::set_provisioned(bool provisioned) {
    auto& i = *impl_;
    if (i.options.provisioned == provisioned) return;
    i.options.provisioned = provisioned;
    try {
        i.advertisement->emitPropertiesChangedSignal(detail::kAdvertisementIface, {"ManufacturerData"});
    } catch (const sdbus::Error&) {
        // BlueZ reads the new data at the next registration.
    }
}

bool BluezPeripheral::advertising() const noexcept { return impl_->adv_registered; }

}  // namespace credprov::transport::ble
