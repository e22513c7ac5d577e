// Key schedule after CPace and the record layer of the secure channel.
//
//   th       = SHA-512("credprov/v1 transcript" || lv_cat(M1, Yb, ADb))
//   PRK      = HKDF-Extract(salt = th, IKM = ISK)                (HMAC-SHA-512)
//   k_p2d    = HKDF-Expand(PRK, "credprov/v1 key p2d", 32)
//   k_d2p    = HKDF-Expand(PRK, "credprov/v1 key d2p", 32)
//
// Records are ChaCha20-Poly1305-IETF with the implicit nonce 0^4 || counter
// (64-bit big-endian, one counter per direction, starting at 0) and the
// message type as associated data. The receiver only ever tries the next
// counter, so a replayed, reordered, dropped, truncated or modified record
// fails authentication; the channel then refuses everything and wipes keys.
#pragma once

#include <cstdint>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/cpace.hpp"
#include "credprov/protocol/crypto.hpp"
#include "credprov/protocol/result.hpp"
#include "credprov/protocol/secret.hpp"

namespace credprov {

enum class Direction : std::uint8_t { provisioner_to_device, device_to_provisioner };

[[nodiscard]] crypto::Hash transcript_hash(ByteView m1, ByteView yb, ByteView adb);

class SecureChannel {
public:
    // Derives both directional keys; `own` selects which one this side sends with.
    SecureChannel(const cpace::Isk& isk, const crypto::Hash& th, Direction own_send);

    [[nodiscard]] Bytes seal(std::uint8_t type, ByteView plaintext);
    [[nodiscard]] Result<SecretBytes> open(std::uint8_t type, ByteView record);
    void wipe() noexcept;
    [[nodiscard]] bool usable() const noexcept { return usable_; }
    [[nodiscard]] std::uint64_t sent() const noexcept { return send_counter_; }
    [[nodiscard]] std::uint64_t received() const noexcept { return recv_counter_; }

private:
    InlineSecret<crypto::kAeadKeyBytes> send_key_;
    InlineSecret<crypto::kAeadKeyBytes> recv_key_;
    std::uint64_t send_counter_{0};
    std::uint64_t recv_counter_{0};
    bool usable_{true};
};

}  // namespace credprov
