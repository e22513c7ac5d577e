// Known-answer tests for CPace (CPACE-RISTR255-SHA512) against
// draft-irtf-cfrg-cpace-21: Appendix A string functions and the Appendix B.3
// ristretto255 vectors, read from tests/vectors/cpace_ristretto255_sha512.txt.
// Test names carry the draft section they check.
#include <doctest/doctest.h>

#include "vector_file.hpp"

#include <fstream>
#include <map>
#include <numeric>
#include <string>

#include "credprov/protocol/cpace.hpp"

using namespace credprov;

namespace {

#define DRAFT "draft-irtf-cfrg-cpace-21 "

const std::map<std::string, Bytes>& vectors() {
    static const std::map<std::string, Bytes> v = credprov::testing::load_vector_file("cpace_ristretto255_sha512.txt");
    return v;
}

const Bytes& tv(const std::string& name) {
    const auto it = vectors().find(name);
    REQUIRE_MESSAGE(it != vectors().end(), "missing vector " << name);
    return it->second;
}

template <std::size_t N>
std::span<const std::uint8_t, N> fixed(const Bytes& b) {
    REQUIRE(b.size() == N);
    return std::span<const std::uint8_t, N>(b.data(), N);
}

cpace::Generator draft_generator() { return cpace::calculate_generator(tv("prs"), tv("ci"), tv("sid")); }

cpace::Ephemeral draft_party(const char* scalar) {
    auto e = cpace::Ephemeral::from_scalar(fixed<32>(tv(scalar)), draft_generator());
    REQUIRE(e.ok());
    return std::move(e).value();
}

Bytes bytes_of(ByteView v) { return Bytes(v.begin(), v.end()); }

}  // namespace

// ---- Appendix A ---------------------------------------------------------------

TEST_CASE(DRAFT "A.1.2: prepend_len") {
    CHECK(to_hex(cpace::prepend_len({})) == "00");
    CHECK(to_hex(cpace::prepend_len(as_bytes("1234"))) == "0431323334");
    Bytes r127(127);
    std::iota(r127.begin(), r127.end(), std::uint8_t{0});
    Bytes expected = {0x7f};
    append(expected, r127);
    CHECK(cpace::prepend_len(r127) == expected);
    Bytes r128(128);
    std::iota(r128.begin(), r128.end(), std::uint8_t{0});
    expected = {0x80, 0x01};
    append(expected, r128);
    CHECK(cpace::prepend_len(r128) == expected);
    // A length needing three LEB128 octets: 2^14 = 0x80 0x80 0x01.
    const Bytes big(16384);
    const Bytes lv = cpace::prepend_len(big);
    REQUIRE(lv.size() == 16387);
    CHECK(lv[0] == 0x80);
    CHECK(lv[1] == 0x80);
    CHECK(lv[2] == 0x01);
}

TEST_CASE(DRAFT "A.1.4: lv_cat") {
    CHECK(to_hex(cpace::lv_cat({as_bytes("1234"), as_bytes("5"), as_bytes(""), as_bytes("678")})) ==
          "043132333401350003363738");
}

TEST_CASE(DRAFT "A.3.3: ordered concatenation") {
    CHECK(to_hex(cpace::o_cat(as_bytes("ABCD"), as_bytes("BCD"))) == "6f6342434441424344");
    CHECK(to_hex(cpace::o_cat(as_bytes("BCD"), as_bytes("ABCDE"))) == "6f634243444142434445");
    // The lexicographic rules of A.3.3, observed through o_cat's order.
    const Bytes z1 = {0}, z2 = {0, 0}, one = {1}, z_one = {0, 1};
    CHECK(cpace::o_cat(z1, z2) == Bytes({'o', 'c', 0, 0, 0}));         // "\0" < "\0\0"
    CHECK(cpace::o_cat(one, z2) == Bytes({'o', 'c', 1, 0, 0}));        // "\1" > "\0\0"
    CHECK(cpace::o_cat(z_one, one) == Bytes({'o', 'c', 1, 0, 1}));     // "\0\1" < "\1"
}

