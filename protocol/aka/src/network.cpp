// Network side of UMTS AKA (TS 33.102 6.3.2, 6.3.5): authentication vectors
// and AUTS verification. Temporaries holding AK or AK* are wiped; error
// messages never carry keys, SQN or MACs.
#include "credprov/aka/network.hpp"

#include <algorithm>

#include "credprov/aka/milenage.hpp"

namespace credprov::aka {

AuthVector generate_vector(const SubscriberKeys& keys, Sqn sqn, const Amf& amf, const Rand& rand) {
    auto outputs = milenage::f2345(keys, rand);
    const MacA mac = milenage::f1(keys, rand, sqn, amf);

    AuthVector v{rand, Autn{}, std::move(outputs.res), std::move(outputs.ck), std::move(outputs.ik)};
    const auto sqn_bytes = sqn.to_bytes();
    auto& autn = v.autn.bytes;
    for (std::size_t i = 0; i < Sqn::kBytes; ++i) autn[i] = sqn_bytes[i] ^ outputs.ak.span()[i];
    std::copy(amf.bytes.begin(), amf.bytes.end(), autn.begin() + Sqn::kBytes);
    std::copy(mac.bytes.begin(), mac.bytes.end(), autn.begin() + Sqn::kBytes + Amf::kBytes);
    return v;
}

Result<Sqn> resync(const SubscriberKeys& keys, const Rand& rand, const Auts& auts) {
    const AkStar ak_star = milenage::f5_star(keys, rand);
    WipedArray<Sqn::kBytes> sqn_ms_bytes;
    for (std::size_t i = 0; i < Sqn::kBytes; ++i) sqn_ms_bytes.span()[i] = auts.bytes[i] ^ ak_star.span()[i];
    const Sqn sqn_ms = Sqn::from_bytes(sqn_ms_bytes.span());

    const MacS expected = milenage::f1_star(keys, rand, sqn_ms, Amf{});  // dummy AMF = 0x0000
    if (!ct_equal(expected.bytes, ByteView(auts.bytes).subspan(Sqn::kBytes))) {
        return make_error(ErrorCode::auth_failed, "AUTS: MAC-S does not verify");
    }
    return sqn_ms;
}

}  // namespace credprov::aka
