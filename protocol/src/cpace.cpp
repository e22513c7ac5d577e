// CPace on ristretto255 with SHA-512, draft-irtf-cfrg-cpace-21.
//
// Everything derived from the PRS (generator string, its hash, g), the
// scalars and K lives in Secret / WipedArray / SecretBytes, and every hash
// state that absorbed them is wiped. Buffers holding secrets are sized once
// up front, because a growing std::vector frees its old copy unwiped.
// No I/O, no logging, no clock.
#include "credprov/protocol/cpace.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstring>
#include <utility>

#include <sodium.h>

namespace credprov::cpace {

namespace {

constexpr std::string_view kIskLabel = "_ISK";          // G.DSI || b"_ISK" (7.2)
constexpr std::string_view kSidOutputLabel = "CPaceSidOutput";  // 10.6
constexpr std::string_view kMacLabel = "CPaceMac";              // 10.4

// Order of the ristretto255 group, 2^252 + 27742317777372353535851937790883648493,
// little-endian (8.3).
constexpr std::array<std::uint8_t, kScalarBytes> kGroupOrder = {
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10};

// Octets of LEB128(n), as prepend_len writes it (A.1.1).
std::size_t leb128_size(std::size_t n) noexcept {
    std::size_t k = 1;
    while (n >= 0x80) {
        n >>= 7;
        ++k;
    }
    return k;
}

std::uint8_t* write_leb128(std::uint8_t* out, std::size_t n) noexcept {
    for (;;) {
        const auto low = static_cast<std::uint8_t>(n & 0x7f);
        n >>= 7;
        *out++ = n == 0 ? low : static_cast<std::uint8_t>(low | 0x80);
        if (n == 0) return out;
    }
}

std::size_t lv_size(std::size_t n) noexcept { return leb128_size(n) + n; }

std::uint8_t* write_lv(std::uint8_t* out, ByteView data) noexcept {
    out = write_leb128(out, data.size());
    if (!data.empty()) std::memcpy(out, data.data(), data.size());
    return out + data.size();
}

void hash_update(crypto_hash_sha512_state& st, ByteView data) {
    crypto_hash_sha512_update(&st, data.data(), data.size());
}

void hash_update_lv(crypto_hash_sha512_state& st, ByteView data) {
    std::array<std::uint8_t, 10> len{};  // LEB128 of a 64-bit length fits in 10 octets
    const std::uint8_t* end = write_leb128(len.data(), data.size());
    crypto_hash_sha512_update(&st, len.data(), static_cast<unsigned long long>(end - len.data()));
    hash_update(st, data);
}

// A.3.1: true iff a > b in lexicographic order, a proper prefix being smaller.
bool lexicographically_larger(ByteView a, ByteView b) {
    return std::lexicographical_compare(b.begin(), b.end(), a.begin(), a.end());
}

// 1 <= s < group order, without branching on the scalar's bytes.
bool is_canonical_nonzero(std::span<const std::uint8_t, kScalarBytes> s) noexcept {
    unsigned borrow = 0;
    for (std::size_t i = 0; i < kScalarBytes; ++i) {
        const unsigned diff = static_cast<unsigned>(s[i]) - kGroupOrder[i] - borrow;
        borrow = (diff >> 8) & 1u;
    }
    // s - L borrows out exactly when s < L.
    return (borrow == 1) & (sodium_is_zero(s.data(), s.size()) == 0);
}

Error invalid_point_error() {
    return make_error(ErrorCode::crypto, "CPace: peer share is not a valid ristretto255 element or gives the identity");
}

// ISK = H.hash(lv_cat(DSI || "_ISK", sid, K) || transcript) (7.2), streamed so
// K never sits in a temporary buffer.
Isk derive_isk(ByteView sid, const SharedPoint& k, ByteView transcript) {
    std::array<std::uint8_t, kDsi.size() + kIskLabel.size()> dsi_isk{};
    std::copy(kDsi.begin(), kDsi.end(), dsi_isk.begin());
    std::copy(kIskLabel.begin(), kIskLabel.end(), dsi_isk.begin() + kDsi.size());

    crypto_hash_sha512_state st;
    crypto_hash_sha512_init(&st);
    hash_update_lv(st, dsi_isk);
    hash_update_lv(st, sid);
    hash_update_lv(st, k.span());
    hash_update(st, transcript);
    Isk isk;
    crypto_hash_sha512_final(&st, isk.data());
    sodium_memzero(&st, sizeof st);
    return isk;
}

}  // namespace

// ---- string functions -------------------------------------------------------

Bytes prepend_len(ByteView data) { return lv_cat({data}); }

Bytes lv_cat(std::initializer_list<ByteView> parts) {
    std::size_t total = 0;
    for (const auto& p : parts) total += lv_size(p.size());
    Bytes out(total);
    std::uint8_t* w = out.data();
    for (const auto& p : parts) w = write_lv(w, p);
    assert(w == out.data() + out.size());
    return out;
}

Bytes o_cat(ByteView a, ByteView b) {
    const bool a_first = lexicographically_larger(a, b);
    const ByteView first = a_first ? a : b;
    const ByteView second = a_first ? b : a;
    Bytes out;
    out.reserve(2 + a.size() + b.size());
    append(out, as_bytes("oc"));
    append(out, first);
    append(out, second);
    return out;
}

Bytes transcript_ir(ByteView ya, ByteView ada, ByteView yb, ByteView adb) {
    Bytes out = lv_cat({ya, ada});
    append(out, lv_cat({yb, adb}));
    return out;
}

Bytes transcript_oc(ByteView ya, ByteView ada, ByteView yb, ByteView adb) {
    return o_cat(lv_cat({ya, ada}), lv_cat({yb, adb}));
}

// ---- generator --------------------------------------------------------------

SecretBytes generator_string(ByteView prs, ByteView ci, ByteView sid) {
    // 8.1: len_zpad = MAX(0, s_in_bytes - len(prepend_len(PRS)) - len(prepend_len(DSI)) - 1),
    // so DSI, PRS and the padding fill the first hash block whatever the
    // length of a short PRS, and its timing does not depend on the PRS.
    const std::size_t head = 1 + lv_size(prs.size()) + lv_size(kDsi.size());
    const std::size_t zpad = head < kHashBlockBytes ? kHashBlockBytes - head : 0;

    const std::size_t total =
        lv_size(kDsi.size()) + lv_size(prs.size()) + lv_size(zpad) + lv_size(ci.size()) + lv_size(sid.size());
    SecretBytes out(total);  // zero-filled: the padding is already in place
    std::uint8_t* w = out.data();
    w = write_lv(w, as_bytes(kDsi));
    w = write_lv(w, prs);
    w = write_leb128(w, zpad) + zpad;
    w = write_lv(w, ci);
    w = write_lv(w, sid);
    assert(w == out.data() + out.size());
    return out;
}

Generator calculate_generator(ByteView prs, ByteView ci, ByteView sid) {
    crypto::ensure_initialised();
    const SecretBytes gen_str = generator_string(prs, ci, sid);
    // 8.3: hash to 2 * field_size_bytes = 64 octets, then element_derivation,
    // which is libsodium's one-way map from 64 bytes (RFC 9496 4.3.4).
    WipedArray<crypto_core_ristretto255_HASHBYTES> gen_str_hash;
    crypto_hash_sha512(gen_str_hash.data(), gen_str.data(), gen_str.size());
    Generator g;
    [[maybe_unused]] const int rc = crypto_core_ristretto255_from_hash(g.data(), gen_str_hash.data());
    assert(rc == 0);  // the map is total; libsodium always returns 0
    return g;
}

// ---- ephemeral --------------------------------------------------------------

Result<Ephemeral> Ephemeral::generate(const Generator& g) {
    crypto::ensure_initialised();
    // 8.3, recommended sampling: 32 random octets with the bits above
    // group_size_bits = 252 cleared. Any such value is below the group order;
    // zero (probability 2^-252) would give Y = G.I, so draw again.
    InlineSecret<kScalarBytes> y;
    do {
        randombytes_buf(y.data(), y.size());
        y.data()[kScalarBytes - 1] &= 0x0f;
    } while (sodium_is_zero(y.data(), y.size()) != 0);
    return from_reduced(std::move(y), g);
}

Result<Ephemeral> Ephemeral::from_scalar(std::span<const std::uint8_t, kScalarBytes> scalar, const Generator& g) {
    crypto::ensure_initialised();
    // libsodium silently clears bit 255 of the scalar; rejecting anything
    // non-canonical makes the injected y the one actually used.
    if (!is_canonical_nonzero(scalar)) {
        return make_error(ErrorCode::crypto, "CPace: scalar is zero or not reduced modulo the group order");
    }
    return from_reduced(InlineSecret<kScalarBytes>(scalar), g);
}

Result<Ephemeral> Ephemeral::from_reduced(InlineSecret<kScalarBytes> scalar, const Generator& g) {
    Ephemeral e;
    e.scalar_ = std::move(scalar);
    // 8.3 scalar_mult: Y = encode(y * _g). libsodium takes g encoded and
    // decodes it; decoding an encoding produced by from_hash cannot fail.
    // libsodium uses its output as scratch for the scalar, so the output is a
    // wiped temporary, copied out only on success.
    WipedArray<kPointBytes> y_point;
    if (crypto_scalarmult_ristretto255(y_point.data(), e.scalar_.data(), g.data()) != 0) {
        return make_error(ErrorCode::crypto, "CPace: public share is the identity");
    }
    std::copy(y_point.span().begin(), y_point.span().end(), e.share_.begin());
    return e;
}

Result<SharedPoint> Ephemeral::shared_point(PointView peer_share) const {
    // 8.3 scalar_mult_vfy: G.I if decode(X) fails, else encode(y * decode(X));
    // 7.2: abort if K = G.I. libsodium returns -1 for an invalid encoding and
    // for an all-zero result, but 1.0.18's canonicity check misses bit 255
    // (fixed in later releases): it decodes X and X | 2^255 alike, while
    // RFC 9496 decode rejects the latter. Reject it here; X is public.
    if ((peer_share[kPointBytes - 1] & 0x80) != 0) return invalid_point_error();
    SharedPoint k;
    if (crypto_scalarmult_ristretto255(k.data(), scalar_.data(), peer_share.data()) != 0) {
        return invalid_point_error();  // k, possibly holding scratch, is wiped on return
    }
    return k;
}

Result<Isk> Ephemeral::isk(Role role, ByteView sid, ByteView own_ad, PointView peer_share, ByteView peer_ad) const {
    auto k = shared_point(peer_share);
    if (!k) return k.error();
    // The transcript is always A's message first, whichever side we are.
    if (role == Role::initiator) return derive_isk_ir(sid, *k, share_, own_ad, peer_share, peer_ad);
    return derive_isk_ir(sid, *k, peer_share, peer_ad, share_, own_ad);
}

// ---- ISK ----------------------------------------------------------------------

Isk derive_isk_ir(ByteView sid, const SharedPoint& k, ByteView ya, ByteView ada, ByteView yb, ByteView adb) {
    return derive_isk(sid, k, transcript_ir(ya, ada, yb, adb));
}

Isk derive_isk_oc(ByteView sid, const SharedPoint& k, ByteView ya, ByteView ada, ByteView yb, ByteView adb) {
    return derive_isk(sid, k, transcript_oc(ya, ada, yb, adb));
}

crypto::Hash sid_output_ir(ByteView ya, ByteView ada, ByteView yb, ByteView adb) {
    return crypto::sha512({as_bytes(kSidOutputLabel), transcript_ir(ya, ada, yb, adb)});
}

crypto::Hash sid_output_oc(ByteView ya, ByteView ada, ByteView yb, ByteView adb) {
    return crypto::sha512({as_bytes(kSidOutputLabel), transcript_oc(ya, ada, yb, adb)});
}

// ---- key confirmation ---------------------------------------------------------

MacKey confirmation_key(ByteView sid, const Isk& isk) {
    // 10.4: plain concatenation b"CPaceMac" || sid || ISK, not lv_cat.
    crypto_hash_sha512_state st;
    crypto_hash_sha512_init(&st);
    hash_update(st, as_bytes(kMacLabel));
    hash_update(st, sid);
    hash_update(st, isk.span());
    MacKey key;
    crypto_hash_sha512_final(&st, key.data());
    sodium_memzero(&st, sizeof st);
    return key;
}

Tag confirmation_tag(const MacKey& mac_key, ByteView y, ByteView ad) {
    Tag tag{};
    crypto::hmac_sha512(mac_key.span(), lv_cat({y, ad}), tag);
    return tag;
}

Status verify_confirmation_tag(const MacKey& mac_key, ByteView y, ByteView ad, ByteView tag) {
    const Tag expected = confirmation_tag(mac_key, y, ad);
    if (!ct_equal(expected, tag)) {
        return make_error(ErrorCode::auth_failed, "CPace: key confirmation tag does not verify");
    }
    return {};
}

}  // namespace credprov::cpace
