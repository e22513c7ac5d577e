// Known-answer tests for Milenage (3GPP TS 35.206) against the test sets of
// TS 35.207 (4.3, sets 1-6) and TS 35.208 (4.3.1-4.3.20), read from
// tests/vectors/milenage_ts_35_20{7,8}.txt, and tests of the AKA procedures
// of TS 33.102 built on them: vector generation, the soft-USIM, resync and
// the SQN freshness rules of Annex C. Test names carry the spec section.
#include <doctest/doctest.h>

#include "vector_file.hpp"

#include <fstream>
#include <map>
#include <string>
#include <variant>

#include "credprov/aka/milenage.hpp"
#include "credprov/aka/network.hpp"
#include "credprov/aka/sqn_scheme.hpp"
#include "credprov/aka/text_input.hpp"
#include "credprov/aka/usim.hpp"

using namespace credprov;
using namespace credprov::aka;

namespace {

template <std::size_t N>
std::span<const std::uint8_t, N> fixed(const Bytes& b) {
    REQUIRE(b.size() == N);
    return std::span<const std::uint8_t, N>(b.data(), N);
}

template <class T>
T public_value(const Bytes& b) {
    T v;
    const auto s = fixed<T::kBytes>(b);
    std::copy(s.begin(), s.end(), v.bytes.begin());
    return v;
}

template <std::size_t N>
std::string hex_of(const InlineSecret<N>& s) {
    return to_hex(s.span());
}

std::map<std::string, Bytes> load(const std::string& file) { return credprov::testing::load_vector_file(file); }

const std::map<std::string, Bytes>& spec_file(const std::string& file) {
    static std::map<std::string, std::map<std::string, Bytes>> cache;
    auto it = cache.find(file);
    if (it == cache.end()) it = cache.emplace(file, load(file)).first;
    return it->second;
}

struct TestSet {
    const std::map<std::string, Bytes>* values;
    int n;

    const Bytes& operator[](const std::string& name) const {
        const auto it = values->find("set" + std::to_string(n) + "." + name);
        REQUIRE_MESSAGE(it != values->end(), "missing vector set" << n << "." << name);
        return it->second;
    }
    [[nodiscard]] SubscriberKeys keys() const {
        return SubscriberKeys::from_k_and_op(fixed<16>((*this)["K"]), fixed<16>((*this)["OP"]));
    }
    [[nodiscard]] Rand rand() const { return public_value<Rand>((*this)["RAND"]); }
    [[nodiscard]] Amf amf() const { return public_value<Amf>((*this)["AMF"]); }
    [[nodiscard]] Sqn sqn() const { return Sqn::from_bytes(fixed<6>((*this)["SQN"])); }
};

TestSet spec_set(const char* file, int n) { return TestSet{&spec_file(file), n}; }

// Every Milenage output of one test set: OPc, f1, f1*, f2, f3, f4, f5, f5*.
void check_known_answers(const TestSet& t) {
    WipedArray<16> opc;
    derive_opc(fixed<16>(t["K"]), fixed<16>(t["OP"]), opc.span());
    CHECK(to_hex(opc.span()) == to_hex(t["OPc"]));

    const auto keys = t.keys();
    CHECK(to_hex(keys.opc().span()) == to_hex(t["OPc"]));
    const auto rand = t.rand();
    CHECK(to_hex(milenage::f1(keys, rand, t.sqn(), t.amf()).bytes) == to_hex(t["f1"]));
    CHECK(to_hex(milenage::f1_star(keys, rand, t.sqn(), t.amf()).bytes) == to_hex(t["f1*"]));
    CHECK(hex_of(milenage::f2(keys, rand)) == to_hex(t["f2"]));
    CHECK(hex_of(milenage::f3(keys, rand)) == to_hex(t["f3"]));
    CHECK(hex_of(milenage::f4(keys, rand)) == to_hex(t["f4"]));
    CHECK(hex_of(milenage::f5(keys, rand)) == to_hex(t["f5"]));
    CHECK(hex_of(milenage::f5_star(keys, rand)) == to_hex(t["f5*"]));

    const auto all = milenage::f2345(keys, rand);
    CHECK(hex_of(all.res) == to_hex(t["f2"]));
    CHECK(hex_of(all.ck) == to_hex(t["f3"]));
    CHECK(hex_of(all.ik) == to_hex(t["f4"]));
    CHECK(hex_of(all.ak) == to_hex(t["f5"]));

    // The OPc path gives the same functions as the OP path.
    const auto by_opc = SubscriberKeys::from_k_and_opc(fixed<16>(t["K"]), fixed<16>(t["OPc"]));
    CHECK(to_hex(milenage::f1(by_opc, rand, t.sqn(), t.amf()).bytes) == to_hex(t["f1"]));
    CHECK(hex_of(milenage::f2(by_opc, rand)) == to_hex(t["f2"]));
}

// The quintet of TS 33.102 6.3.2 from the spec's values: AUTN = (SQN xor f5) || AMF || f1.
void check_vector_against_spec(const TestSet& t) {
    const auto v = generate_vector(t.keys(), t.sqn(), t.amf(), t.rand());
    Bytes autn;
    for (std::size_t i = 0; i < 6; ++i) autn.push_back(static_cast<std::uint8_t>(t["SQN"][i] ^ t["f5"][i]));
    append(autn, t["AMF"]);
    append(autn, t["f1"]);
    CHECK(to_hex(v.autn.bytes) == to_hex(autn));
    CHECK(v.rand == t.rand());
    CHECK(hex_of(v.xres) == to_hex(t["f2"]));
    CHECK(hex_of(v.ck) == to_hex(t["f3"]));
    CHECK(hex_of(v.ik) == to_hex(t["f4"]));
}

constexpr const char* k207 = "milenage_ts_35_207.txt";
constexpr const char* k208 = "milenage_ts_35_208.txt";

// A subscriber for the procedure tests: TS 35.208 test set 3.
SubscriberKeys lab_keys() { return spec_set(k208, 3).keys(); }

Rand rand_of(std::uint8_t seed) {
    Rand r;
    for (std::size_t i = 0; i < Rand::kBytes; ++i) r.bytes[i] = static_cast<std::uint8_t>(seed * 31 + i);
    return r;
}

const Amf kAmf{{0x80, 0x00}};

AkaResult authenticate(const SubscriberKeys& keys, const UsimSqnState& state, const AuthVector& v,
                       const SqnPolicy& policy = {}) {
    auto r = usim_authenticate(keys, state, v.rand, v.autn, policy);
    REQUIRE(r.ok());
    return std::move(r).value();
}

}  // namespace

