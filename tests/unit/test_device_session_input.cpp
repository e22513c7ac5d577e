// The device session as a consumer of untrusted bytes: regressions found by
// protocol/fuzz/fuzz_device_session.cpp, on the fixed device of
// tests/support/codec_samples.hpp.
#include <doctest/doctest.h>

#include "codec_samples.hpp"

using namespace credprov;
namespace samples = credprov::testing::samples;

TEST_CASE("decode: a failed device session answers nothing, even to input that does not decode") {
    testing::MemoryDeviceHost host;
    DeviceSession d(samples::keys().device, samples::fixed_trust(), host, samples::fixed_code(), TransportType::loopback,
                    testing::kNow);
    // A pair request whose Ya is not a valid point fails the session.
    PairRequest m1;
    m1.sid.fill(0x01);
    m1.ya.fill(0x00);
    m1.ada = ProvisionerAd{}.encode();
    auto first = d.handle(m1.encode());
    REQUIRE(d.failed());
    REQUIRE(first.error.has_value());
    CHECK_FALSE(first.reply.empty());  // the cause goes out once, as an error message

    // Every later input gets the same answer: nothing, and bad_state.
    for (const Bytes& later : {m1.encode(), Bytes{0xff}, Bytes{}, Bytes{0xa1, 0x00, 0x09}}) {
        CAPTURE(to_hex(later));
        auto step = d.handle(later);
        CHECK(step.reply.empty());
        REQUIRE(step.error.has_value());
        CHECK(step.error->code == ErrorCode::bad_state);
        CHECK(d.failed());
    }
}
