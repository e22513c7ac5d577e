// The long-term Milenage key material of one subscriber: K and OPc.
//
// Both live in guarded memory (Secret<16>, see docs/decisions/0003) for as
// long as the object lives and are wiped when it goes. The operator variant
// OP is only an input: OPc = E_K(OP) xor OP (TS 35.206 4.1) is derived once and
// OP is not kept. This file must never print, log or copy K, OP or OPc into
// unwiped memory.
#pragma once

#include <cstdint>
#include <span>

#include "credprov/protocol/secret.hpp"

namespace credprov::aka {

class SubscriberKeys {
public:
    static constexpr std::size_t kKeyBytes = 16;
    using KeyView = std::span<const std::uint8_t, kKeyBytes>;

    // Named factories instead of a (k, opc) constructor: K, OP and OPc are all
    // 16 octets, and the name says which one the second argument is.
    [[nodiscard]] static SubscriberKeys from_k_and_opc(KeyView k, KeyView opc);
    // Derives OPc = E_K(OP) xor OP. Throws std::bad_alloc if libcrypto cannot
    // allocate its cipher context (its only failure mode).
    [[nodiscard]] static SubscriberKeys from_k_and_op(KeyView k, KeyView op);

    [[nodiscard]] const Secret<kKeyBytes>& k() const noexcept { return k_; }
    [[nodiscard]] const Secret<kKeyBytes>& opc() const noexcept { return opc_; }

private:
    SubscriberKeys() = default;
    Secret<kKeyBytes> k_;
    Secret<kKeyBytes> opc_;
};

// OPc = E_K(OP) xor OP, written into caller-provided (wiped) memory. Exposed
// for the known-answer tests and for provisioning tools that store OPc only.
void derive_opc(SubscriberKeys::KeyView k, SubscriberKeys::KeyView op,
                std::span<std::uint8_t, SubscriberKeys::kKeyBytes> opc_out);

}  // namespace credprov::aka
