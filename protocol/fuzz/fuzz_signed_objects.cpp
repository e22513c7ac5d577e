// libFuzzer harness for the signed objects (signed_objects.hpp): the
// [body, signature] envelope, every body decoder (operator keys, token,
// credential bundle, field authorisation, owner command), receipts, device
// settings and diagnostics lists all read every input; a decoded envelope's
// body is also fed to every body decoder, as a device does after verifying.
//
// Checks: nothing crashes; a refusal has a decode-class cause; whatever a
// decoder accepts re-encodes to the same bytes; decoded values respect the
// invariants their decoders promise. Never does I/O or keeps state.
#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "credprov/protocol/signed_objects.hpp"
#include "round_trip_check.hpp"

using namespace credprov;
using credprov::fuzz::check_round_trip;

namespace {

void check_token(const AuthorisationToken& t) {
    CREDPROV_FUZZ_REQUIRE(t.device.has_value() != !t.device_prefix.empty());
    CREDPROV_FUZZ_REQUIRE(t.device_prefix.size() <= DeviceId::kBytes);
    CREDPROV_FUZZ_REQUIRE(t.not_before <= t.not_after);
    CREDPROV_FUZZ_REQUIRE(!t.operations.empty() && t.operations.size() <= kMaxOperation);
    for (std::size_t i = 0; i < t.operations.size(); ++i) {
        const auto op = static_cast<std::uint64_t>(t.operations[i]);
        CREDPROV_FUZZ_REQUIRE(op >= 1 && op <= kMaxOperation);
        CREDPROV_FUZZ_REQUIRE(std::count(t.operations.begin(), t.operations.end(), t.operations[i]) == 1);
    }
}

void check_bodies(ByteView body) {
    (void)check_round_trip<OperatorKeys>(body);
    if (auto t = check_round_trip<AuthorisationToken>(body)) check_token(*t);
    if (auto b = check_round_trip<CredentialBundle>(body)) {
        // The header (the sealing's associated data) is the body without key 11.
        const Bytes header = b->encode_header();
        CREDPROV_FUZZ_REQUIRE(header.size() < body.size());
    }
    (void)check_round_trip<FieldAuthorisation>(body);
    if (auto c = check_round_trip<OwnerCommand>(body)) {
        const auto kind = static_cast<std::uint64_t>(c->kind);
        CREDPROV_FUZZ_REQUIRE(kind >= 1 && kind <= 4);
        CREDPROV_FUZZ_REQUIRE(c->payload.size() <= 512);
    }
    if (auto s = check_round_trip<DeviceSettings>(body)) {
        if (s->label) CREDPROV_FUZZ_REQUIRE(!s->label->empty() && s->label->size() <= NetworkName::kMaxLength);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const ByteView in(data, size);

    if (auto o = check_round_trip<SignedObject>(in)) {
        CREDPROV_FUZZ_REQUIRE(!o->body.empty() && o->body.size() <= SignedObject::kMaxBody);
        check_bodies(o->body);
    }
    check_bodies(in);
    (void)check_round_trip<Receipt>(in);
    (void)check_round_trip<std::vector<Diagnostic>>(
        in, [](ByteView b) { return decode_diagnostics(b); },
        [](const std::vector<Diagnostic>& d) { return encode_diagnostics(d); });
    return 0;
}