// ---- TS 35.207: implementors' test data ----------------------------------------

#define MILENAGE_KAT(file, doc, section, n)                                     \
    TEST_CASE("milenage: TS " doc " " section " test set " #n) {                \
        check_known_answers(spec_set(file, n));                                 \
    }

MILENAGE_KAT(k207, "35.207", "4.3", 1)
MILENAGE_KAT(k207, "35.207", "4.3", 2)
MILENAGE_KAT(k207, "35.207", "4.3", 3)
MILENAGE_KAT(k207, "35.207", "4.3", 4)
MILENAGE_KAT(k207, "35.207", "4.3", 5)
MILENAGE_KAT(k207, "35.207", "4.3", 6)

// ---- TS 35.208: design conformance test data -----------------------------------

MILENAGE_KAT(k208, "35.208", "4.3.1", 1)
MILENAGE_KAT(k208, "35.208", "4.3.2", 2)
MILENAGE_KAT(k208, "35.208", "4.3.3", 3)
MILENAGE_KAT(k208, "35.208", "4.3.4", 4)
MILENAGE_KAT(k208, "35.208", "4.3.5", 5)
MILENAGE_KAT(k208, "35.208", "4.3.6", 6)
MILENAGE_KAT(k208, "35.208", "4.3.7", 7)
MILENAGE_KAT(k208, "35.208", "4.3.8", 8)
MILENAGE_KAT(k208, "35.208", "4.3.9", 9)
MILENAGE_KAT(k208, "35.208", "4.3.10", 10)
MILENAGE_KAT(k208, "35.208", "4.3.11", 11)
MILENAGE_KAT(k208, "35.208", "4.3.12", 12)
MILENAGE_KAT(k208, "35.208", "4.3.13", 13)
MILENAGE_KAT(k208, "35.208", "4.3.14", 14)
MILENAGE_KAT(k208, "35.208", "4.3.15", 15)
MILENAGE_KAT(k208, "35.208", "4.3.16", 16)
MILENAGE_KAT(k208, "35.208", "4.3.17", 17)
MILENAGE_KAT(k208, "35.208", "4.3.18", 18)
MILENAGE_KAT(k208, "35.208", "4.3.19", 19)
MILENAGE_KAT(k208, "35.208", "4.3.20", 20)

