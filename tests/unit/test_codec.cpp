// The canonical CBOR rules of codec.hpp, one test per rule, each built so it
// fails if the rule stops being enforced; and the validation of the
// identifiers that cross the wire (DeviceId base32, IMSI, PLMN, network name,
// setup code).
#include <doctest/doctest.h>

#include <cstdint>
#include <deque>
#include <initializer_list>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "credprov/protocol/codec.hpp"
#include "credprov/protocol/identifiers.hpp"
#include "credprov/protocol/messages.hpp"

using namespace credprov;

namespace {

// Hex with optional spaces between bytes, for hand-written encodings.
Bytes hex(std::string_view s) {
    std::string clean;
    for (char c : s) {
        if (c != ' ') clean.push_back(c);
    }
    Bytes b;
    REQUIRE_MESSAGE(from_hex(clean, b), "bad hex in test: ", std::string(s));
    return b;
}

Bytes cat(std::initializer_list<Bytes> parts) {
    Bytes out;
    for (const auto& p : parts) append(out, p);
    return out;
}

// "ok" or the error cause's name, so failures print readably.
template <class T>
std::string outcome(const Result<T>& r) {
    if (r.ok()) return "ok";
    return std::string(to_string(r.error().code));
}

// A 16-byte byte string: the smallest record a Record message accepts.
Bytes record16() { return hex("50 11111111111111111111111111111111"); }
// {0: 4, 1: h'11..11'}: a valid Record message.
Bytes valid_record() { return cat({hex("a2 00 04 01"), record16()}); }
// The same, with room for one more entry (the caller appends it).
Bytes record_plus(std::string_view extra_entry) { return cat({hex("a3 00 04 01"), record16(), hex(extra_entry)}); }

// A Reader only borrows its input: keep() holds hand-written inputs until the
// test process ends.
ByteView keep(Bytes b) {
    static std::deque<Bytes> kept;
    kept.push_back(std::move(b));
    return kept.back();
}

// A map of up to 8 entries whose keys 0..3 hold unsigned integers; others are unknown.
Status read_uint_map(ByteView b) {
    cbor::Reader r(b);
    auto s = cbor::read_map(r, 8, [](std::uint64_t key, cbor::Reader& v) -> Result<bool> {
        if (key > 3) return false;
        auto x = v.uint();
        if (!x) return x.error();
        return true;
    });
    if (!s) return s;
    return r.finish();
}

Result<std::uint64_t> read_one_uint(ByteView b) {
    cbor::Reader r(b);
    auto v = r.uint();
    if (!v) return v;
    if (auto s = r.finish(); !s) return s.error();
    return v;
}

}  // namespace

// ---- integers ------------------------------------------------------------------

TEST_CASE("cbor: unsigned integers round-trip through Writer and Reader at every head-size edge") {
    struct Edge {
        std::uint64_t value;
        std::size_t encoded_size;
    };
    const Edge edges[] = {{0, 1},          {23, 1},         {24, 2},          {255, 2},
                          {256, 3},        {65535, 3},      {65536, 5},       {0xffffffffULL, 5},
                          {0x100000000ULL, 9}, {UINT64_MAX, 9}};
    for (const auto& e : edges) {
        CAPTURE(e.value);
        cbor::Writer w;
        w.uint(e.value);
        CHECK(w.data().size() == e.encoded_size);
        auto back = read_one_uint(w.data());
        REQUIRE(back.ok());
        CHECK(*back == e.value);
    }
    CHECK(cbor::Writer().uint(24).data() == hex("18 18"));
    CHECK(cbor::Writer().uint(65536).data() == hex("1a 00010000"));
    CHECK(cbor::Writer().uint(UINT64_MAX).data() == hex("1b ffffffffffffffff"));
}

