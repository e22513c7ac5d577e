// Tests of the link framing (FRAMING.md): fragment/reassemble round trips on
// BLE and NFC MTUs, the exact wire bytes, every reassembler rejection, and
// the stream length prefix. Pure: no sockets, no clock.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "credprov/protocol/framing.hpp"

using namespace credprov;

namespace {

Bytes pattern(std::size_t size, std::uint8_t seed = 1) {
    Bytes b(size);
    for (std::size_t i = 0; i < size; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 7 + (i >> 8));
    return b;
}

std::vector<Bytes> fragments_of(const Bytes& message, std::size_t mtu) {
    auto fragments = Fragmenter(mtu).fragment(message);
    REQUIRE(fragments.ok());
    return std::move(fragments).value();
}

// Feeds all fragments; every one but the last must ask for more.
Bytes reassemble(Reassembler& r, const std::vector<Bytes>& fragments) {
    for (std::size_t i = 0; i + 1 < fragments.size(); ++i) {
        auto fed = r.feed(fragments[i]);
        REQUIRE(fed.ok());
        REQUIRE_FALSE(fed->has_value());
        REQUIRE(r.in_progress());
    }
    auto fed = r.feed(fragments.back());
    REQUIRE(fed.ok());
    REQUIRE(fed->has_value());
    CHECK_FALSE(r.in_progress());
    return std::move(**fed);
}

void check_rejected(Reassembler& r, ByteView fragment, ErrorCode code) {
    auto fed = r.feed(fragment);
    REQUIRE_FALSE(fed.ok());
    CHECK(fed.error().code == code);
    CHECK_FALSE(fed.error().message.empty());
    CHECK_FALSE(r.in_progress());
}

// After any error the reassembler must take a fresh message.
void check_recovers(Reassembler& r) {
    const Bytes message = pattern(50, 9);
    CHECK(reassemble(r, fragments_of(message, 23)) == message);
}

}  // namespace

TEST_CASE("framing: fragments round-trip for BLE and NFC MTUs over many sizes") {
    const std::size_t mtus[] = {kMinFragmentMtu, 23, 185, 247, 250};
    std::vector<std::size_t> sizes = {0, 1, 2, 3, 19, 20, 21, 22, 42, 43, 44, 182, 183, 184, 244, 245, 246,
                                      247, 248, 500, 1000, 2047, 4095, 4096};
    for (std::size_t s = 5; s < 4096; s += 97) sizes.push_back(s);

    for (std::size_t mtu : mtus) {
        // The tightest fragment bound that still admits every size tried.
        Reassembler r({kDefaultMaxMessageSize, fragment_count(kDefaultMaxMessageSize, mtu)});
        for (std::size_t size : sizes) {
            CAPTURE(mtu);
            CAPTURE(size);
            const Bytes message = pattern(size, static_cast<std::uint8_t>(size));
            const auto fragments = fragments_of(message, mtu);
            REQUIRE(fragments.size() == fragment_count(size, mtu));

            std::size_t wire = 0;
            for (std::size_t i = 0; i < fragments.size(); ++i) {
                const Bytes& f = fragments[i];
                CHECK(f.size() <= mtu);
                CHECK(((f[0] & kFragmentFirst) != 0) == (i == 0));
                CHECK(((f[0] & kFragmentLast) != 0) == (i + 1 == fragments.size()));
                CHECK((f[0] & kFragmentSeqMask) == (i % 64));
                // Every fragment but the last is filled to the MTU.
                if (i + 1 < fragments.size()) CHECK(f.size() == mtu);
                wire += f.size();
            }
            CHECK(wire - size == framing_overhead(size, mtu));
            CHECK(reassemble(r, fragments) == message);
        }
    }
}

TEST_CASE("framing: exact fragment bytes of FRAMING.md") {
    // One fragment: FIRST|LAST, seq 0, total 2.
    CHECK(fragments_of(Bytes{'h', 'i'}, 23) == std::vector<Bytes>{{0xC0, 0x00, 0x02, 'h', 'i'}});
    // The empty message is a lone 3-byte header.
    CHECK(fragments_of(Bytes{}, 23) == std::vector<Bytes>{{0xC0, 0x00, 0x00}});
    // MTU 5: 2 payload bytes in the FIRST fragment, 4 in the next ones.
    const Bytes message = {'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k'};
    const std::vector<Bytes> expected = {
        {0x80, 0x00, 0x0B, 'a', 'b'},
        {0x01, 'c', 'd', 'e', 'f'},
        {0x02, 'g', 'h', 'i', 'j'},
        {0x43, 'k'},
    };
    CHECK(fragments_of(message, 5) == expected);
    // The length is big-endian.
    const auto big = fragments_of(pattern(0x0123), 247);
    CHECK(big[0][1] == 0x01);
    CHECK(big[0][2] == 0x23);
}