TEST_CASE("milenage: the vector files hold every set they announce") {
    CHECK(spec_file(k207).size() == 6 * 13);
    CHECK(spec_file(k208).size() == 20 * 13);
}

// ---- TS 33.102 6.3: AKA procedures -----------------------------------------------

TEST_CASE("milenage: TS 33.102 6.3.2 vectors from the TS 35.208 sets") {
    for (int n = 1; n <= 20; ++n) {
        CAPTURE(n);
        check_vector_against_spec(spec_set(k208, n));
    }
}

TEST_CASE("milenage: TS 33.102 6.3 full AKA round trip, network vector accepted by the USIM") {
    const auto keys = lab_keys();
    UsimSqnState usim;
    Sqn sqn_he;  // a fresh HE counter
    for (std::uint8_t i = 1; i <= 40; ++i) {
        CAPTURE(i);
        auto next = next_sqn(sqn_he, i % kIndSlots);
        REQUIRE(next.ok());
        sqn_he = next.value();
        const auto v = generate_vector(keys, sqn_he, kAmf, rand_of(i));

        auto result = authenticate(keys, usim, v);
        auto* ok = std::get_if<AkaSuccess>(&result);
        REQUIRE(ok != nullptr);
        CHECK(ct_equal(ok->res.span(), v.xres.span()));
        CHECK(ct_equal(ok->ck.span(), v.ck.span()));
        CHECK(ct_equal(ok->ik.span(), v.ik.span()));
        CHECK(ok->sqn == sqn_he);
        CHECK(ok->amf == kAmf);
        CHECK(ok->new_state.seq_ms(ind_of(sqn_he)) == seq_of(sqn_he));
        CHECK(ok->new_state.highest() == sqn_he);
        usim = ok->new_state;
    }
}

TEST_CASE("milenage: TS 33.102 6.3.3 a replayed AUTN is a sync failure, and 6.3.5 resync recovers SQN_MS") {
    const auto keys = lab_keys();
    const Sqn sqn = make_sqn(1000, 7);
    const auto v = generate_vector(keys, sqn, kAmf, rand_of(1));

    auto first = authenticate(keys, UsimSqnState{}, v);
    REQUIRE(std::holds_alternative<AkaSuccess>(first));
    const UsimSqnState usim = std::get<AkaSuccess>(first).new_state;

    auto replay = authenticate(keys, usim, v);
    auto* failure = std::get_if<SyncFailure>(&replay);
    REQUIRE(failure != nullptr);
    CHECK(failure->auts == make_auts(keys, usim, v.rand));

    // AUTS = (SQN_MS xor AK*) || f1*(SQN_MS, RAND, AMF = 0x0000).
    Auts expected;
    const auto sqn_bytes = sqn.to_bytes();
    const auto ak_star = milenage::f5_star(keys, v.rand);
    for (std::size_t i = 0; i < 6; ++i) expected.bytes[i] = sqn_bytes[i] ^ ak_star.span()[i];
    const auto mac_s = milenage::f1_star(keys, v.rand, sqn, Amf{{0x00, 0x00}});
    std::copy(mac_s.bytes.begin(), mac_s.bytes.end(), expected.bytes.begin() + 6);
    CHECK(failure->auts == expected);

    auto sqn_ms = resync(keys, v.rand, failure->auts);
    REQUIRE(sqn_ms.ok());
    CHECK(sqn_ms.value() == sqn);

    // The network continues from SQN_MS and the USIM accepts again.
    auto next = next_sqn(sqn_ms.value(), 7);
    REQUIRE(next.ok());
    const auto fresh = generate_vector(keys, next.value(), kAmf, rand_of(2));
    auto again = authenticate(keys, usim, fresh);
    REQUIRE(std::holds_alternative<AkaSuccess>(again));
    CHECK(std::get<AkaSuccess>(again).sqn == make_sqn(1001, 7));
}

