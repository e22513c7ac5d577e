// libFuzzer harness for the link framing decoders (FRAMING.md): the input is
// cut into fragments at a separator and fed to Reassemblers, and into chunks
// fed to a StreamDecoder. Checks that they never crash, never return more than
// their limits allow, and that whatever they accept survives a re-encode.
//
// Must never do I/O or keep state between runs; every run is bounded by the
// input size.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <vector>

#include "credprov/protocol/framing.hpp"

using namespace credprov;

namespace {

// Fragments are separated by this pair of bytes; seeds use it too.
constexpr std::uint8_t kSep0 = 0xF0;
constexpr std::uint8_t kSep1 = 0x0F;

void require(bool condition) {
    if (!condition) std::abort();
}

std::vector<ByteView> split(ByteView data) {
    std::vector<ByteView> parts;
    std::size_t start = 0;
    for (std::size_t i = 0; i + 1 < data.size(); ++i) {
        if (data[i] == kSep0 && data[i + 1] == kSep1) {
            parts.push_back(data.subspan(start, i - start));
            start = i + 2;
            ++i;
        }
    }
    parts.push_back(data.subspan(start));
    return parts;
}

// Anything a reassembler accepted must come back unchanged through the
// fragmenter at any MTU.
void check_refragments(const Bytes& message, std::size_t mtu, const ReassemblerLimits& limits) {
    auto fragments = Fragmenter(mtu).fragment(message);
    require(fragments.ok());
    require(fragments->size() == fragment_count(message.size(), mtu));
    Reassembler again({limits.max_message_size, fragments->size()});
    std::optional<Bytes> out;
    for (const Bytes& f : *fragments) {
        require(f.size() <= mtu);
        require(!out.has_value());
        auto fed = again.feed(f);
        require(fed.ok());
        out = std::move(*fed);
    }
    require(out.has_value() && *out == message);
}

void fuzz_reassembler(const std::vector<ByteView>& fragments, const ReassemblerLimits& limits,
                      std::size_t mtu) {
    Reassembler r(limits);
    for (ByteView f : fragments) {
        auto fed = r.feed(f);
        if (!fed) {
            require(fed.error().code == ErrorCode::malformed || fed.error().code == ErrorCode::oversized);
            require(!r.in_progress());
            continue;
        }
        if (fed->has_value()) {
            require((*fed)->size() <= limits.max_message_size);
            require(!r.in_progress());
            check_refragments(**fed, mtu, limits);
        }
    }
}

void fuzz_stream(ByteView data, std::size_t max_message_size) {
    StreamDecoder d(max_message_size);
    std::size_t offset = 0;
    std::size_t taken = 0;
    while (offset < data.size()) {
        // Chunk sizes come from the data itself, 1..32 bytes.
        const std::size_t n = std::min<std::size_t>(data.size() - offset, (data[offset] & 0x1F) + 1);
        const Status fed = d.feed(data.subspan(offset, n));
        offset += n;
        while (auto m = d.next()) {
            require(m->size() <= max_message_size);
            taken += m->size() + kStreamPrefixSize;
            // Round trip: the frame of a decoded message decodes to itself.
            StreamDecoder again(max_message_size);
            auto frame = encode_stream_frame(*m);
            require(frame.ok());
            require(again.feed(*frame).ok());
            auto back = again.next();
            require(back.has_value() && *back == *m);
        }
        if (!fed) {
            require(fed.error().code == ErrorCode::oversized);
            require(d.failed());
            require(!d.feed(data.subspan(0, 0)).ok());
            return;
        }
        require(d.partial_size() <= max_message_size + kStreamPrefixSize);
    }
    require(taken + d.partial_size() == data.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const ByteView input(data, size);
    const auto fragments = split(input);
    const std::size_t mtu = kMinFragmentMtu + (size == 0 ? 0 : data[0] % 250);
    fuzz_reassembler(fragments, ReassemblerLimits{}, mtu);
    fuzz_reassembler(fragments, ReassemblerLimits{64, 4}, mtu);
    fuzz_stream(input, kDefaultMaxMessageSize);
    fuzz_stream(input, 16);
    return 0;
}
