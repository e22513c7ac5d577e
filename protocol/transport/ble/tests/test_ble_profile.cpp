// The BLE transport's pure parts: the GATT profile's encodings and address
// forms, and GattLink's fragmenting and reassembly with a fake GATT below it.
// The D-Bus parts are tested against a real bluetoothd in tests/ble/.
#include <doctest/doctest.h>

#include <deque>

#include "credprov/transport/ble/gatt_link.hpp"
#include "credprov/transport/ble/gatt_profile.hpp"

using namespace credprov;
using namespace credprov::transport::ble;
using namespace std::chrono_literals;

namespace {

DeviceId some_device() {
    DeviceId d;
    for (std::size_t i = 0; i < d.bytes.size(); ++i) d.bytes[i] = static_cast<std::uint8_t>(0xa0 + i);
    return d;
}

}  // namespace

TEST_CASE("ble profile: advertised data and device info round-trip, foreign versions and short data are refused") {
    const DeviceId d = some_device();
    CHECK(discriminator_of(d) == 0xa0a1);
    AdvertisedData a{kProfileVersion, discriminator_of(d), kFlagProvisioned};
    const Bytes enc = a.encode();
    CHECK(enc == Bytes{1, 0xa0, 0xa1, 1});
    auto back = AdvertisedData::decode(enc);
    REQUIRE(back.ok());
    CHECK(back->discriminator == 0xa0a1);
    CHECK(back->flags == kFlagProvisioned);
    CHECK_FALSE(AdvertisedData::decode(Bytes{1, 2, 3}).ok());
    CHECK_FALSE(AdvertisedData::decode(Bytes{2, 0xa0, 0xa1, 0}).ok());

    DeviceInfoBlob info{kProfileVersion, d, 3, 0};
    const Bytes blob = info.encode();
    CHECK(blob.size() == 19);
    auto parsed = DeviceInfoBlob::decode(blob);
    REQUIRE(parsed.ok());
    CHECK(parsed->device == d);
    CHECK(parsed->modes == 3);
    CHECK_FALSE(DeviceInfoBlob::decode(ByteView(blob.data(), 18)).ok());
}

TEST_CASE("ble profile: fragments fit the negotiated MTU and one LE data packet") {
    CHECK(fragment_size_for(23) == 20);
    CHECK(fragment_size_for(100) == 97);
    CHECK(fragment_size_for(247) == 244);
    CHECK(fragment_size_for(517) == 244);  // BlueZ refused 514- and 512-byte writes at MTU 517: "Invalid Length"
    CHECK(fragment_size_for(2) == 0);
}

TEST_CASE("ble link: a first fragment the link refuses as too long is retried smaller, later ones are not") {
    std::size_t limit = 50;  // what the link really takes
    std::vector<std::size_t> written;
    GattLink l(
        200,
        [&](ByteView f) {
            if (f.size() > limit) return Status(make_error(ErrorCode::oversized, "Invalid Length"));
            written.push_back(f.size());
            return Status{};
        },
        [](std::chrono::milliseconds) {});
    REQUIRE(l.send(Bytes(300, 7)).ok());
    CHECK(l.fragment_size() <= 50);
    CHECK(l.fragment_size() >= kMinFragment);
    for (auto n : written) CHECK(n <= 50);
    // The peer received whole fragments only: the refused first write left nothing behind.
    CHECK(written.size() == fragment_count(300, l.fragment_size()));
    // Refused in the middle of a message, it is a link failure (the peer holds a partial message).
    limit = 30;
    GattLink m(40, [&](ByteView f) {
        static int n = 0;
        if (++n > 1 && f.size() > limit) return Status(make_error(ErrorCode::oversized, "Invalid Length"));
        return Status{};
    }, [](std::chrono::milliseconds) {});
    CHECK_FALSE(m.send(Bytes(100, 1)).ok());
    CHECK(m.failed());
}

