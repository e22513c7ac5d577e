// The USIM side of UMTS AKA, 3GPP TS 33.102 6.3.3, for the device agent's
// soft-USIM: verify AUTN, check SQN freshness (sqn_scheme.hpp), and answer
// with RES, CK and IK, or with a synchronisation failure carrying AUTS.
//
// Pure: the SQN state comes in and, on success, the new state to persist goes
// out; the caller must persist it before releasing RES, or a power cut could
// let the same AUTN be accepted twice. A MAC failure is a typed error
// (ErrorCode::auth_failed) whose message never contains keys, RES or SQN.
// Nothing here logs.
#pragma once

#include <variant>

#include "credprov/aka/parameters.hpp"
#include "credprov/aka/sqn_scheme.hpp"
#include "credprov/aka/subscriber_keys.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov::aka {

// AUTN verified and SQN fresh.
struct AkaSuccess {
    Res res;
    Ck ck;
    Ik ik;
    Sqn sqn;                  // the accepted SQN
    Amf amf;                  // as received, for callers that check the separation bit
    UsimSqnState new_state;   // persist before sending RES
};

// AUTN verified (genuine network) but SQN not fresh: send AUTS so the network
// can resynchronise. The SQN state is unchanged.
struct SyncFailure {
    Auts auts;                // (SQN_MS xor AK*) || f1*(SQN_MS, RAND, 0x0000)
};

using AkaResult = std::variant<AkaSuccess, SyncFailure>;

[[nodiscard]] Result<AkaResult> usim_authenticate(const SubscriberKeys& keys, const UsimSqnState& state,
                                                  const Rand& rand, const Autn& autn,
                                                  const SqnPolicy& policy = {});

// AUTS for the current state: what usim_authenticate sends on a sync failure.
[[nodiscard]] Auts make_auts(const SubscriberKeys& keys, const UsimSqnState& state, const Rand& rand);

}  // namespace credprov::aka
