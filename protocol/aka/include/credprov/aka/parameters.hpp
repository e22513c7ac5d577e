// The AKA parameters of 3GPP TS 33.102 section 6.3 as strong types, so that a
// RAND cannot be passed where an AUTN is expected and a MAC-A never stands in
// for a MAC-S.
//
// Public values (sent in the clear over the air: RAND, AUTN, AUTS, AMF, the
// MACs) are plain structs holding a ByteArray. Values that must stay secret
// (XRES before the device answers, CK, IK, the anonymity keys) are
// InlineSecret subclasses: movable, wiped on destruction, never printable.
// Nothing in this file may ever be logged except the public structs.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <span>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/secret.hpp"

namespace credprov::aka {

// RAND: the 128-bit random challenge chosen by the network.
struct Rand {
    static constexpr std::size_t kBytes = 16;
    ByteArray<kBytes> bytes{};
    friend bool operator==(const Rand&, const Rand&) = default;
};

// AMF: the 16-bit authentication management field.
struct Amf {
    static constexpr std::size_t kBytes = 2;
    ByteArray<kBytes> bytes{};
    friend bool operator==(const Amf&, const Amf&) = default;
};

// MAC-A = f1(K, SQN, RAND, AMF): network authentication code, last 8 octets of AUTN.
struct MacA {
    static constexpr std::size_t kBytes = 8;
    ByteArray<kBytes> bytes{};
    friend bool operator==(const MacA&, const MacA&) = default;
};

// MAC-S = f1*(K, SQN_MS, RAND, AMF): resynchronisation code, last 8 octets of AUTS.
struct MacS {
    static constexpr std::size_t kBytes = 8;
    ByteArray<kBytes> bytes{};
    friend bool operator==(const MacS&, const MacS&) = default;
};

// AUTN = (SQN xor AK) || AMF || MAC-A (TS 33.102 6.3.2).
struct Autn {
    static constexpr std::size_t kBytes = 16;
    ByteArray<kBytes> bytes{};
    friend bool operator==(const Autn&, const Autn&) = default;
};

// AUTS = (SQN_MS xor AK*) || MAC-S (TS 33.102 6.3.3).
struct Auts {
    static constexpr std::size_t kBytes = 14;
    ByteArray<kBytes> bytes{};
    friend bool operator==(const Auts&, const Auts&) = default;
};

// SQN: a 48-bit sequence number. How it splits into SEQ and IND, and which
// values a USIM accepts, is in sqn_scheme.hpp.
class Sqn {
public:
    static constexpr std::size_t kBytes = 6;
    static constexpr std::uint64_t kMax = (std::uint64_t{1} << 48) - 1;

    constexpr Sqn() noexcept = default;
    // A value above 48 bits is a programming error.
    constexpr explicit Sqn(std::uint64_t value) noexcept : v_(value) { assert(value <= kMax); }

    [[nodiscard]] constexpr std::uint64_t value() const noexcept { return v_; }
    // Big-endian, as it appears (concealed) in AUTN and AUTS.
    [[nodiscard]] constexpr ByteArray<kBytes> to_bytes() const noexcept {
        ByteArray<kBytes> out{};
        for (std::size_t i = 0; i < kBytes; ++i) out[i] = static_cast<std::uint8_t>(v_ >> (8 * (kBytes - 1 - i)));
        return out;
    }
    [[nodiscard]] static constexpr Sqn from_bytes(std::span<const std::uint8_t, kBytes> b) noexcept {
        std::uint64_t v = 0;
        for (const std::uint8_t octet : b) v = (v << 8) | octet;
        return Sqn(v);
    }

    friend constexpr bool operator==(const Sqn&, const Sqn&) = default;
    friend constexpr auto operator<=>(const Sqn&, const Sqn&) = default;

private:
    std::uint64_t v_{0};
};

// RES (device) / XRES (network) = f2: 64 bits with Milenage. XRES must not
// leak before the device answers, so it is a secret; compare with ct_equal.
class Res : public InlineSecret<8> {
public:
    using InlineSecret<8>::InlineSecret;
};

// CK = f3: the 128-bit cipher key.
class Ck : public InlineSecret<16> {
public:
    using InlineSecret<16>::InlineSecret;
};

// IK = f4: the 128-bit integrity key.
class Ik : public InlineSecret<16> {
public:
    using InlineSecret<16>::InlineSecret;
};

// AK = f5 (conceals SQN in AUTN) and AK* = f5* (conceals SQN_MS in AUTS):
// 48-bit anonymity keys. Secret: they unmask the subscriber's SQN.
class Ak : public InlineSecret<6> {
public:
    using InlineSecret<6>::InlineSecret;
};
class AkStar : public InlineSecret<6> {
public:
    using InlineSecret<6>::InlineSecret;
};

}  // namespace credprov::aka
