// libFuzzer harness for the protocol messages and record payloads
// (messages.hpp): peek_type, the five message decoders, the two AD decoders
// and the three payload decoders all read every input.
//
// Checks: nothing crashes; a refusal has a decode-class cause; whatever a
// decoder accepts re-encodes to the same bytes (canonical CBOR), and a
// message decoder only accepts what peek_type names as its type. Never does
// I/O or keeps state between runs.
#include <cstddef>
#include <cstdint>

#include "credprov/protocol/messages.hpp"
#include "round_trip_check.hpp"

using namespace credprov;
using credprov::fuzz::check_round_trip;

namespace {

template <class T>
void check_message(ByteView in, const Result<MessageType>& peeked, MessageType type) {
    if (check_round_trip<T>(in)) CREDPROV_FUZZ_REQUIRE(peeked.ok() && *peeked == type);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const ByteView in(data, size);

    const auto peeked = peek_type(in);
    if (!peeked) fuzz::require_decode_error(peeked.error());

    check_message<PairRequest>(in, peeked, MessageType::pair_request);
    check_message<PairResponse>(in, peeked, MessageType::pair_response);
    check_message<Authorise>(in, peeked, MessageType::authorise);
    check_message<Record>(in, peeked, MessageType::record);
    check_message<ErrorMessage>(in, peeked, MessageType::error);

    (void)check_round_trip<ProvisionerAd>(in);
    (void)check_round_trip<DeviceAd>(in);
    (void)check_round_trip<DeviceKeys>(in);
    (void)check_round_trip<ProvisionerPayload>(in);
    if (auto p = check_round_trip<DevicePayload>(in)) {
        // A success carries no cause; a failure names one.
        CREDPROV_FUZZ_REQUIRE(p->response.ok == (p->response.status == ErrorCode{}));
    }
    return 0;
}