TEST_CASE("milenage: TS 33.102 6.3.3 resync with AUTS from an independent implementation (TS 35.208 set 20)") {
    // hostapd's milenage_auts check: SQN_MS = 1 under the keys and RAND of
    // TS 35.208 test set 20, MAC-S over the dummy AMF 0x0000.
    const auto t = spec_set(k208, 20);
    const auto auts = parse_auts("4f2039392ddd4bb4316ed4a14688");
    REQUIRE(auts.ok());
    auto sqn_ms = resync(t.keys(), t.rand(), auts.value());
    REQUIRE(sqn_ms.ok());
    CHECK(sqn_ms.value() == Sqn(1));
}

TEST_CASE("milenage: TS 33.102 6.3.3 resync rejects a bad MAC-S") {
    const auto keys = lab_keys();
    const auto v = generate_vector(keys, make_sqn(5, 0), kAmf, rand_of(3));
    auto first = authenticate(keys, UsimSqnState{}, v);
    const auto usim = std::get<AkaSuccess>(first).new_state;
    const Auts good = make_auts(keys, usim, v.rand);
    REQUIRE(resync(keys, v.rand, good).ok());

    for (std::size_t i = 0; i < Auts::kBytes; ++i) {
        CAPTURE(i);
        Auts bad = good;
        bad.bytes[i] ^= 0x01;
        const auto r = resync(keys, v.rand, bad);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == ErrorCode::auth_failed);
    }
    const auto other_rand = resync(keys, rand_of(4), good);
    REQUIRE_FALSE(other_rand.ok());
    CHECK(other_rand.error().code == ErrorCode::auth_failed);
}

TEST_CASE("milenage: TS 33.102 6.3.3 a modified AUTN is a MAC failure") {
    const auto keys = lab_keys();
    const auto v = generate_vector(keys, make_sqn(9, 3), kAmf, rand_of(5));
    for (std::size_t i = 0; i < Autn::kBytes; ++i) {
        CAPTURE(i);
        Autn bad = v.autn;
        bad.bytes[i] ^= 0x80;  // concealed SQN, AMF and MAC-A all carry the MAC
        const auto r = usim_authenticate(keys, UsimSqnState{}, v.rand, bad);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == ErrorCode::auth_failed);
        CHECK(r.error().message.find(to_hex(bad.bytes)) == std::string::npos);
    }
    const auto wrong_rand = usim_authenticate(keys, UsimSqnState{}, rand_of(6), v.autn);
    REQUIRE_FALSE(wrong_rand.ok());
    CHECK(wrong_rand.error().code == ErrorCode::auth_failed);

    const auto other = spec_set(k208, 4).keys();
    const auto wrong_key = usim_authenticate(other, UsimSqnState{}, v.rand, v.autn);
    REQUIRE_FALSE(wrong_key.ok());
    CHECK(wrong_key.error().code == ErrorCode::auth_failed);
}

// ---- TS 33.102 Annex C: SQN freshness ----------------------------------------------

TEST_CASE("milenage: TS 33.102 C.2.2 freshness window delta") {
    const auto keys = lab_keys();
    const SqnPolicy policy{100};
    UsimSqnState usim;

    // From SEQ_MS = 0: SEQ 100 is within delta, SEQ 101 is not.
    const auto too_far = generate_vector(keys, make_sqn(101, 0), kAmf, rand_of(7));
    CHECK(std::holds_alternative<SyncFailure>(authenticate(keys, usim, too_far, policy)));
    const auto edge = generate_vector(keys, make_sqn(100, 0), kAmf, rand_of(8));
    auto accepted = authenticate(keys, usim, edge, policy);
    REQUIRE(std::holds_alternative<AkaSuccess>(accepted));
    usim = std::get<AkaSuccess>(accepted).new_state;

    // The window moves with the highest accepted SEQ, whatever its IND.
    CHECK(usim.is_fresh(make_sqn(200, 5), policy));
    CHECK_FALSE(usim.is_fresh(make_sqn(201, 5), policy));
    CHECK(std::holds_alternative<AkaSuccess>(authenticate(keys, usim, too_far, policy)));

    // The default delta is 2^28 SEQ steps.
    CHECK(UsimSqnState{}.is_fresh(make_sqn(kDefaultSeqDelta, 1)));
    CHECK_FALSE(UsimSqnState{}.is_fresh(make_sqn(kDefaultSeqDelta + 1, 1)));

    // A sync failure reports the highest SQN_MS, here SEQ 100 with IND 0.
    const auto stale = generate_vector(keys, make_sqn(50, 0), kAmf, rand_of(9));
    auto failure = authenticate(keys, usim, stale, policy);
    REQUIRE(std::holds_alternative<SyncFailure>(failure));
    auto sqn_ms = resync(keys, stale.rand, std::get<SyncFailure>(failure).auts);
    REQUIRE(sqn_ms.ok());
    CHECK(sqn_ms.value() == make_sqn(100, 0));
}