TEST_CASE("cbor: an integer not in its shortest form is rejected") {
    // Each value fits in a shorter head than the one used.
    for (const char* bad : {"18 05", "18 17", "19 0005", "19 00ff", "1a 00000005", "1a 0000ffff", "1b 0000000000000005",
                            "1b 00000000ffffffff"}) {
        CAPTURE(bad);
        CHECK(outcome(read_one_uint(hex(bad))) == "malformed");
    }
    // The shortest forms of the same values decode.
    for (const char* good : {"05", "17", "18 18", "18 ff", "19 0100", "19 ffff", "1a 00010000", "1b 0000000100000000"}) {
        CAPTURE(good);
        CHECK(read_one_uint(hex(good)).ok());
    }
    // In a message: the type (key 0's value) and a key itself.
    CHECK(outcome(Record::decode(cat({hex("a2 00 18 04 01"), record16()}))) == "malformed");
    CHECK(outcome(Record::decode(cat({hex("a2 00 04 18 01"), record16()}))) == "malformed");
    CHECK(outcome(ErrorMessage::decode(hex("a3 00 05 01 11 02 19 001e"))) == "malformed");
    CHECK(ErrorMessage::decode(hex("a3 00 05 01 11 02 18 1e")).ok());
}

TEST_CASE("cbor: a byte, text, array or map length not in its shortest form is rejected") {
    cbor::Reader b1(keep(hex("58 01 ff")));
    CHECK(outcome(b1.bytes(0, 10)) == "malformed");
    cbor::Reader b2(keep(hex("59 0001 ff")));
    CHECK(outcome(b2.bytes(0, 10)) == "malformed");
    cbor::Reader b3(keep(hex("5a 00000001 ff")));
    CHECK(outcome(b3.bytes(0, 10)) == "malformed");
    cbor::Reader t1(keep(hex("78 01 61")));
    CHECK(outcome(t1.text(0, 10)) == "malformed");
    cbor::Reader t2(keep(hex("79 0001 61")));
    CHECK(outcome(t2.text(0, 10)) == "malformed");
    cbor::Reader a1(keep(hex("98 01 00")));
    CHECK(outcome(a1.array(0, 10)) == "malformed");
    cbor::Reader a2(keep(hex("99 0001 00")));
    CHECK(outcome(a2.array(0, 10)) == "malformed");
    cbor::Reader m1(keep(hex("b8 01 00 00")));
    CHECK(outcome(m1.map(0, 10)) == "malformed");
    cbor::Reader m2(keep(hex("b9 0001 00 00")));
    CHECK(outcome(m2.map(0, 10)) == "malformed");

    // Shortest forms are accepted, including the 24 boundary.
    cbor::Reader ok1(keep(hex("41 ff")));
    CHECK(ok1.bytes(0, 10).ok());
    cbor::Reader ok2(keep(cat({hex("58 18"), Bytes(24, 0xaa)})));
    CHECK(ok2.bytes(0, 24).ok());
    cbor::Reader bad23(keep(cat({hex("58 17"), Bytes(23, 0xaa)})));  // 23 fits the initial byte
    CHECK(outcome(bad23.bytes(0, 24)) == "malformed");

    // In messages: the outer map, and the record byte string.
    CHECK(outcome(Record::decode(cat({hex("b8 02 00 04 01"), record16()}))) == "malformed");
    CHECK(outcome(Record::decode(hex("a2 00 04 01 58 10 11111111111111111111111111111111"))) == "malformed");
}

TEST_CASE("cbor: indefinite-length strings, arrays and maps are rejected") {
    cbor::Reader b(keep(hex("5f 41 aa ff")));
    CHECK(outcome(b.bytes(0, 10)) == "malformed");
    cbor::Reader t(keep(hex("7f 61 61 ff")));
    CHECK(outcome(t.text(0, 10)) == "malformed");
    cbor::Reader a(keep(hex("9f 01 ff")));
    CHECK(outcome(a.array(0, 10)) == "malformed");
    cbor::Reader m(keep(hex("bf 01 01 ff")));
    CHECK(outcome(m.map(0, 10)) == "malformed");
    cbor::Reader brk(keep(hex("ff")));  // a stray break
    CHECK(outcome(brk.uint()) == "malformed");

    // In messages: an indefinite outer map, and an indefinite record.
    CHECK(outcome(Record::decode(cat({hex("bf 00 04 01"), record16(), hex("ff")}))) == "malformed");
    CHECK(outcome(Record::decode(hex("a2 00 04 01 5f 50 11111111111111111111111111111111 ff"))) == "malformed");
    CHECK(outcome(ProvisionerAd::decode(hex("a3 01 9f 01 ff 02 01 03 f4"))) == "malformed");
    CHECK(ProvisionerAd::decode(hex("a3 01 81 01 02 01 03 f4")).ok());
}

