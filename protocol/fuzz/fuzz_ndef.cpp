// libFuzzer harness for what any tag held to the reader may answer: NDEF
// messages, and the Type 4 Tag read procedure fed with scripted answers
// (each answer: one length byte, then that many bytes). A message that
// parses must survive an encode and parse round trip unchanged.
#include <cstdint>
#include <cstdlib>

#include "credprov/transport/nfc/ndef.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using namespace credprov;
    using namespace credprov::transport::nfc;
    const ByteView bytes(data, size);
    if (auto records = parse_ndef_message(bytes)) {
        auto again = parse_ndef_message(encode_ndef_message(*records));
        if (!again || again->size() != records->size()) std::abort();
        for (std::size_t i = 0; i < records->size(); ++i) {
            const auto& a = (*records)[i];
            const auto& b = (*again)[i];
            if (a.tnf != b.tnf || a.type != b.type || a.id != b.id || a.payload != b.payload) std::abort();
        }
    }
    (void)label_from_message(bytes);

    std::size_t at = 0;
    std::size_t calls = 0;
    auto tag = [&](ByteView) -> Result<Bytes> {
        if (++calls > 200) std::abort();  // the reader must be bounded by the tag's sizes
        if (at >= size) return make_error(ErrorCode::closed, "tag gone");
        const std::size_t want = data[at];
        ++at;
        const std::size_t n = std::min<std::size_t>(want, size - at);
        Bytes answer(data + at, data + at + n);
        at += n;
        return answer;
    };
    if (auto m = read_type4_ndef(tag)) {
        if (m->empty() || m->size() > kMaxNdefMessage) std::abort();
    }
    return 0;
}