TEST_CASE("framing: overhead and fragment count") {
    CHECK(fragment_count(0, 23) == 1);
    CHECK(fragment_count(20, 23) == 1);
    CHECK(fragment_count(21, 23) == 2);
    CHECK(fragment_count(42, 23) == 2);
    CHECK(fragment_count(43, 23) == 3);
    CHECK(fragment_count(4096, 23) == 187);  // 1 + ceil(4076 / 22)
    CHECK(framing_overhead(0, 23) == 3);
    CHECK(framing_overhead(20, 23) == 3);
    CHECK(framing_overhead(21, 23) == 4);
    CHECK(framing_overhead(4096, 23) == 189);
    CHECK(framing_overhead(4096, 247) == 2 + 17);  // 1 + ceil((4096 - 244) / 246) = 17 fragments
    CHECK(framing_overhead(244, 247) == 3);
    // The default fragment bound covers the largest default message on the
    // smallest GATT write (ATT_MTU 23 - 3).
    CHECK(fragment_count(kDefaultMaxMessageSize, 20) <= kDefaultMaxFragments);
}

TEST_CASE("framing: sequence numbers wrap modulo 64") {
    const Bytes message = pattern(300);
    const auto fragments = fragments_of(message, kMinFragmentMtu);  // 1 + 3 per fragment
    REQUIRE(fragments.size() == 101);
    CHECK((fragments[63][0] & kFragmentSeqMask) == 63);
    CHECK((fragments[64][0] & kFragmentSeqMask) == 0);
    CHECK((fragments[65][0] & kFragmentSeqMask) == 1);
    Reassembler r;
    CHECK(reassemble(r, fragments) == message);
}

TEST_CASE("framing: fragmenter refuses an unusable MTU and an unencodable message") {
    auto small = Fragmenter(kMinFragmentMtu - 1).fragment(pattern(10));
    REQUIRE_FALSE(small.ok());
    CHECK(small.error().code == ErrorCode::io);

    auto huge = Fragmenter(247).fragment(pattern(kMaxEncodableMessageSize + 1));
    REQUIRE_FALSE(huge.ok());
    CHECK(huge.error().code == ErrorCode::oversized);

    auto largest = Fragmenter(247).fragment(pattern(kMaxEncodableMessageSize));
    REQUIRE(largest.ok());
    Reassembler r({kMaxEncodableMessageSize, 1000});
    CHECK(reassemble(r, *largest) == pattern(kMaxEncodableMessageSize));
}

TEST_CASE("framing: reassembler rejects out-of-order fragments") {
    const auto f = fragments_of(pattern(100), 23);  // 5 fragments
    REQUIRE(f.size() == 5);
    Reassembler r;
    REQUIRE(r.feed(f[0]).ok());
    REQUIRE(r.feed(f[1]).ok());
    check_rejected(r, f[3], ErrorCode::malformed);  // f[2] missing
    check_recovers(r);

    // A repeated continuation fragment is out of order too.
    REQUIRE(r.feed(f[0]).ok());
    REQUIRE(r.feed(f[1]).ok());
    check_rejected(r, f[1], ErrorCode::malformed);
    check_recovers(r);
}

TEST_CASE("framing: reassembler rejects a continuation without a FIRST fragment") {
    const auto f = fragments_of(pattern(100), 23);
    Reassembler r;
    check_rejected(r, f[1], ErrorCode::malformed);
    check_rejected(r, f.back(), ErrorCode::malformed);
    // The same after a completed message.
    const auto g = fragments_of(pattern(10), 23);
    CHECK(reassemble(r, g) == pattern(10));
    check_rejected(r, f[1], ErrorCode::malformed);
    check_recovers(r);
}

TEST_CASE("framing: reassembler rejects a FIRST fragment in the middle of a message") {
    const auto f = fragments_of(pattern(100), 23);
    Reassembler r;
    REQUIRE(r.feed(f[0]).ok());
    REQUIRE(r.in_progress());
    check_rejected(r, f[0], ErrorCode::malformed);
    // The rejected FIRST does not start a message: its continuation is refused.
    check_rejected(r, f[1], ErrorCode::malformed);
    check_recovers(r);
}

