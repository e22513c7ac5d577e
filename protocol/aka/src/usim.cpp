// USIM side of UMTS AKA (TS 33.102 6.3.3) for the soft-USIM: AUTN check in
// constant time, SQN freshness per sqn_scheme.hpp, AUTS on sync failure.
// Never logs; error messages never carry keys, RES, SQN or MACs.
#include "credprov/aka/usim.hpp"

#include <algorithm>

#include "credprov/aka/milenage.hpp"

namespace credprov::aka {

Auts make_auts(const SubscriberKeys& keys, const UsimSqnState& state, const Rand& rand) {
    const Sqn sqn_ms = state.highest();
    const AkStar ak_star = milenage::f5_star(keys, rand);
    const MacS mac_s = milenage::f1_star(keys, rand, sqn_ms, Amf{});  // dummy AMF = 0x0000 (6.3.3)
    Auts auts;
    const auto sqn_bytes = sqn_ms.to_bytes();
    for (std::size_t i = 0; i < Sqn::kBytes; ++i) auts.bytes[i] = sqn_bytes[i] ^ ak_star.span()[i];
    std::copy(mac_s.bytes.begin(), mac_s.bytes.end(), auts.bytes.begin() + Sqn::kBytes);
    return auts;
}

Result<AkaResult> usim_authenticate(const SubscriberKeys& keys, const UsimSqnState& state, const Rand& rand,
                                    const Autn& autn, const SqnPolicy& policy) {
    const ByteView autn_bytes(autn.bytes);
    Amf amf;
    std::copy_n(autn_bytes.begin() + Sqn::kBytes, Amf::kBytes, amf.bytes.begin());

    auto outputs = milenage::f2345(keys, rand);
    WipedArray<Sqn::kBytes> sqn_bytes;
    for (std::size_t i = 0; i < Sqn::kBytes; ++i) sqn_bytes.span()[i] = autn_bytes[i] ^ outputs.ak.span()[i];
    const Sqn sqn = Sqn::from_bytes(sqn_bytes.span());

    // MAC first: only a genuine network may learn anything about our SQN.
    const MacA xmac = milenage::f1(keys, rand, sqn, amf);
    if (!ct_equal(xmac.bytes, autn_bytes.subspan(Sqn::kBytes + Amf::kBytes))) {
        return make_error(ErrorCode::auth_failed, "AUTN: MAC-A does not verify");
    }
    if (!state.is_fresh(sqn, policy)) {
        return AkaResult(SyncFailure{make_auts(keys, state, rand)});
    }
    return AkaResult(AkaSuccess{std::move(outputs.res), std::move(outputs.ck), std::move(outputs.ik), sqn, amf,
                                state.accepted(sqn)});
}

}  // namespace credprov::aka