TEST_CASE("milenage: TS 33.102 C.2.2 one SEQ_MS per IND: out-of-order vectors across INDs, replays rejected") {
    UsimSqnState usim = UsimSqnState{}.accepted(make_sqn(5, 1));
    CHECK(usim.highest() == make_sqn(5, 1));
    CHECK(usim.is_fresh(make_sqn(3, 2)));        // issued earlier for another serving node
    usim = usim.accepted(make_sqn(3, 2));
    CHECK(usim.highest() == make_sqn(5, 1));
    CHECK_FALSE(usim.is_fresh(make_sqn(5, 1)));  // replay
    CHECK_FALSE(usim.is_fresh(make_sqn(4, 1)));  // older, same IND
    CHECK_FALSE(usim.is_fresh(make_sqn(3, 2)));
    CHECK(usim.is_fresh(make_sqn(6, 1)));
    CHECK(usim.is_fresh(make_sqn(1, 9)));        // untouched slot

    // SEQ 0 is never fresh; a network that counts SQN up by one from 32
    // (SEQ 1) is accepted throughout.
    for (unsigned ind = 0; ind < kIndSlots; ++ind) CHECK_FALSE(UsimSqnState{}.is_fresh(make_sqn(0, ind)));
    UsimSqnState counting;
    for (std::uint64_t sqn = 32; sqn <= 200; ++sqn) {
        CAPTURE(sqn);
        REQUIRE(counting.is_fresh(Sqn(sqn)));
        counting = counting.accepted(Sqn(sqn));
    }
    CHECK(counting.highest() == Sqn(200));
    CHECK(counting.is_fresh(Sqn(counting.highest().value() + 1)));  // SQN_MS + 1 after a resync
    CHECK_FALSE(counting.is_fresh(Sqn(199)));
}

TEST_CASE("milenage: TS 33.102 6.3.5 the network resets SQN_HE to SQN_MS only if the USIM would refuse its next SQN") {
    const SqnPolicy policy{100};
    // The USIM ran ahead (vectors used with another network): reset.
    CHECK(resynchronised_sqn(make_sqn(10, 3), make_sqn(40, 1), policy) == make_sqn(40, 1));
    CHECK(resynchronised_sqn(make_sqn(10, 3), make_sqn(11, 1), policy) == make_sqn(11, 1));
    // A late AUTS: the network issued more vectors since; their SQNs must not
    // be issued again, and the next one is fresh for that USIM anyway.
    CHECK(resynchronised_sqn(make_sqn(10, 3), make_sqn(10, 0), policy) == make_sqn(10, 3));
    CHECK(resynchronised_sqn(make_sqn(50, 3), make_sqn(2, 0), policy) == make_sqn(50, 3));
    // The network ran more than delta ahead of the USIM: reset.
    CHECK(resynchronised_sqn(make_sqn(100, 3), make_sqn(1, 0), policy) == make_sqn(100, 3));
    CHECK(resynchronised_sqn(make_sqn(101, 3), make_sqn(1, 0), policy) == make_sqn(1, 0));
    // Whatever it keeps, the USIM accepts the network's next vector.
    for (const auto& [he, ms] : {std::pair{make_sqn(10, 3), make_sqn(40, 1)}, std::pair{make_sqn(50, 3), make_sqn(2, 0)},
                                 std::pair{make_sqn(101, 3), make_sqn(1, 0)}}) {
        const UsimSqnState usim = UsimSqnState{}.accepted(ms);
        CHECK(usim.is_fresh(next_sqn(resynchronised_sqn(he, ms, policy), 4).value(), policy));
    }
}