TEST_CASE(DRAFT "A.3.5: transcript_ir") {
    CHECK(to_hex(cpace::transcript_ir(as_bytes("123"), as_bytes("PartyA"), as_bytes("234"), as_bytes("PartyB"))) ==
          "03313233065061727479410332333406506172747942");
    CHECK(to_hex(cpace::transcript_ir(as_bytes("3456"), as_bytes("PartyA"), as_bytes("2345"),
                                      as_bytes("PartyB"))) == "043334353606506172747941043233343506506172747942");
}

TEST_CASE(DRAFT "A.3.7: transcript_oc") {
    CHECK(to_hex(cpace::transcript_oc(as_bytes("123"), as_bytes("PartyA"), as_bytes("234"), as_bytes("PartyB"))) ==
          "6f6303323334065061727479420331323306506172747941");
    CHECK(to_hex(cpace::transcript_oc(as_bytes("3456"), as_bytes("PartyA"), as_bytes("2345"),
                                      as_bytes("PartyB"))) == "6f63043334353606506172747941043233343506506172747942");
}

// ---- Appendix B.3: ristretto255 / SHA-512 ---------------------------------------

TEST_CASE(DRAFT "B.3.1: generator_string and generator g") {
    const SecretBytes gen_str = cpace::generator_string(tv("prs"), tv("ci"), tv("sid"));
    CHECK(bytes_of(gen_str.view()) == tv("generator_string"));
    const auto h = crypto::sha512(gen_str.view());
    CHECK(bytes_of(h) == tv("generator_hash"));
    const cpace::Generator g = draft_generator();
    CHECK(bytes_of(g.span()) == tv("g"));
}

TEST_CASE(DRAFT "8.1: zero padding shrinks to nothing for a long PRS") {
    // len_zpad = 128 - 1 - len(prepend_len(PRS)) - len(prepend_len(DSI)), DSI taking 18.
    // A 107-octet PRS leaves one zero octet: 18 + 108 + (1 + 1) + lv(CI) 1 + lv(sid) 1.
    CHECK(cpace::generator_string(Bytes(107, 'x'), {}, {}).size() == 130);
    // From 108 octets on the padding field is empty (just its length octet).
    CHECK(cpace::generator_string(Bytes(108, 'x'), {}, {}).size() == 18 + 109 + 1 + 2);
    CHECK(cpace::generator_string(Bytes(109, 'x'), {}, {}).size() == 18 + 110 + 1 + 2);
    const Bytes longer(300, 'x');  // two-octet length prefix, still no padding
    CHECK(cpace::generator_string(longer, {}, {}).size() == 18 + 302 + 3);
}

TEST_CASE(DRAFT "B.3.2: message from A") {
    const auto a = draft_party("ya");
    CHECK(bytes_of(a.public_share()) == tv("Ya"));
}

TEST_CASE(DRAFT "B.3.3: message from B") {
    const auto b = draft_party("yb");
    CHECK(bytes_of(b.public_share()) == tv("Yb"));
}

TEST_CASE(DRAFT "B.3.4: secret points K") {
    const auto a = draft_party("ya");
    const auto b = draft_party("yb");
    const auto ka = a.shared_point(fixed<32>(tv("Yb")));
    const auto kb = b.shared_point(fixed<32>(tv("Ya")));
    REQUIRE(ka.ok());
    REQUIRE(kb.ok());
    CHECK(bytes_of(ka->span()) == tv("K_a"));
    CHECK(bytes_of(kb->span()) == tv("K_b"));
}