TEST_CASE("framing: reassembler rejects a FIRST fragment with a sequence number") {
    Reassembler r;
    check_rejected(r, Bytes{0xC5, 0x00, 0x01, 'x'}, ErrorCode::malformed);
    check_recovers(r);
}

TEST_CASE("framing: reassembler rejects length mismatches") {
    Reassembler r;
    SUBCASE("LAST fragment leaves the message short") {
        auto f = fragments_of(pattern(100), 23);
        f[0][2] = 101;  // announce one byte more than sent
        for (std::size_t i = 0; i + 1 < f.size(); ++i) REQUIRE(r.feed(f[i]).ok());
        check_rejected(r, f.back(), ErrorCode::malformed);
    }
    SUBCASE("fragments carry more than announced") {
        auto f = fragments_of(pattern(100), 23);
        f[0][2] = 90;
        std::size_t i = 0;
        Result<std::optional<Bytes>> fed = r.feed(f[i]);
        while (fed.ok() && ++i < f.size()) fed = r.feed(f[i]);
        REQUIRE_FALSE(fed.ok());
        CHECK(fed.error().code == ErrorCode::malformed);
        CHECK(i == 4);  // detected at the fragment that crosses 90 bytes
    }
    SUBCASE("single fragment shorter than announced") {
        check_rejected(r, Bytes{0xC0, 0x00, 0x03, 'a', 'b'}, ErrorCode::malformed);
    }
    SUBCASE("single fragment longer than announced") {
        check_rejected(r, Bytes{0xC0, 0x00, 0x01, 'a', 'b'}, ErrorCode::malformed);
    }
    SUBCASE("non-LAST fragment already completes the message") {
        check_rejected(r, Bytes{0x80, 0x00, 0x02, 'a', 'b'}, ErrorCode::malformed);
    }
    check_recovers(r);
}

TEST_CASE("framing: reassembler rejects an oversized total before buffering") {
    Reassembler r;
    // 4097 announced, one byte sent.
    check_rejected(r, Bytes{0x80, 0x10, 0x01, 'x'}, ErrorCode::oversized);
    check_recovers(r);
    // Exactly the limit is fine.
    CHECK(reassemble(r, fragments_of(pattern(kDefaultMaxMessageSize), 250)) == pattern(kDefaultMaxMessageSize));

    Reassembler small({100, kDefaultMaxFragments});
    check_rejected(small, fragments_of(pattern(101), 23)[0], ErrorCode::oversized);
    CHECK(reassemble(small, fragments_of(pattern(100), 23)) == pattern(100));
}

TEST_CASE("framing: reassembler bounds the fragments per message") {
    Reassembler r({kDefaultMaxMessageSize, 4});
    const auto four = fragments_of(pattern(20 + 3 * 22), 23);
    REQUIRE(four.size() == 4);
    CHECK(reassemble(r, four) == pattern(20 + 3 * 22));

    const auto five = fragments_of(pattern(20 + 3 * 22 + 1), 23);
    REQUIRE(five.size() == 5);
    for (std::size_t i = 0; i < 4; ++i) REQUIRE(r.feed(five[i]).ok());
    check_rejected(r, five[4], ErrorCode::oversized);
    CHECK(reassemble(r, four) == pattern(20 + 3 * 22));
}

TEST_CASE("framing: reassembler rejects empty and short fragments") {
    Reassembler r;
    check_rejected(r, Bytes{}, ErrorCode::malformed);
    check_rejected(r, Bytes{0x80}, ErrorCode::malformed);
    check_rejected(r, Bytes{0xC0, 0x00}, ErrorCode::malformed);
    // A FIRST fragment with no payload for a non-empty message.
    check_rejected(r, Bytes{0x80, 0x00, 0x05}, ErrorCode::malformed);
    // A continuation with a header only.
    REQUIRE(r.feed(Bytes{0x80, 0x00, 0x05, 'a'}).ok());
    check_rejected(r, Bytes{0x01}, ErrorCode::malformed);
    // An empty message mid-stream (while another is in progress) is a FIRST in the middle.
    REQUIRE(r.feed(Bytes{0x80, 0x00, 0x05, 'a'}).ok());
    check_rejected(r, Bytes{0xC0, 0x00, 0x00}, ErrorCode::malformed);
    // But on its own it is a valid empty message.
    auto empty = r.feed(Bytes{0xC0, 0x00, 0x00});
    REQUIRE(empty.ok());
    REQUIRE(empty->has_value());
    CHECK((*empty)->empty());
    check_recovers(r);
}

