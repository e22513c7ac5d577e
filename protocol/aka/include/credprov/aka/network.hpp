// The network (HE/AuC) side of UMTS AKA, 3GPP TS 33.102 6.3.2 and 6.3.5:
// generating an authentication vector and recovering SQN_MS from a
// resynchronisation token AUTS.
//
// Pure: the caller supplies RAND (from a CSPRNG, e.g. crypto::random_bytes),
// the SQN from its counter (next_sqn in sqn_scheme.hpp) and stores the
// result. XRES, CK and IK are returned in wiped memory; nothing here logs, and
// no error message carries key material.
#pragma once

#include "credprov/aka/parameters.hpp"
#include "credprov/aka/subscriber_keys.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov::aka {

// A quintet: RAND, XRES, CK, IK, AUTN.
struct AuthVector {
    Rand rand;
    Autn autn;
    Res xres;
    Ck ck;
    Ik ik;
};

// AUTN = (SQN xor AK) || AMF || MAC-A with MAC-A = f1(SQN, RAND, AMF);
// XRES = f2, CK = f3, IK = f4, AK = f5.
[[nodiscard]] AuthVector generate_vector(const SubscriberKeys& keys, Sqn sqn, const Amf& amf, const Rand& rand);

// Recovers SQN_MS from AUTS = (SQN_MS xor AK*) || MAC-S for the RAND the
// network sent, verifying MAC-S = f1*(SQN_MS, RAND, AMF = 0x0000) in constant
// time (TS 33.102 6.3.3: the dummy AMF is all zeros). ErrorCode::auth_failed
// if MAC-S does not verify. The network then sets SQN_HE = SQN_MS (6.3.5).
[[nodiscard]] Result<Sqn> resync(const SubscriberKeys& keys, const Rand& rand, const Auts& auts);

}  // namespace credprov::aka
