// Key schedule and AEAD records. Keys are wiped on the first failure.
#include "credprov/protocol/secure_channel.hpp"

#include <array>

#include <sodium.h>

namespace credprov {

namespace {
constexpr std::string_view kTranscriptLabel = "credprov/v1 transcript";
constexpr std::string_view kLabelP2d = "credprov/v1 key p2d";
constexpr std::string_view kLabelD2p = "credprov/v1 key d2p";

std::array<std::uint8_t, crypto::kAeadNonceBytes> nonce_for(std::uint64_t counter) {
    std::array<std::uint8_t, crypto::kAeadNonceBytes> n{};
    for (int i = 0; i < 8; ++i) n[static_cast<std::size_t>(11 - i)] = static_cast<std::uint8_t>(counter >> (8 * i));
    return n;
}
}  // namespace

crypto::Hash transcript_hash(ByteView m1, ByteView yb, ByteView adb) {
    const Bytes body = cpace::lv_cat({m1, yb, adb});
    return crypto::sha512({as_bytes(kTranscriptLabel), body});
}

SecureChannel::SecureChannel(const cpace::Isk& isk, const crypto::Hash& th, Direction own_send) {
    WipedArray<64> prk;
    crypto::hkdf_extract(th, isk.span(), prk.span());
    const bool p2d = own_send == Direction::provisioner_to_device;
    crypto::hkdf_expand(prk.span(), as_bytes(p2d ? kLabelP2d : kLabelD2p), send_key_.span());
    crypto::hkdf_expand(prk.span(), as_bytes(p2d ? kLabelD2p : kLabelP2d), recv_key_.span());
}

Bytes SecureChannel::seal(std::uint8_t type, ByteView plaintext) {
    // A counter that wraps would reuse a nonce; 2^64 records never happen, but
    // refuse rather than assume.
    if (!usable_ || send_counter_ == UINT64_MAX) return {};
    const std::array<std::uint8_t, 1> ad{type};
    const auto nonce = nonce_for(send_counter_++);
    return crypto::aead_encrypt(send_key_.span(), nonce, ad, plaintext);
}

Result<SecretBytes> SecureChannel::open(std::uint8_t type, ByteView record) {
    if (!usable_) return make_error(ErrorCode::bad_state, "secure channel already failed");
    const std::array<std::uint8_t, 1> ad{type};
    const auto nonce = nonce_for(recv_counter_);
    auto plain = crypto::aead_decrypt(recv_key_.span(), nonce, ad, record);
    if (!plain) {
        wipe();
        return make_error(ErrorCode::auth_failed,
                          "record failed authentication (modified, replayed, reordered or truncated)");
    }
    ++recv_counter_;
    return plain;
}

void SecureChannel::wipe() noexcept {
    send_key_.wipe();
    recv_key_.wipe();
    usable_ = false;
}

}  // namespace credprov
