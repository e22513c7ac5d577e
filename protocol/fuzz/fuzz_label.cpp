// libFuzzer harness for the label bootstrap payload parser (QR / NFC text).
// A parse that succeeds must re-encode to the same text.
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "credprov/protocol/identifiers.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view text(reinterpret_cast<const char*>(data), size);
    auto parsed = credprov::BootstrapPayload::parse(text);
    if (!parsed) return 0;
    const credprov::SecretBytes again = parsed->encode();
    auto reparsed = credprov::BootstrapPayload::parse(
        std::string_view(reinterpret_cast<const char*>(again.data()), again.size()));
    if (!reparsed || !(reparsed->device == parsed->device) || reparsed->transports != parsed->transports) std::abort();
    return 0;
}
