// libFuzzer harness for the osmo-hlr CTRL reply decoder: a byte stream as a
// (possibly hostile) CTRL server could send it, cut into IPA frames exactly
// as the connector reads them (3-byte header, then the payload), each
// payload decoded. Checks that nothing crashes or reads out of bounds, that
// a decoded reply's views lie inside its payload, and that the reason made
// printable for messages is printable and bounded.
// Must never touch the file system or the network.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "credprov/backend/osmo_ctrl_codec.hpp"

using namespace credprov::backend;

namespace {

void require(bool condition) {
    if (!condition) std::abort();
}

bool inside(std::string_view part, std::span<const std::uint8_t> whole) {
    if (part.empty()) return true;
    const auto* b = reinterpret_cast<const char*>(whole.data());
    return part.data() >= b && part.data() + part.size() <= b + whole.size();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::span<const std::uint8_t> in(data, size);
    for (int frames = 0; frames < 64 && in.size() >= osmo_ctrl::kHeaderBytes; ++frames) {
        auto h = osmo_ctrl::decode_header(in.first(osmo_ctrl::kHeaderBytes));
        if (!h) return 0;
        in = in.subspan(osmo_ctrl::kHeaderBytes);
        if (h->payload_bytes > in.size()) return 0;
        const auto payload = in.first(h->payload_bytes);
        in = in.subspan(h->payload_bytes);
        auto r = osmo_ctrl::decode_payload(payload);
        if (!r) {
            require(!r.error().message.empty());
            continue;
        }
        require(inside(r->variable, payload) && inside(r->value, payload));
        const std::string reason = osmo_ctrl::printable_reason(r->value);
        require(reason.size() <= 120);
        for (const char c : reason) require(c >= 0x20 && c < 0x7f);
    }
    // The encoders round-trip through the decoder's header check.
    const auto frame = osmo_ctrl::encode_get(7, "subscriber.by-imsi-001010000000001.info-all");
    auto h = osmo_ctrl::decode_header(frame.view().first(osmo_ctrl::kHeaderBytes));
    require(h && h->payload_bytes + osmo_ctrl::kHeaderBytes == frame.size());
    return 0;
}