// ---- maps ------------------------------------------------------------------------

TEST_CASE("cbor: map keys must be unsigned integers in strictly ascending order") {
    CHECK(read_uint_map(hex("a2 00 00 01 00")).ok());
    CHECK(outcome(read_uint_map(hex("a2 01 00 00 00"))) == "malformed");   // out of order
    CHECK(outcome(read_uint_map(hex("a2 00 00 00 00"))) == "malformed");   // duplicate
    CHECK(outcome(read_uint_map(hex("a1 20 00"))) == "malformed");         // negative key -1
    CHECK(outcome(read_uint_map(hex("a1 61 61 00"))) == "malformed");      // text key "a"
    CHECK(outcome(read_uint_map(hex("a1 41 00 00"))) == "malformed");      // byte-string key
    CHECK(outcome(read_uint_map(hex("a1 f9 0000 00"))) == "malformed");    // float key 0.0
    CHECK(outcome(read_uint_map(hex("a1 c0 00 00"))) == "malformed");      // tagged key

    // The same rules in a real message.
    CHECK(outcome(ErrorMessage::decode(hex("a2 01 11 00 05"))) == "malformed");
    CHECK(outcome(Record::decode(cat({hex("a3 00 04 01"), record16(), hex("01"), record16()}))) == "malformed");
    CHECK(outcome(Record::decode(record_plus("20 00"))) == "malformed");
    CHECK(outcome(Record::decode(record_plus("61 78 00"))) == "malformed");
}

TEST_CASE("cbor: an unknown critical key (< 64) is unknown_critical") {
    CHECK(outcome(read_uint_map(hex("a1 04 00"))) == "unknown-critical");
    CHECK(outcome(Record::decode(record_plus("02 00"))) == "unknown-critical");
    CHECK(outcome(Record::decode(record_plus("18 3f 00"))) == "unknown-critical");  // 63, the last critical key
    CHECK(outcome(ErrorMessage::decode(hex("a3 00 05 01 11 03 00"))) == "unknown-critical");
    CHECK(outcome(ProvisionerAd::decode(hex("a4 01 81 01 02 01 03 f4 04 00"))) == "unknown-critical");
}

TEST_CASE("cbor: an unknown extension key (>= 64) with a scalar value is skipped") {
    for (const char* ext : {"18 40 00",                     // 64: 0
                            "18 40 1b ffffffffffffffff",   // 64: 2^64-1
                            "18 41 43 010203",             // 65: h'010203'
                            "18 64 62 6869",               // 100: "hi"
                            "19 03e8 f5",                  // 1000: true
                            "1b ffffffffffffffff 40"}) {   // 2^64-1: h''
        CAPTURE(ext);
        auto rec = Record::decode(record_plus(ext));
        REQUIRE_MESSAGE(rec.ok(), outcome(rec));
        CHECK(rec->record == Bytes(16, 0x11));
        CHECK(rec->encode() == valid_record());  // the extension is not kept
    }
    CHECK(read_uint_map(hex("a2 00 00 18 40 00")).ok());
    // A non-shortest extension key is still not canonical.
    CHECK(outcome(Record::decode(record_plus("19 0040 00"))) == "malformed");
}

TEST_CASE("cbor: an extension key whose value is not a scalar is rejected") {
    for (const char* ext : {"18 40 a1 00 00",   // nested map
                            "18 40 a0",         // empty map
                            "18 40 81 00",      // array
                            "18 40 80",         // empty array
                            "18 40 c1 00",      // tag
                            "18 40 f9 3c00",    // float
                            "18 40 f6",         // null
                            "18 40 f7",         // undefined
                            "18 40 20",         // negative integer
                            "18 40 bf ff",      // indefinite map
                            "18 40 5f ff"}) {   // indefinite byte string
        CAPTURE(ext);
        CHECK(outcome(Record::decode(record_plus(ext))) == "malformed");
    }
}

