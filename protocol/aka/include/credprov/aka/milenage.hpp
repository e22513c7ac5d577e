// The Milenage functions f1, f1*, f2, f3, f4, f5 and f5* (3GPP TS 35.206
// section 4.1), with the standard constants r1..r5 = 64, 0, 32, 64, 96 and
// c1..c5 = 0, 1, 2, 4, 8, over AES-128 from libcrypto.
//
// These are the raw functions, exposed for the known-answer tests of TS 35.207
// and TS 35.208; the AKA procedures built on them are in network.hpp and
// usim.hpp. Every intermediate value (TEMP, OUTn, key schedule) is wiped
// before return. Nothing here logs, and nothing here reads a clock.
//
// Each function throws std::bad_alloc if libcrypto cannot allocate a cipher
// context, which is the only way AES-128-ECB can fail.
#pragma once

#include "credprov/aka/parameters.hpp"
#include "credprov/aka/subscriber_keys.hpp"

namespace credprov::aka::milenage {

// f1: network authentication, MAC-A.
[[nodiscard]] MacA f1(const SubscriberKeys& keys, const Rand& rand, Sqn sqn, const Amf& amf);
// f1*: resynchronisation message authentication, MAC-S.
[[nodiscard]] MacS f1_star(const SubscriberKeys& keys, const Rand& rand, Sqn sqn, const Amf& amf);
// f2: user authentication response, RES / XRES.
[[nodiscard]] Res f2(const SubscriberKeys& keys, const Rand& rand);
// f3: cipher key CK.
[[nodiscard]] Ck f3(const SubscriberKeys& keys, const Rand& rand);
// f4: integrity key IK.
[[nodiscard]] Ik f4(const SubscriberKeys& keys, const Rand& rand);
// f5: anonymity key AK for AUTN.
[[nodiscard]] Ak f5(const SubscriberKeys& keys, const Rand& rand);
// f5*: anonymity key AK* for AUTS (resynchronisation).
[[nodiscard]] AkStar f5_star(const SubscriberKeys& keys, const Rand& rand);

// f2, f3, f4 and f5 share TEMP = E_K(RAND xor OPc); the network and the USIM
// need all four, so they are computed together with one key schedule.
struct F2345 {
    Res res;
    Ck ck;
    Ik ik;
    Ak ak;
};
[[nodiscard]] F2345 f2345(const SubscriberKeys& keys, const Rand& rand);

}  // namespace credprov::aka::milenage
