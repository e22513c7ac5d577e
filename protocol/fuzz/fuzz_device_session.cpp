// libFuzzer harness for the device's entry point for untrusted bytes,
// DeviceSession::handle(): one session of a fixed device (keys from constant
// seeds, tests/support/codec_samples.hpp) reads up to three messages cut
// from the input (two length-prefixed, the last one takes the rest).
//
// Checks: nothing crashes; every reply is a well-formed message of the type
// the state allows; a failed session stays failed and answers nothing; and,
// since the fuzzer can neither guess the setup code nor forge a signature,
// no pairing is ever confirmed and nothing is ever committed: the host's
// credential stays empty. Never does I/O or keeps state between runs (the
// fixed keys are built once and never change).
#include <cstddef>
#include <cstdint>

#include "../../tests/support/codec_samples.hpp"
#include "round_trip_check.hpp"

using namespace credprov;
namespace samples = credprov::testing::samples;

namespace {

void check_reply(const Bytes& reply) {
    auto type = peek_type(reply);
    CREDPROV_FUZZ_REQUIRE(type.ok());
    switch (*type) {
        case MessageType::pair_response: CREDPROV_FUZZ_REQUIRE(PairResponse::decode(reply).ok()); break;
        case MessageType::error: CREDPROV_FUZZ_REQUIRE(ErrorMessage::decode(reply).ok()); break;
        case MessageType::record: CREDPROV_FUZZ_REQUIRE(Record::decode(reply).ok()); break;
        case MessageType::pair_request:
        case MessageType::authorise: CREDPROV_FUZZ_REQUIRE(false); break;  // a device never sends these
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto& keys = samples::keys();
    testing::MemoryDeviceHost host;
    DeviceSession session(keys.device, samples::fixed_trust(), host, samples::fixed_code(), TransportType::loopback,
                          testing::kNow);

    for (ByteView message : samples::split_session_input(ByteView(data, size))) {
        const bool was_failed = session.failed();
        auto step = session.handle(message);
        if (was_failed) {
            CREDPROV_FUZZ_REQUIRE(step.reply.empty() && step.error.has_value() && step.error->code == ErrorCode::bad_state);
            continue;
        }
        CREDPROV_FUZZ_REQUIRE(!step.reply.empty());
        check_reply(step.reply);
        CREDPROV_FUZZ_REQUIRE(step.error.has_value() == session.failed());
        if (step.error) CREDPROV_FUZZ_REQUIRE(!step.error->message.empty());
    }

    CREDPROV_FUZZ_REQUIRE(host.attempts_recorded <= 1);
    CREDPROV_FUZZ_REQUIRE(host.pending_failures == host.attempts_recorded);  // never confirmed
    CREDPROV_FUZZ_REQUIRE(host.commits == 0);
    CREDPROV_FUZZ_REQUIRE(!host.rec.credential.has_value() && !host.rec.owner.has_value());
    CREDPROV_FUZZ_REQUIRE(host.k.empty() && host.opc.empty());
    CREDPROV_FUZZ_REQUIRE(session.state() != DeviceSession::State::ready);
    return 0;
}