TEST_CASE("cbor: trailing bytes after the item are rejected") {
    REQUIRE(Record::decode(valid_record()).ok());
    CHECK(outcome(Record::decode(cat({valid_record(), hex("00")}))) == "malformed");
    CHECK(outcome(Record::decode(cat({valid_record(), valid_record()}))) == "malformed");
    CHECK(outcome(read_one_uint(hex("05 05"))) == "malformed");
    CHECK(outcome(ProvisionerAd::decode(hex("a3 01 81 01 02 01 03 f4 f4"))) == "malformed");
    SignedObject o;
    o.body = {0xa0};
    CHECK(SignedObject::decode(o.encode()).ok());
    CHECK(outcome(SignedObject::decode(cat({o.encode(), hex("00")}))) == "malformed");
    cbor::Reader r(keep(hex("01 02")));
    REQUIRE(r.uint().ok());
    CHECK_FALSE(r.finish().ok());
}

TEST_CASE("cbor: every truncation of a valid message fails as malformed") {
    PairRequest m;
    m.sid.fill(0x42);
    m.ya.fill(0x17);
    m.ada = ProvisionerAd{}.encode();
    const Bytes full = m.encode();
    REQUIRE(PairRequest::decode(full).ok());
    for (std::size_t n = 0; n < full.size(); ++n) {
        CAPTURE(n);
        CHECK(outcome(PairRequest::decode(ByteView(full).first(n))) == "malformed");
    }
    for (std::size_t n = 0; n < valid_record().size(); ++n) {
        CAPTURE(n);
        CHECK(outcome(Record::decode(ByteView(valid_record()).first(n))) == "malformed");
    }
}

// ---- bounds ----------------------------------------------------------------------

TEST_CASE("cbor: a byte string over its bound is oversized, under its bound malformed") {
    cbor::Reader over(keep(hex("45 0102030405")));
    CHECK(outcome(over.bytes(0, 4)) == "oversized");
    cbor::Reader under(keep(hex("43 010203")));
    CHECK(outcome(under.bytes(4, 8)) == "malformed");
    cbor::Reader text_over(keep(hex("65 6162636465")));
    CHECK(outcome(text_over.text(0, 4)) == "oversized");
    cbor::Reader fixed_over(keep(cat({hex("51"), Bytes(17, 1)})));
    CHECK(outcome(fixed_over.fixed_bytes<16>()) == "oversized");

    auto pair_request = [](std::size_t sid_len, std::size_t ada_len) {
        cbor::MapBuilder m;
        m.field(0).uint(1);
        m.field(1).bytes(Bytes(sid_len, 0x01));
        m.field(2).bytes(Bytes(32, 0x02));
        m.field(3).bytes(Bytes(ada_len, 0x03));
        return m.finish();
    };
    CHECK(PairRequest::decode(pair_request(kSidBytes, 64)).ok());
    CHECK(outcome(PairRequest::decode(pair_request(kSidBytes + 1, 10))) == "oversized");
    CHECK(outcome(PairRequest::decode(pair_request(kSidBytes - 1, 10))) == "malformed");
    CHECK(outcome(PairRequest::decode(pair_request(kSidBytes, 65))) == "oversized");
    CHECK(outcome(PairRequest::decode(pair_request(kSidBytes, 0))) == "malformed");

    // A signed object's body is bounded at 1024 bytes.
    SignedObject o;
    o.body = Bytes(SignedObject::kMaxBody, 0xa0);
    CHECK(SignedObject::decode(o.encode()).ok());
    o.body.push_back(0xa0);
    CHECK(outcome(SignedObject::decode(o.encode())) == "oversized");
}

TEST_CASE("cbor: a length or count beyond the input or its bound fails without allocating") {
    cbor::Reader huge_bytes(keep(hex("5b ffffffffffffffff 00")));
    CHECK(outcome(huge_bytes.bytes(0, SIZE_MAX)) == "malformed");  // truncated, never allocated
    cbor::Reader huge_text(keep(hex("7a ffffffff 61")));
    CHECK(outcome(huge_text.text(0, SIZE_MAX)) == "malformed");
    cbor::Reader huge_array(keep(hex("9b ffffffffffffffff")));
    CHECK(outcome(huge_array.array(0, 8)) == "oversized");
    cbor::Reader big_array(keep(hex("83 01 02 03")));
    CHECK(outcome(big_array.array(0, 2)) == "oversized");
    CHECK(outcome(read_uint_map(hex("bb ffffffffffffffff"))) == "oversized");
    CHECK(outcome(ProvisionerAd::decode(hex("a3 01 89 010101010101010101 02 01 03 f4"))) == "oversized");
    // A message map with more entries than its type allows, even with valid keys.
    CHECK(outcome(Record::decode(cat({hex("a4 00 04 01"), record16(), hex("18 40 00 18 41 00")}))) == "oversized");
}