TEST_CASE("milenage: TS 33.102 C.1 SQN = SEQ || IND and the network counter") {
    const Sqn sqn = make_sqn(0x123456789, 0x1f);
    CHECK(seq_of(sqn) == 0x123456789);
    CHECK(ind_of(sqn) == 0x1f);
    CHECK(sqn.value() == ((std::uint64_t{0x123456789} << 5) | 0x1f));
    CHECK(Sqn::from_bytes(sqn.to_bytes()) == sqn);

    auto next = next_sqn(sqn, 2);
    REQUIRE(next.ok());
    CHECK(next.value() == make_sqn(0x12345678a, 2));
    const auto exhausted = next_sqn(make_sqn(kSeqMax, 0), 0);
    REQUIRE_FALSE(exhausted.ok());
    CHECK(exhausted.error().code == ErrorCode::oversized);
}

TEST_CASE("milenage: USIM SQN state persists and rejects malformed input") {
    UsimSqnState usim;
    usim = usim.accepted(make_sqn(kSeqMax, 31)).accepted(make_sqn(77, 0)).accepted(make_sqn(1, 15));
    const auto bytes = usim.to_bytes();
    auto back = UsimSqnState::from_bytes(bytes);
    REQUIRE(back.ok());
    CHECK(back.value() == usim);
    CHECK(back.value().seq_ms(31) == kSeqMax);

    const auto short_state = UsimSqnState::from_bytes(ByteView(bytes).first(bytes.size() - 1));
    REQUIRE_FALSE(short_state.ok());
    CHECK(short_state.error().code == ErrorCode::malformed);
    auto too_big = bytes;
    too_big[0] = 0x80;  // slot 0 now holds a SEQ above 43 bits
    const auto bad = UsimSqnState::from_bytes(too_big);
    REQUIRE_FALSE(bad.ok());
    CHECK(bad.error().code == ErrorCode::malformed);
}

// ---- Text input for the CLI -----------------------------------------------------------

TEST_CASE("milenage: hex input for aka --rand HEX --autn HEX") {
    const auto t = spec_set(k208, 1);
    auto rand = parse_rand("23553cbe9637a89d218ae64dae47bf35");
    REQUIRE(rand.ok());
    CHECK(rand.value() == t.rand());
    auto sqn = parse_sqn("ff9bb4d0b607");
    REQUIRE(sqn.ok());
    CHECK(sqn.value() == t.sqn());
    auto amf = parse_amf("b9b9");
    REQUIRE(amf.ok());
    CHECK(amf.value() == t.amf());
    CHECK(parse_autn(std::string(32, 'a')).ok());

    for (const std::string_view bad : {"", "23553cbe9637a89d218ae64dae47bf3", "23553cbe9637a89d218ae64dae47bf3500",
                                       "23553cbe9637a89d218ae64dae47bfzz"}) {
        CAPTURE(bad);
        const auto r = parse_rand(bad);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == ErrorCode::malformed);
    }
    CHECK_FALSE(parse_auts(std::string(26, '0')).ok());
    CHECK_FALSE(parse_sqn("ff9bb4d0b6").ok());

    auto keys = parse_keys_with_op("465b5ce8b199b49faa5f0a2ee238a6bc", "cdc202d5123e20f62b6d676ac72cb318");
    REQUIRE(keys.ok());
    CHECK(to_hex(keys.value().opc().span()) == "cd63cb71954a9f4e48a5994e37a02baf");
    auto with_opc = parse_keys_with_opc("465b5ce8b199b49faa5f0a2ee238a6bc", "cd63cb71954a9f4e48a5994e37a02baf");
    REQUIRE(with_opc.ok());
    CHECK(milenage::f1(with_opc.value(), t.rand(), t.sqn(), t.amf()) == milenage::f1(keys.value(), t.rand(), t.sqn(), t.amf()));

    // A bad key is reported by field name only; the digits never appear.
    const std::string secret_ish = "465b5ce8b199b49faa5f0a2ee238a6bX";
    const auto bad_key = parse_keys_with_opc(secret_ish, "cd63cb71954a9f4e48a5994e37a02baf");
    REQUIRE_FALSE(bad_key.ok());
    CHECK(bad_key.error().code == ErrorCode::malformed);
    CHECK(bad_key.error().message.find("465b5c") == std::string::npos);
    const auto bad_opc = parse_keys_with_opc("465b5ce8b199b49faa5f0a2ee238a6bc", "cd63");
    REQUIRE_FALSE(bad_opc.ok());
    CHECK(bad_opc.error().message.find("OPc") != std::string::npos);
}
