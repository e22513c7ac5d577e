// Runs one provisioner session against one device session in memory, with a
// hook to tamper with every message in flight (index 0 = M1, 1 = M2, ...).
#pragma once

#include <functional>

#include "protocol_world.hpp"

namespace credprov::testing {

struct Flow {
    World& w;
    ProvisionerSession p;
    DeviceSession d;
    Exchange ex;
    std::function<void(std::size_t index, Bytes& message)> tamper;
    std::optional<Error> device_error;

    Flow(World& world, ProvisionerSetup setup, std::optional<std::uint64_t> device_now = std::nullopt)
        : w(world),
          p(std::move(setup), world.code),
          d(world.device, world.trust, world.host, world.code, TransportType::loopback, device_now) {}

    Bytes wire(Bytes m) {
        if (tamper) tamper(ex.messages.size(), m);
        ex.messages.push_back(m);
        return m;
    }

    // Device side of one exchange; remembers the device's error.
    Bytes device(const Bytes& m) {
        auto step = d.handle(m);
        if (step.error && !device_error) device_error = step.error;
        return wire(std::move(step.reply));
    }

    // Pairing round trip; returns the provisioner's status.
    Status pair() {
        auto m1 = p.start();
        if (!m1) return m1.error();
        ++ex.round_trips;
        return p.read_pair_response(device(wire(std::move(*m1))));
    }

    Result<Response> authorise(Request req) {
        auto m3 = p.authorise(std::move(req));
        if (!m3) return m3.error();
        ++ex.round_trips;
        return p.read_response(device(wire(std::move(*m3))));
    }

    Result<Response> request(Request req) {
        auto m = p.request(std::move(req));
        if (!m) return m.error();
        ++ex.round_trips;
        return p.read_response(device(wire(std::move(*m))));
    }

    Result<Response> run(Request req) {
        if (auto s = pair(); !s) return s.error();
        return authorise(std::move(req));
    }
};

inline Request deliver(SignedObject obj, Operation op = Operation::deliver_sealed) { return Request{op, std::move(obj)}; }
inline Request query() { return Request{Operation::query, std::nullopt}; }

}  // namespace credprov::testing