TEST_CASE("cbor: floats, tags, null, undefined, booleans, strings and negatives are not unsigned integers") {
    for (const char* bad : {"f9 3c00",                 // half-precision 1.0
                            "fa 3f800000",             // single 1.0
                            "fb 3ff0000000000000",     // double 1.0
                            "c1 05",                   // tag 1 around 5
                            "d8 18 05",                // tag 24
                            "f6",                      // null
                            "f7",                      // undefined
                            "f4", "f5",                // false, true
                            "20",                      // -1
                            "41 05", "61 35",          // h'05', "5"
                            "81 05", "a1 00 05"}) {    // [5], {0: 5}
        CAPTURE(bad);
        CHECK(outcome(read_one_uint(hex(bad))) == "malformed");
    }
    // In a message: the error code field.
    CHECK(ErrorMessage::decode(hex("a2 00 05 01 11")).ok());
    for (const char* bad : {"f9 4c40", "c1 11", "f6", "f5", "30", "41 11"}) {
        CAPTURE(bad);
        CHECK(outcome(ErrorMessage::decode(cat({hex("a2 00 05 01"), hex(bad)}))) == "malformed");
    }
    // A boolean field does not take 0/1 or null.
    CHECK(outcome(ProvisionerAd::decode(hex("a3 01 81 01 02 01 03 00"))) == "malformed");
    CHECK(outcome(ProvisionerAd::decode(hex("a3 01 81 01 02 01 03 f6"))) == "malformed");
}

TEST_CASE("cbor: reserved and malformed initial bytes are not data items") {
    // 0x1c..0x1e reserved; 0x1f/0x3f/0xdf no indefinite form; 0xf8 0x18 a
    // two-byte simple value below 32; 0xfc..0xfe reserved.
    for (const char* bad : {"1c", "1d", "1e", "1f", "3c", "3f", "5c", "7d", "9e", "bc", "dc", "df", "f8 18", "fc",
                            "fd", "fe", "e0", "f3"}) {
        CAPTURE(bad);
        CHECK(outcome(read_one_uint(hex(bad))) == "malformed");
        CHECK(outcome(Record::decode(record_plus(std::string("18 40 ") + bad))) == "malformed");
    }
}

TEST_CASE("cbor: Writer emits shortest heads for strings, arrays and maps") {
    struct Edge {
        std::size_t length;
        std::size_t head;
    };
    for (const Edge e : {Edge{0, 1}, Edge{23, 1}, Edge{24, 2}, Edge{255, 2}, Edge{256, 3}, Edge{65535, 3},
                         Edge{65536, 5}}) {
        CAPTURE(e.length);
        const Bytes payload(e.length, 0x61);
        cbor::Writer w;
        w.bytes(payload);
        CHECK(w.data().size() == e.head + e.length);
        cbor::Reader r(w.data());
        auto back = r.bytes(0, SIZE_MAX);
        REQUIRE(back.ok());
        CHECK(back->size() == e.length);
        CHECK(r.finish().ok());

        cbor::Writer t;
        t.text(std::string(e.length, 'a'));
        CHECK(t.data().size() == e.head + e.length);
        cbor::Reader tr(t.data());
        CHECK(tr.text(0, SIZE_MAX).ok());

        cbor::Writer a;
        a.array(e.length);
        CHECK(a.data().size() == e.head);
        cbor::Writer m;
        m.map(e.length);
        CHECK(m.data().size() == e.head);
    }
    cbor::MapBuilder mb;
    mb.field(0).uint(1);
    mb.field(23).uint(2);
    mb.field(24).text("x");
    mb.field(64).boolean(true);
    CHECK(mb.finish() == hex("a4 00 01 17 02 18 18 61 78 18 40 f5"));
}

