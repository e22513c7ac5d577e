// NDEF messages and the Type 4 Tag read procedure (ndef.hpp) against a
// scripted tag; the real libnfc path is in tests/integration/test_e2e_nfc.cpp.
#include <doctest/doctest.h>

#include <map>

#include "credprov/transport/nfc/ndef.hpp"

using namespace credprov;
using namespace credprov::transport::nfc;

namespace {

const std::string kLabel = "CP1:AAAQEAYEAUDAOCAJBIFQYDIOB4:1234567890:7";

// A Type 4 tag answering SELECT and READ BINARY from its files.
struct FakeTag {
    std::map<std::uint16_t, Bytes> files;
    std::uint16_t selected{0};
    bool app_selected{false};
    std::size_t reads{0};
    explicit FakeTag(Bytes ndef, std::size_t mle = 0x3B) {
        Bytes nfile{static_cast<std::uint8_t>(ndef.size() >> 8), static_cast<std::uint8_t>(ndef.size())};
        nfile.insert(nfile.end(), ndef.begin(), ndef.end());
        files[0xE104] = nfile;
        files[0xE103] = Bytes{0x00, 0x0F, 0x20, static_cast<std::uint8_t>(mle >> 8), static_cast<std::uint8_t>(mle), 0x00, 0x34,
                              0x04, 0x06, 0xE1, 0x04, 0x04, 0x00, 0x00, 0xFF};
    }
    Result<Bytes> operator()(ByteView apdu) {
        const Bytes ok{0x90, 0x00};
        if (apdu.size() >= 5 && apdu[1] == 0xA4 && apdu[2] == 0x04) {
            app_selected = true;
            return ok;
        }
        if (apdu.size() == 7 && apdu[1] == 0xA4 && app_selected) {
            const std::uint16_t f = static_cast<std::uint16_t>((apdu[5] << 8) | apdu[6]);
            if (!files.count(f)) return Bytes{0x6A, 0x82};
            selected = f;
            return ok;
        }
        if (apdu.size() == 5 && apdu[1] == 0xB0 && selected) {
            ++reads;
            const auto& file = files[selected];
            const std::size_t off = static_cast<std::size_t>((apdu[2] << 8) | apdu[3]);
            const std::size_t len = apdu[4];
            if (off > file.size()) return Bytes{0x6B, 0x00};
            Bytes out(file.begin() + static_cast<std::ptrdiff_t>(off),
                      file.begin() + static_cast<std::ptrdiff_t>(std::min(file.size(), off + len)));
            out.insert(out.end(), ok.begin(), ok.end());
            return out;
        }
        return Bytes{0x6D, 0x00};
    }
};

}  // namespace

TEST_CASE("ndef: a credprov label record encodes and parses back") {
    const Bytes m = encode_label_message(kLabel);
    auto records = parse_ndef_message(m);
    REQUIRE(records.ok());
    REQUIRE(records->size() == 1);
    CHECK((*records)[0].tnf == 2);
    CHECK(std::string((*records)[0].type.begin(), (*records)[0].type.end()) == kLabelMimeType);
    auto text = label_from_message(m);
    REQUIRE(text.ok());
    CHECK(*text == kLabel);
    // Several records, an id, a long (non-short) payload.
    NdefRecord uri{1, Bytes{'U'}, Bytes{'x'}, Bytes(300, 0x41)};
    NdefRecord label = (*records)[0];
    auto two = parse_ndef_message(encode_ndef_message({uri, label}));
    REQUIRE(two.ok());
    REQUIRE(two->size() == 2);
    CHECK((*two)[0].payload.size() == 300);
    CHECK((*two)[0].id == Bytes{'x'});
    CHECK(*label_from_message(encode_ndef_message({uri, label})) == kLabel);
}

TEST_CASE("ndef: malformed messages are refused") {
    const Bytes good = encode_label_message(kLabel);
    CHECK_FALSE(parse_ndef_message(Bytes{}).ok());
    Bytes truncated(good.begin(), good.end() - 1);
    CHECK(parse_ndef_message(truncated).error().code == ErrorCode::malformed);
    Bytes no_end = good;
    no_end[0] &= static_cast<std::uint8_t>(~0x40);
    CHECK_FALSE(parse_ndef_message(no_end).ok());
    Bytes chunked = good;
    chunked[0] |= 0x20;
    CHECK_FALSE(parse_ndef_message(chunked).ok());
    Bytes trailing = good;
    trailing.push_back(0xD1);
    CHECK_FALSE(parse_ndef_message(trailing).ok());
    Bytes huge_len{0xC2, 0x01, 0xFF, 0xFF, 0xFF, 0xFF, 'x'};  // long record claiming 4 GiB
    CHECK_FALSE(parse_ndef_message(huge_len).ok());
    CHECK(parse_ndef_message(Bytes(kMaxNdefMessage + 1, 0)).error().code == ErrorCode::oversized);
    CHECK_FALSE(label_from_message(encode_ndef_message({NdefRecord{1, Bytes{'T'}, {}, Bytes{'h', 'i'}}})).ok());
}

TEST_CASE("ndef: the Type 4 read procedure gets the label from a tag, in chunks of the tag's MLe") {
    const Bytes m = encode_label_message(kLabel);
    FakeTag tag(m, 0x10);
    auto read = read_type4_ndef([&](ByteView apdu) { return tag(apdu); });
    REQUIRE(read.ok());
    CHECK(*read == m);
    CHECK(tag.reads == 1 + 1 + (m.size() + 15) / 16);  // CC, NLEN, the message in 16-byte reads
    SUBCASE("a card that is no NDEF tag") {
        auto r = read_type4_ndef([](ByteView) -> Result<Bytes> { return Bytes{0x6A, 0x82}; });
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().message.find("Type 4") != std::string::npos);
    }
    SUBCASE("a tag that claims more than it may hold") {
        FakeTag big(m);
        big.files[0xE104][0] = 0x7F;
        CHECK_FALSE(read_type4_ndef([&](ByteView apdu) { return big(apdu); }).ok());
    }
}