TEST_CASE("framing: stream frame bytes") {
    auto frame = encode_stream_frame(Bytes{'a', 'b', 'c'});
    REQUIRE(frame.ok());
    CHECK(*frame == Bytes{0x00, 0x03, 'a', 'b', 'c'});
    auto big = encode_stream_frame(pattern(0x0102));
    REQUIRE(big.ok());
    CHECK((*big)[0] == 0x01);
    CHECK((*big)[1] == 0x02);
    CHECK(big->size() == 0x0102 + kStreamPrefixSize);
    CHECK(encode_stream_frame(Bytes{})->size() == 2);
    auto huge = encode_stream_frame(pattern(kMaxEncodableMessageSize + 1));
    REQUIRE_FALSE(huge.ok());
    CHECK(huge.error().code == ErrorCode::oversized);
}

TEST_CASE("framing: stream decoder reassembles 1-byte chunks and whole buffers") {
    const std::vector<Bytes> messages = {pattern(5), Bytes{}, pattern(1), pattern(kDefaultMaxMessageSize, 3),
                                         pattern(300, 4)};
    Bytes stream;
    for (const Bytes& m : messages) append(stream, *encode_stream_frame(m));

    SUBCASE("one byte at a time") {
        StreamDecoder d;
        std::vector<Bytes> got;
        for (std::uint8_t byte : stream) {
            REQUIRE(d.feed(ByteView(&byte, 1)).ok());
            while (auto m = d.next()) got.push_back(std::move(*m));
        }
        CHECK(got == messages);
        CHECK(d.partial_size() == 0);
    }
    SUBCASE("all at once") {
        StreamDecoder d;
        REQUIRE(d.feed(stream).ok());
        std::vector<Bytes> got;
        while (auto m = d.next()) got.push_back(std::move(*m));
        CHECK(got == messages);
    }
    SUBCASE("odd chunks across frame boundaries") {
        StreamDecoder d;
        std::vector<Bytes> got;
        for (std::size_t off = 0; off < stream.size(); off += 7) {
            REQUIRE(d.feed(ByteView(stream).subspan(off, std::min<std::size_t>(7, stream.size() - off))).ok());
            while (auto m = d.next()) got.push_back(std::move(*m));
        }
        CHECK(got == messages);
    }
}

TEST_CASE("framing: stream decoder holds back a partial message") {
    StreamDecoder d;
    REQUIRE(d.feed(Bytes{0x00, 0x03, 'a', 'b'}).ok());
    CHECK_FALSE(d.next().has_value());
    CHECK(d.partial_size() == 4);
    REQUIRE(d.feed(Bytes{'c', 0x00}).ok());
    auto m = d.next();
    REQUIRE(m.has_value());
    CHECK(*m == Bytes{'a', 'b', 'c'});
    CHECK(d.partial_size() == 1);  // half of the next prefix
}

TEST_CASE("framing: stream decoder rejects an oversized prefix before the body") {
    StreamDecoder d;
    const Bytes good = *encode_stream_frame(pattern(10));
    REQUIRE(d.feed(good).ok());
    // 4097 announced; the body never needs to arrive for the error.
    const Bytes bad_prefix = {0x10, 0x01};
    auto fed = d.feed(bad_prefix);
    REQUIRE_FALSE(fed.ok());
    CHECK(fed.error().code == ErrorCode::oversized);
    CHECK(d.failed());
    CHECK(d.partial_size() == 0);
    // The message completed before the bad prefix is still there.
    auto m = d.next();
    REQUIRE(m.has_value());
    CHECK(*m == pattern(10));
    // Terminal until reset: even a valid frame is refused.
    auto again = d.feed(good);
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().code == ErrorCode::oversized);
    CHECK_FALSE(d.next().has_value());
    d.reset();
    REQUIRE(d.feed(good).ok());
    CHECK(d.next() == pattern(10));

    // A configured limit is enforced the same way, and exactly the limit passes.
    StreamDecoder small(16);
    REQUIRE(small.feed(*encode_stream_frame(pattern(16))).ok());
    CHECK(small.next() == pattern(16));
    CHECK(small.feed(Bytes{0x00, 17}).error().code == ErrorCode::oversized);
    // The largest encodable length is accepted when configured.
    StreamDecoder largest(kMaxEncodableMessageSize);
    CHECK(largest.feed(Bytes{0xFF, 0xFF}).ok());
}
