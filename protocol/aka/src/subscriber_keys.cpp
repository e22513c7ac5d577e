// K and OPc in guarded memory, and the OPc derivation of TS 35.206 4.1.
// Never logs or copies key material outside wiped memory.
#include "credprov/aka/subscriber_keys.hpp"

#include <algorithm>

#include "aes128_block.hpp"

namespace credprov::aka {

SubscriberKeys SubscriberKeys::from_k_and_opc(KeyView k, KeyView opc) {
    SubscriberKeys keys;
    std::copy(k.begin(), k.end(), keys.k_.data());
    std::copy(opc.begin(), opc.end(), keys.opc_.data());
    return keys;
}

SubscriberKeys SubscriberKeys::from_k_and_op(KeyView k, KeyView op) {
    SubscriberKeys keys;
    std::copy(k.begin(), k.end(), keys.k_.data());
    derive_opc(k, op, keys.opc_.span());
    return keys;
}

void derive_opc(SubscriberKeys::KeyView k, SubscriberKeys::KeyView op,
                std::span<std::uint8_t, SubscriberKeys::kKeyBytes> opc_out) {
    detail::Aes128Block aes(k);
    aes.encrypt(op, opc_out);
    for (std::size_t i = 0; i < SubscriberKeys::kKeyBytes; ++i) opc_out[i] ^= op[i];
}

}  // namespace credprov::aka
