// libFuzzer harness for decode_state (target_agent/agent_state.hpp), the
// decoder of the agent's store plaintext. The plaintext is authenticated
// before it is decoded, but a decoder bug must still never become a crash
// when a store written by another (buggier) version is read.
//
// Checks: nothing crashes; a refusal has a decode-class cause; whatever is
// accepted re-encodes to the same bytes (or, with extension keys, to a fixed
// point); K and OPc are present exactly when a credential is. Never does I/O
// and never prints decoded content (it may hold secrets).
#include <cstddef>
#include <cstdint>

#include "credprov/agent/agent_state.hpp"
#include "round_trip_check.hpp"

using namespace credprov;
using credprov::fuzz::check_round_trip;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const ByteView in(data, size);
    auto state = check_round_trip<agent::AgentState>(
        in, [](ByteView b) { return agent::decode_state(b); },
        [](const agent::AgentState& s) {
            const SecretBytes enc = agent::encode_state(s);
            return Bytes(enc.view().begin(), enc.view().end());
        });
    if (state) {
        const bool has_credential = state->record.credential.has_value();
        CREDPROV_FUZZ_REQUIRE(state->k.has_value() == has_credential);
        CREDPROV_FUZZ_REQUIRE(state->opc.has_value() == has_credential);
        CREDPROV_FUZZ_REQUIRE(state->setup_code.size() >= SetupCode::kMinDigits &&
                              state->setup_code.size() <= SetupCode::kMaxDigits);
        CREDPROV_FUZZ_REQUIRE(size <= agent::kMaxStateBytes);
    }
    return 0;
}