TEST_CASE(DRAFT "B.3.5: ISK initiator/responder") {
    const Bytes& ya = tv("Ya");
    const Bytes& yb = tv("Yb");
    CHECK(cpace::transcript_ir(ya, tv("ada"), yb, tv("adb")) == tv("transcript_ir"));
    CHECK(bytes_of(as_bytes("CPaceRistretto255_ISK")) == tv("dsi_isk"));

    const cpace::SharedPoint k(fixed<32>(tv("K_a")));
    const cpace::Isk isk = cpace::derive_isk_ir(tv("sid"), k, ya, tv("ada"), yb, tv("adb"));
    CHECK(bytes_of(isk.span()) == tv("isk_ir"));
    CHECK(bytes_of(crypto::sha512(tv("isk_input_ir"))) == tv("isk_ir"));

    // The same through each party's one-call path, which never exposes K.
    const auto a = draft_party("ya");
    const auto b = draft_party("yb");
    const auto isk_a = a.isk(cpace::Role::initiator, tv("sid"), tv("ada"), fixed<32>(yb), tv("adb"));
    const auto isk_b = b.isk(cpace::Role::responder, tv("sid"), tv("adb"), fixed<32>(ya), tv("ada"));
    REQUIRE(isk_a.ok());
    REQUIRE(isk_b.ok());
    CHECK(bytes_of(isk_a->span()) == tv("isk_ir"));
    CHECK(bytes_of(isk_b->span()) == tv("isk_ir"));
}

TEST_CASE(DRAFT "B.3.6: ISK parallel execution") {
    const Bytes& ya = tv("Ya");
    const Bytes& yb = tv("Yb");
    CHECK(cpace::transcript_oc(ya, tv("ada"), yb, tv("adb")) == tv("transcript_oc"));
    const cpace::SharedPoint k(fixed<32>(tv("K_a")));
    CHECK(bytes_of(cpace::derive_isk_oc(tv("sid"), k, ya, tv("ada"), yb, tv("adb")).span()) == tv("isk_oc"));
    // Symmetric: either party may list itself first.
    CHECK(bytes_of(cpace::derive_isk_oc(tv("sid"), k, yb, tv("adb"), ya, tv("ada")).span()) == tv("isk_oc"));
    CHECK(bytes_of(crypto::sha512(tv("isk_input_oc"))) == tv("isk_oc"));
}

TEST_CASE(DRAFT "B.3.7: optional session id output") {
    CHECK(bytes_of(cpace::sid_output_ir(tv("Ya"), tv("ada"), tv("Yb"), tv("adb"))) == tv("sid_output_ir"));
    CHECK(bytes_of(cpace::sid_output_oc(tv("Ya"), tv("ada"), tv("Yb"), tv("adb"))) == tv("sid_output_oc"));
}

TEST_CASE(DRAFT "B.3.10: scalar_mult with valid inputs") {
    // scalar_mult(s, decode(X)) through the public-share path with X as "g",
    // and scalar_mult_vfy(s, X) through the shared-point path.
    const cpace::Generator x(fixed<32>(tv("valid_X")));
    const auto e = cpace::Ephemeral::from_scalar(fixed<32>(tv("valid_s")), x);
    REQUIRE(e.ok());
    CHECK(bytes_of(e->public_share()) == tv("valid_scalar_mult"));
    const auto k = e->shared_point(fixed<32>(tv("valid_X")));
    REQUIRE(k.ok());
    CHECK(bytes_of(k->span()) == tv("valid_scalar_mult_vfy"));
}

TEST_CASE(DRAFT "B.3.11: invalid inputs for scalar_mult_vfy abort") {
    const auto e = cpace::Ephemeral::from_scalar(fixed<32>(tv("valid_s")), draft_generator());
    REQUIRE(e.ok());
    for (const char* name : {"invalid_Y1", "invalid_Y2"}) {
        CAPTURE(name);
        const auto k = e->shared_point(fixed<32>(tv(name)));
        REQUIRE_FALSE(k.ok());
        CHECK(k.error().code == ErrorCode::crypto);
        const auto isk = e->isk(cpace::Role::initiator, tv("sid"), tv("ada"), fixed<32>(tv(name)), tv("adb"));
        REQUIRE_FALSE(isk.ok());
        CHECK(isk.error().code == ErrorCode::crypto);
    }
}

