// Bus (bus.hpp).
#include "bus.hpp"

#include <poll.h>

#include <optional>

namespace credprov::transport::ble::detail {

using namespace std::chrono_literals;

std::string describe(const sdbus::Error& e) { return e.getName() + ": " + e.getMessage(); }

Result<std::unique_ptr<Bus>> Bus::system() {
    try {
        return std::unique_ptr<Bus>(new Bus(sdbus::createSystemBusConnection()));
    } catch (const sdbus::Error& e) {
        return make_error(ErrorCode::io, "ble: cannot connect to the system D-Bus (is dbus running?): " + describe(e));
    }
}

int Bus::fd() const { return conn_->getEventLoopPollData().fd; }

void Bus::pump(std::chrono::milliseconds timeout) {
    try {
        while (conn_->processPendingRequest()) {
        }
        const auto data = conn_->getEventLoopPollData();
        int wait = static_cast<int>(timeout.count());
        const int bus_wait = data.getPollTimeout();
        if (bus_wait >= 0 && bus_wait < wait) wait = bus_wait;
        pollfd p{data.fd, data.events, 0};
        if (::poll(&p, 1, wait) > 0 || bus_wait == 0) {
            while (conn_->processPendingRequest()) {
            }
        }
    } catch (const sdbus::Error&) {
        // A handler's error is answered to its caller by sdbus-c++; a broken
        // connection shows up as failed calls.
    }
}

sdbus::IProxy& Bus::proxy(const std::string& path) {
    auto it = proxies_.find(path);
    if (it == proxies_.end()) {
        auto p = sdbus::createProxy(*conn_, kBluez, path);
        p->finishRegistration();
        it = proxies_.emplace(path, std::move(p)).first;
    }
    return *it->second;
}

Result<sdbus::MethodReply> Bus::call(const std::string& path, const std::string& iface, const std::string& method,
                                     const std::function<void(sdbus::MethodCall&)>& args, std::chrono::milliseconds timeout,
                                     const std::string& what) {
    try {
        auto& p = proxy(path);
        auto call = p.createMethodCall(iface, method);
        if (args) args(call);
        bool done = false;
        std::optional<sdbus::MethodReply> reply;
        std::optional<sdbus::Error> error;
        auto pending = p.callMethod(
            call,
            [&](sdbus::MethodReply& r, const sdbus::Error* e) {
                done = true;
                if (e != nullptr) {
                    error = *e;
                } else {
                    reply = std::move(r);
                }
            },
            static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(timeout).count()));
        const auto deadline = std::chrono::steady_clock::now() + timeout + 500ms;
        while (!done && std::chrono::steady_clock::now() < deadline) pump(50ms);
        if (!done) {
            pending.cancel();
            return make_error(ErrorCode::timeout, "ble: " + what + ": bluetoothd did not answer");
        }
        if (error) {
            const auto code = error->getName() == "org.freedesktop.DBus.Error.NoReply" ? ErrorCode::timeout : ErrorCode::io;
            return make_error(code, "ble: " + what + ": " + describe(*error));
        }
        return std::move(*reply);
    } catch (const sdbus::Error& e) {
        return make_error(ErrorCode::io, "ble: " + what + ": " + describe(e));
    }
}

Result<ManagedObjects> Bus::managed_objects(std::chrono::milliseconds timeout) {
    auto r = call("/", kObjectManagerIface, "GetManagedObjects", nullptr, timeout, "listing BlueZ objects");
    if (!r) return r.error();
    try {
        ManagedObjects objects;
        *r >> objects;
        return objects;
    } catch (const sdbus::Error& e) {
        return make_error(ErrorCode::malformed, "ble: unexpected answer to GetManagedObjects: " + describe(e));
    }
}

Result<sdbus::Variant> Bus::get_property(const std::string& path, const std::string& iface, const std::string& name) {
    auto r = call(path, kPropertiesIface, "Get", [&](sdbus::MethodCall& c) { c << iface << name; }, 5s, "reading " + name);
    if (!r) return r.error();
    try {
        sdbus::Variant v;
        *r >> v;
        return v;
    } catch (const sdbus::Error& e) {
        return make_error(ErrorCode::malformed, "ble: reading " + name + ": " + describe(e));
    }
}

Status Bus::set_property(const std::string& path, const std::string& iface, const std::string& name, const sdbus::Variant& value) {
    auto r = call(path, kPropertiesIface, "Set", [&](sdbus::MethodCall& c) { c << iface << name << value; }, 5s,
                  "setting " + name);
    if (!r) return r.error();
    return {};
}

sdbus::Slot Bus::on_signal(const std::string& match, std::function<void(sdbus::Message&)> handler) {
    return conn_->addMatch(match, std::move(handler));
}

}  // namespace credprov::transport::ble::detail