// ---- message framing of the type ----------------------------------------------

TEST_CASE("cbor: a message's type is key 0, other types are bad_state, unknown ones unknown_critical") {
    auto type = peek_type(valid_record());
    REQUIRE(type.ok());
    CHECK(*type == MessageType::record);
    CHECK(outcome(peek_type(hex("a1 00 06"))) == "unknown-critical");
    CHECK(outcome(peek_type(hex("a1 00 00"))) == "unknown-critical");
    CHECK(outcome(peek_type(hex("a1 01 04"))) == "malformed");
    CHECK(outcome(peek_type(hex("a0"))) == "malformed");
    CHECK(outcome(peek_type(hex("80"))) == "malformed");
    CHECK(outcome(Record::decode(hex("a2 00 05 01 11"))) == "bad-state");
    CHECK(outcome(ErrorMessage::decode(valid_record())) == "bad-state");
    // A required field missing.
    CHECK(outcome(Record::decode(hex("a1 00 04"))) == "malformed");
    CHECK(outcome(Record::decode(cat({hex("a1 01"), record16()}))) == "malformed");  // no type at all
}

// ---- DeviceId base32 --------------------------------------------------------------

namespace {
DeviceId id_of(std::string_view raw16) {
    REQUIRE(raw16.size() == DeviceId::kBytes);
    DeviceId id;
    std::copy(raw16.begin(), raw16.end(), id.bytes.begin());
    return id;
}
}  // namespace

TEST_CASE("base32: DeviceId uses the RFC 4648 section 6 alphabet, lower case, without padding") {
    // Expected strings from an independent RFC 4648 encoder, padding removed.
    CHECK(id_of("credprov-device!").to_string() == "mnzgkzdqojxxmllemv3gsy3fee");
    DeviceId counting;
    for (std::size_t i = 0; i < DeviceId::kBytes; ++i) counting.bytes[i] = static_cast<std::uint8_t>(i);
    CHECK(counting.to_string() == "aaaqeayeaudaocajbifqydiob4");
    DeviceId ones;
    ones.bytes.fill(0xff);
    CHECK(ones.to_string() == "77777777777777777777777774");
    CHECK(DeviceId{}.to_string() == std::string(26, 'a'));
}

TEST_CASE("base32: DeviceId to_string and parse round-trip") {
    std::mt19937 rng(20240601);
    std::vector<DeviceId> ids(64);
    for (auto& id : ids) {
        for (auto& b : id.bytes) b = static_cast<std::uint8_t>(rng() & 0xff);
    }
    ids.push_back(DeviceId{});
    DeviceId ones;
    ones.bytes.fill(0xff);
    ids.push_back(ones);
    ids.push_back(DeviceId::from_public_key(crypto::SignPublicKey{}));
    for (const auto& id : ids) {
        const std::string s = id.to_string();
        CAPTURE(s);
        CHECK(s.size() == 26);
        CHECK(s.find_first_not_of("abcdefghijklmnopqrstuvwxyz234567") == std::string::npos);
        auto back = DeviceId::parse(s);
        REQUIRE(back.ok());
        CHECK(*back == id);
    }
}

TEST_CASE("base32: DeviceId parse accepts upper and mixed case") {
    const DeviceId want = id_of("credprov-device!");
    auto upper = DeviceId::parse("MNZGKZDQOJXXMLLEMV3GSY3FEE");
    REQUIRE(upper.ok());
    CHECK(*upper == want);
    auto mixed = DeviceId::parse("MnZgKzDqOjXxMlLeMv3gSy3fEe");
    REQUIRE(mixed.ok());
    CHECK(*mixed == want);
}

TEST_CASE("base32: DeviceId parse rejects non-zero trailing bits") {
    // 26 characters carry 130 bits: the last character's low 2 bits are padding.
    CHECK(DeviceId::parse(std::string(25, 'a') + "a").ok());
    auto one = DeviceId::parse(std::string(25, 'a') + "e");  // 00100: a data bit, byte 15 = 0x01
    REQUIRE(one.ok());
    CHECK(one->bytes[15] == 0x01);
    for (char last : {'b', 'c', 'd', 'f', 'h'}) {  // 00001, 00010, 00011, 00101, 00111
        CAPTURE(last);
        auto r = DeviceId::parse(std::string(25, 'a') + last);
        CHECK(outcome(r) == "malformed");
    }
    CHECK(DeviceId::parse(std::string(25, '7') + "4").ok());
    CHECK_FALSE(DeviceId::parse(std::string(25, '7') + "7").ok());
    CHECK_FALSE(DeviceId::parse(std::string(25, '7') + "5").ok());
    CHECK_FALSE(DeviceId::parse("MNZGKZDQOJXXMLLEMV3GSY3FEF").ok());
}