TEST_CASE(DRAFT "8.3: non-canonical and negative encodings fail to decode") {
    // RFC 9496 decode, which scalar_mult_vfy relies on, accepts only the
    // canonical, non-negative field element: anything else must give G.I.
    const auto a = draft_party("ya");
    // p = 2^255 - 19 itself: a non-canonical encoding of zero (the identity).
    std::array<std::uint8_t, 32> p{};
    p.fill(0xff);
    p[0] = 0xed;
    p[31] = 0x7f;
    CHECK(a.shared_point(p).error().code == ErrorCode::crypto);
    // Yb with bit 255 set is out of range.
    Bytes high = tv("Yb");
    high[31] |= 0x80;
    CHECK_FALSE(a.shared_point(fixed<32>(high)).ok());
    // A negative field element (lowest bit set) is never a valid encoding.
    Bytes odd = tv("Yb");
    odd[0] |= 1;
    CHECK_FALSE(a.shared_point(fixed<32>(odd)).ok());
}

TEST_CASE(DRAFT "8.3: injected scalars must be canonical and non-zero") {
    const cpace::Generator g = draft_generator();
    const std::array<std::uint8_t, 32> zero{};
    CHECK(cpace::Ephemeral::from_scalar(zero, g).error().code == ErrorCode::crypto);
    // The group order itself, and the order + 1, are not reduced.
    std::array<std::uint8_t, 32> order = {0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7,
                                          0xa2, 0xde, 0xf9, 0xde, 0x14, 0,    0,    0,    0,    0,    0,
                                          0,    0,    0,    0,    0,    0,    0,    0,    0,    0x10};
    CHECK_FALSE(cpace::Ephemeral::from_scalar(order, g).ok());
    order[0] = 0xee;
    CHECK_FALSE(cpace::Ephemeral::from_scalar(order, g).ok());
    // order - 1 is the largest valid scalar.
    order[0] = 0xec;
    CHECK(cpace::Ephemeral::from_scalar(order, g).ok());
    std::array<std::uint8_t, 32> top{};
    top[31] = 0x80;
    CHECK_FALSE(cpace::Ephemeral::from_scalar(top, g).ok());
}

// ---- properties of whole runs -------------------------------------------------------

namespace {
struct Run {
    Bytes isk_a;
    Bytes isk_b;
};

Run run(ByteView prs_a, ByteView prs_b, ByteView ci, ByteView sid) {
    const auto ga = cpace::calculate_generator(prs_a, ci, sid);
    const auto gb = cpace::calculate_generator(prs_b, ci, sid);
    auto a = cpace::Ephemeral::generate(ga);
    auto b = cpace::Ephemeral::generate(gb);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    const auto ia = a->isk(cpace::Role::initiator, sid, as_bytes("ADa"), b->public_share(), as_bytes("ADb"));
    const auto ib = b->isk(cpace::Role::responder, sid, as_bytes("ADb"), a->public_share(), as_bytes("ADa"));
    REQUIRE(ia.ok());
    REQUIRE(ib.ok());
    return {bytes_of(ia->span()), bytes_of(ib->span())};
}
}  // namespace

TEST_CASE(DRAFT "7.2: two random parties with the same inputs agree") {
    const Run r = run(as_bytes("12345678"), as_bytes("12345678"), as_bytes("credprov/v1"), tv("sid"));
    CHECK(r.isk_a == r.isk_b);
    // Fresh scalars every run (10.9): a second run gives another key.
    const Run r2 = run(as_bytes("12345678"), as_bytes("12345678"), as_bytes("credprov/v1"), tv("sid"));
    CHECK(r2.isk_a == r2.isk_b);
    CHECK(r2.isk_a != r.isk_a);
}

