// CPace, the balanced PAKE that turns the device's setup code into a session
// key, for the cipher suite CPACE-RISTR255-SHA512.
//
// Pinned revision: draft-irtf-cfrg-cpace-21 (CFRG, 23 April 2026). Section
// numbers in comments refer to that text; its Appendix B.3 test vectors are
// committed in tests/vectors/cpace_ristretto255_sha512.txt. A newer revision
// is adopted only together with its vectors.
//
// This file only computes. It must never do I/O, log, read the clock, or let
// the PRS, a scalar, the generator, K or the ISK out of wiped memory. K is
// exposed only so the known-answer tests can check it (10.3: an
// implementation MUST NOT expose K); protocol code uses Ephemeral::isk(),
// which never returns it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/crypto.hpp"
#include "credprov/protocol/result.hpp"
#include "credprov/protocol/secret.hpp"

namespace credprov::cpace {

inline constexpr std::size_t kPointBytes = 32;   // G_Ristretto255.field_size_bytes
inline constexpr std::size_t kScalarBytes = 32;
inline constexpr std::size_t kIskBytes = 64;     // H.b_in_bytes of SHA-512
inline constexpr std::size_t kMacKeyBytes = 64;
inline constexpr std::size_t kTagBytes = 64;     // HMAC-SHA-512, untruncated
inline constexpr std::size_t kHashBlockBytes = 128;  // H.s_in_bytes of SHA-512
inline constexpr std::string_view kDsi = "CPaceRistretto255";

// Public encoding of a ristretto255 element (Ya, Yb on the wire).
using Point = ByteArray<kPointBytes>;
using PointView = std::span<const std::uint8_t, kPointBytes>;
// The generator g is derived from the PRS alone plus public CI and sid: who
// learns it can test setup-code guesses offline, so it is a secret.
using Generator = InlineSecret<kPointBytes>;
// K = scalar_mult_vfy(y, Y_peer), the encoded shared point.
using SharedPoint = InlineSecret<kPointBytes>;
using Isk = InlineSecret<kIskBytes>;
using MacKey = InlineSecret<kMacKeyBytes>;
using Tag = ByteArray<kTagBytes>;

// A is the initiator (speaks first), B the responder (7.1).
enum class Role : std::uint8_t { initiator, responder };

// ---- string functions (6.3, Appendix A); public data only ----------------

// LEB128(len(data)) || data (A.1.1).
[[nodiscard]] Bytes prepend_len(ByteView data);
// prepend_len(a0) || prepend_len(a1) || ... (A.1.3).
[[nodiscard]] Bytes lv_cat(std::initializer_list<ByteView> parts);
// "oc" || larger || smaller, in lexicographic order (A.3.2).
[[nodiscard]] Bytes o_cat(ByteView a, ByteView b);
// lv_cat(Ya,ADa) || lv_cat(Yb,ADb): the initiator-responder transcript (A.3.4).
[[nodiscard]] Bytes transcript_ir(ByteView ya, ByteView ada, ByteView yb, ByteView adb);
// o_cat(lv_cat(Ya,ADa), lv_cat(Yb,ADb)): the symmetric transcript (A.3.6).
[[nodiscard]] Bytes transcript_oc(ByteView ya, ByteView ada, ByteView yb, ByteView adb);

// ---- generator (8.1, 8.3) -------------------------------------------------

// lv_cat(DSI, PRS, zero_bytes(len_zpad), CI, sid) with s_in_bytes = 128.
// Contains the PRS, hence SecretBytes.
[[nodiscard]] SecretBytes generator_string(ByteView prs, ByteView ci, ByteView sid);
// g = element_derivation(SHA-512(generator_string)), returned encoded.
// Cannot fail: the one-way map is total.
[[nodiscard]] Generator calculate_generator(ByteView prs, ByteView ci, ByteView sid);

// ---- one party's ephemeral (7.2, 8.3) ---------------------------------------

// The secret scalar y and the public share Y = y*g of one CPace run. Each
// instance is for one run only (10.9: scalars MUST NOT be reused). Move-only;
// the scalar lives in guarded memory and is wiped with the object.
class Ephemeral {
public:
    // Samples y per the recommendation of 8.3 (32 random bytes, bits above
    // 252 cleared) and computes Y = scalar_mult(y, g).
    [[nodiscard]] static Result<Ephemeral> generate(const Generator& g);
    // Uses a given scalar, for known-answer tests. The scalar must be a
    // canonical non-zero scalar (1 <= y < group order), else ErrorCode::crypto.
    [[nodiscard]] static Result<Ephemeral> from_scalar(std::span<const std::uint8_t, kScalarBytes> scalar,
                                                       const Generator& g);

    [[nodiscard]] const Point& public_share() const noexcept { return share_; }

    // K = scalar_mult_vfy(y, Y_peer). ErrorCode::crypto when Y_peer does not
    // decode or K is the identity G.I: the caller MUST abort the run (7.2).
    [[nodiscard]] Result<SharedPoint> shared_point(PointView peer_share) const;

    // The whole second half of the initiator-responder setting: K from the
    // peer's share, then ISK with the transcript ordered by role. K never
    // leaves this call.
    [[nodiscard]] Result<Isk> isk(Role role, ByteView sid, ByteView own_ad, PointView peer_share,
                                  ByteView peer_ad) const;

private:
    Ephemeral() = default;
    [[nodiscard]] static Result<Ephemeral> from_reduced(InlineSecret<kScalarBytes> scalar, const Generator& g);

    InlineSecret<kScalarBytes> scalar_;
    Point share_{};
};

// ---- intermediate session key (7.2) -----------------------------------------

// ISK = SHA-512(lv_cat(DSI || "_ISK", sid, K) || transcript_ir(Ya,ADa,Yb,ADb)).
[[nodiscard]] Isk derive_isk_ir(ByteView sid, const SharedPoint& k, ByteView ya, ByteView ada, ByteView yb,
                                ByteView adb);
// Same with transcript_oc, for the symmetric setting (not used by credprov,
// which always has a provisioner-initiator; kept because the draft vectors it).
[[nodiscard]] Isk derive_isk_oc(ByteView sid, const SharedPoint& k, ByteView ya, ByteView ada, ByteView yb,
                                ByteView adb);

// sid_output = SHA-512("CPaceSidOutput" || transcript) for runs without a sid
// input (10.6). Public.
[[nodiscard]] crypto::Hash sid_output_ir(ByteView ya, ByteView ada, ByteView yb, ByteView adb);
[[nodiscard]] crypto::Hash sid_output_oc(ByteView ya, ByteView ada, ByteView yb, ByteView adb);

// ---- explicit key confirmation (10.4) ---------------------------------------
//
// The draft recommends, without mandating or test-vectoring it:
//   mac_key = H.hash("CPaceMac" || sid || ISK)
//   Ta = MAC(mac_key, lv_cat(Ya, ADa)),  Tb = MAC(mac_key, lv_cat(Yb, ADb))
// leaving MAC open ("such as HMAC"). credprov picks HMAC-SHA-512.

[[nodiscard]] MacKey confirmation_key(ByteView sid, const Isk& isk);
// The tag a party sends over its own message (Y, AD).
[[nodiscard]] Tag confirmation_tag(const MacKey& mac_key, ByteView y, ByteView ad);
// Constant-time check of the peer's tag over the peer's message;
// ErrorCode::auth_failed on mismatch (the caller aborts).
[[nodiscard]] Status verify_confirmation_tag(const MacKey& mac_key, ByteView y, ByteView ad, ByteView tag);

}  // namespace credprov::cpace