TEST_CASE("base32: DeviceId parse rejects the wrong length and characters outside the alphabet") {
    const std::string good = "mnzgkzdqojxxmllemv3gsy3fee";
    REQUIRE(DeviceId::parse(good).ok());
    CHECK_FALSE(DeviceId::parse("").ok());
    CHECK_FALSE(DeviceId::parse(good.substr(0, 25)).ok());
    CHECK_FALSE(DeviceId::parse(good + "a").ok());
    CHECK_FALSE(DeviceId::parse(good + "======").ok());
    CHECK_FALSE(DeviceId::parse(std::string(32, 'a')).ok());
    for (char c : {'0', '1', '8', '9', '=', '-', ' ', '\0', '\xc3'}) {
        CAPTURE(static_cast<int>(c));
        std::string s = good;
        s[3] = c;
        CHECK(outcome(DeviceId::parse(s)) == "malformed");
    }
}

// ---- other identifiers ----------------------------------------------------------

TEST_CASE("codec: IMSI is 6 to 15 decimal digits") {
    CHECK(Imsi::parse("001010123456789").ok());
    CHECK(Imsi::parse("123456").ok());
    CHECK(Imsi::parse("001010123456789")->str() == "001010123456789");
    for (std::string_view bad : std::initializer_list<std::string_view>{"", "12345", "0010101234567890", "00101012345678a", "+00101012345", " 123456",
                                 "123456 ", std::string_view("12\0" "456", 6)}) {
        CAPTURE(std::string(bad));
        CHECK(outcome(Imsi::parse(bad)) == "malformed");
    }
}

TEST_CASE("codec: PLMN is 5 or 6 decimal digits") {
    CHECK(Plmn::parse("00101").ok());
    CHECK(Plmn::parse("310260").ok());
    for (std::string_view bad : {"", "0010", "0010123", "0010a", "00-01", "001 01"}) {
        CAPTURE(std::string(bad));
        CHECK(outcome(Plmn::parse(bad)) == "malformed");
    }
}

TEST_CASE("codec: network name is 1 to 32 printable ASCII characters") {
    CHECK(NetworkName::parse("a").ok());
    CHECK(NetworkName::parse("my network ~!").ok());
    CHECK(NetworkName::parse(std::string(32, 'x')).ok());
    for (std::string_view bad : {"", "tab\there", "new\nline", "del\x7f", "caf\xc3\xa9"}) {
        CAPTURE(std::string(bad));
        CHECK(outcome(NetworkName::parse(bad)) == "malformed");
    }
    CHECK(outcome(NetworkName::parse(std::string(33, 'x'))) == "malformed");
}

TEST_CASE("codec: setup code is 8 to 16 digits and its error message never repeats the input") {
    auto eight = SetupCode::parse("12345678");
    REQUIRE(eight.ok());
    CHECK(eight->size() == 8);
    CHECK(Bytes(eight->prs().begin(), eight->prs().end()) == Bytes(as_bytes("12345678").begin(), as_bytes("12345678").end()));
    CHECK(SetupCode::parse("1234567890123456").ok());
    for (std::string_view bad : {"", "1234567", "98765432109876543", "1234567a", "9876 5432", "+98765432",
                                 "7777777777777777777"}) {
        CAPTURE(std::string(bad));
        auto r = SetupCode::parse(bad);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == ErrorCode::malformed);
        const std::string& msg = r.error().message;
        CHECK_FALSE(msg.empty());
        // No run of 3 or more characters of the input appears in the message.
        for (std::size_t i = 0; i + 3 <= bad.size(); ++i) {
            CHECK(msg.find(bad.substr(i, 3)) == std::string::npos);
        }
    }
}