TEST_CASE(DRAFT "7.2: a wrong PRS gives different ISKs") {
    const Run r = run(as_bytes("12345678"), as_bytes("12345679"), as_bytes("credprov/v1"), tv("sid"));
    CHECK(r.isk_a != r.isk_b);
    // And with the draft's fixed scalars: B's share made with another PRS.
    const auto a = draft_party("ya");
    const auto wrong_g = cpace::calculate_generator(as_bytes("Passwore"), tv("ci"), tv("sid"));
    const auto b = cpace::Ephemeral::from_scalar(fixed<32>(tv("yb")), wrong_g);
    REQUIRE(b.ok());
    const auto isk = a.isk(cpace::Role::initiator, tv("sid"), tv("ada"), b->public_share(), tv("adb"));
    REQUIRE(isk.ok());
    CHECK(bytes_of(isk->span()) != tv("isk_ir"));
}

TEST_CASE(DRAFT "7.2: different CI, sid or AD give different ISKs") {
    const auto a = draft_party("ya");
    const auto yb = fixed<32>(tv("Yb"));
    const auto changed_ad = a.isk(cpace::Role::initiator, tv("sid"), tv("ada"), yb, as_bytes("ADc"));
    const auto changed_sid = a.isk(cpace::Role::initiator, as_bytes("other sid"), tv("ada"), yb, tv("adb"));
    const auto swapped_roles = a.isk(cpace::Role::responder, tv("sid"), tv("ada"), yb, tv("adb"));
    REQUIRE(changed_ad.ok());
    REQUIRE(changed_sid.ok());
    REQUIRE(swapped_roles.ok());
    CHECK(bytes_of(changed_ad->span()) != tv("isk_ir"));
    CHECK(bytes_of(changed_sid->span()) != tv("isk_ir"));
    CHECK(bytes_of(swapped_roles->span()) != tv("isk_ir"));
    CHECK(bytes_of(cpace::calculate_generator(tv("prs"), as_bytes("other CI"), tv("sid")).span()) != tv("g"));
}

TEST_CASE(DRAFT "10.4: explicit key confirmation Ta/Tb") {
    // The draft gives no vectors for 10.4; check the construction it states
    // and that the tags bind key and message.
    const cpace::Isk isk(fixed<64>(tv("isk_ir")));
    const cpace::MacKey key = cpace::confirmation_key(tv("sid"), isk);
    Bytes mac_key_input = bytes_of(as_bytes("CPaceMac"));
    append(mac_key_input, tv("sid"));
    append(mac_key_input, tv("isk_ir"));
    CHECK(bytes_of(key.span()) == bytes_of(crypto::sha512(mac_key_input)));

    const cpace::Tag ta = cpace::confirmation_tag(key, tv("Ya"), tv("ada"));
    const cpace::Tag tb = cpace::confirmation_tag(key, tv("Yb"), tv("adb"));
    std::array<std::uint8_t, 64> expected_ta{};
    crypto::hmac_sha512(key.span(), cpace::lv_cat({tv("Ya"), tv("ada")}), expected_ta);
    CHECK(ta == expected_ta);
    CHECK(ta != tb);

    CHECK(cpace::verify_confirmation_tag(key, tv("Ya"), tv("ada"), ta).ok());
    CHECK(cpace::verify_confirmation_tag(key, tv("Yb"), tv("adb"), tb).ok());
    // A's tag does not pass as B's, a flipped bit fails, a short tag fails.
    CHECK(cpace::verify_confirmation_tag(key, tv("Yb"), tv("adb"), ta).error().code == ErrorCode::auth_failed);
    cpace::Tag flipped = ta;
    flipped[17] ^= 0x04;
    CHECK_FALSE(cpace::verify_confirmation_tag(key, tv("Ya"), tv("ada"), flipped).ok());
    CHECK_FALSE(cpace::verify_confirmation_tag(key, tv("Ya"), tv("ada"), ByteView(ta).first(32)).ok());
    // Another ISK gives another key.
    const cpace::Isk other(fixed<64>(tv("isk_oc")));
    CHECK_FALSE(cpace::verify_confirmation_tag(cpace::confirmation_key(tv("sid"), other), tv("Ya"), tv("ada"), ta).ok());
}