TEST_CASE("ble profile: addresses name a device and an adapter, anything else is refused") {
    const std::string id = some_device().to_string();
    auto t = BleTarget::parse("ble:" + id);
    REQUIRE(t.ok());
    CHECK(t->device == some_device());
    CHECK(t->adapter == "hci0");
    auto t1 = BleTarget::parse("ble:" + id + "@hci1");
    REQUIRE(t1.ok());
    CHECK(t1->adapter == "hci1");
    CHECK_FALSE(BleTarget::parse("ble:" + id + "@eth0").ok());
    CHECK_FALSE(BleTarget::parse("ble:" + id + "@hci1/../x").ok());
    CHECK_FALSE(BleTarget::parse("ble:nope").ok());
    CHECK_FALSE(BleTarget::parse("tcp://127.0.0.1:1").ok());
    CHECK(parse_listen_adapter("ble:").value() == "hci0");
    CHECK(parse_listen_adapter("ble:hci2").value() == "hci2");
    CHECK_FALSE(parse_listen_adapter("ble:hci").ok());
    CHECK_FALSE(parse_listen_adapter("ble:/org/bluez").ok());
}

TEST_CASE("ble link: messages travel as MTU-sized fragments both ways, a broken fragment stream ends the link") {
    // Two GattLinks back to back: what one writes, the other receives when pumped.
    std::deque<Bytes> a_to_b, b_to_a;
    GattLink* a_ptr = nullptr;
    GattLink* b_ptr = nullptr;
    auto pump_into = [](std::deque<Bytes>& q, GattLink*& to) {
        return [&q, &to](std::chrono::milliseconds) {
            while (!q.empty()) {
                to->fragment_received(q.front());
                q.pop_front();
            }
        };
    };
    GattLink a(20, [&](ByteView f) { a_to_b.emplace_back(f.begin(), f.end()); return Status{}; }, pump_into(b_to_a, a_ptr));
    GattLink b(20, [&](ByteView f) { b_to_a.emplace_back(f.begin(), f.end()); return Status{}; }, pump_into(a_to_b, b_ptr));
    a_ptr = &a;
    b_ptr = &b;

    Bytes big(1000);
    for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<std::uint8_t>(i * 7);
    REQUIRE(a.send(big).ok());
    CHECK(a.fragments_sent() == fragment_count(big.size(), 20));
    for (const auto& f : a_to_b) CHECK(f.size() <= 20);
    auto got = receive(b, 100ms);
    REQUIRE(got.ok());
    CHECK(*got == big);
    REQUIRE(b.send(Bytes{1, 2, 3}).ok());
    auto back = receive(a, 100ms);
    REQUIRE(back.ok());
    CHECK(*back == Bytes{1, 2, 3});
    // Nothing more: a timeout, not an error.
    CHECK(receive(b, 10ms).error().code == ErrorCode::timeout);

    // A fragment out of sequence ends the link with malformed, and the link stays failed.
    b.fragment_received(Bytes{0x05, 1, 2});
    auto broken = receive(b, 10ms);
    REQUIRE_FALSE(broken.ok());
    CHECK(broken.error().code == ErrorCode::malformed);
    CHECK(b.failed());
    CHECK_FALSE(b.send(Bytes{1}).ok());

    // The peer going away is delivered as closed; a local close() calls the owner's hook once.
    int closed_hook = 0;
    a.on_close = [&] { ++closed_hook; };
    a.link_lost(make_error(ErrorCode::closed, "gone"));
    CHECK(receive(a, 10ms).error().code == ErrorCode::closed);
    a.close();
    a.close();
    CHECK(closed_hook == 1);
    CHECK(a.poll(0ms).error().code == ErrorCode::closed);
}

TEST_CASE("ble link: a write failure ends the link with the writer's error") {
    GattLink l(20, [](ByteView) { return Status(make_error(ErrorCode::closed, "central unsubscribed")); },
               [](std::chrono::milliseconds) {});
    auto st = l.send(Bytes(50, 1));
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == ErrorCode::closed);
    CHECK(l.failed());
}
