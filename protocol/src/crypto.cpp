// libsodium wrappers: sizes in types, Status for failures, wiped temporaries.
#include "credprov/protocol/crypto.hpp"

#include <algorithm>
#include <array>
#include <cassert>
#include <cstdlib>
#include <cstring>

#include <sodium.h>

namespace credprov::crypto {

void ensure_initialised() {
    static const int rc = sodium_init();
    if (rc < 0) std::abort();  // no entropy source: nothing here can be safe
}

void random_bytes(std::span<std::uint8_t> out) {
    ensure_initialised();
    randombytes_buf(out.data(), out.size());
}

Hash sha512(ByteView data) {
    Hash h{};
    crypto_hash_sha512(h.data(), data.data(), data.size());
    return h;
}

Hash sha512(std::initializer_list<ByteView> parts) {
    crypto_hash_sha512_state st;
    crypto_hash_sha512_init(&st);
    for (const auto& p : parts) crypto_hash_sha512_update(&st, p.data(), p.size());
    Hash h{};
    crypto_hash_sha512_final(&st, h.data());
    return h;
}

void hmac_sha512(ByteView key, ByteView data, std::span<std::uint8_t, 64> out) {
    crypto_auth_hmacsha512_state st;
    crypto_auth_hmacsha512_init(&st, key.data(), key.size());
    crypto_auth_hmacsha512_update(&st, data.data(), data.size());
    crypto_auth_hmacsha512_final(&st, out.data());
    sodium_memzero(&st, sizeof st);
}

void hkdf_extract(ByteView salt, ByteView ikm, std::span<std::uint8_t, 64> prk) {
    // RFC 5869 2.2: an empty salt is HashLen zero bytes.
    static constexpr std::array<std::uint8_t, 64> zero_salt{};
    hmac_sha512(salt.empty() ? ByteView(zero_salt) : salt, ikm, prk);
}

void hkdf_expand(std::span<const std::uint8_t, 64> prk, ByteView info, std::span<std::uint8_t> out) {
    assert(out.size() <= 255 * 64);
    WipedArray<64> t;
    std::size_t t_len = 0;
    std::size_t done = 0;
    for (std::uint8_t counter = 1; done < out.size(); ++counter) {
        crypto_auth_hmacsha512_state st;
        crypto_auth_hmacsha512_init(&st, prk.data(), prk.size());
        crypto_auth_hmacsha512_update(&st, t.data(), t_len);
        crypto_auth_hmacsha512_update(&st, info.data(), info.size());
        crypto_auth_hmacsha512_update(&st, &counter, 1);
        crypto_auth_hmacsha512_final(&st, t.data());
        sodium_memzero(&st, sizeof st);
        t_len = 64;
        const std::size_t n = std::min<std::size_t>(64, out.size() - done);
        std::memcpy(out.data() + done, t.data(), n);
        done += n;
    }
}

SigningKey generate_signing_key() {
    ensure_initialised();
    SigningKey k;
    crypto_sign_ed25519_keypair(k.public_key.data(), k.secret_key.data());
    return k;
}

SigningKey signing_key_from_seed(std::span<const std::uint8_t, 32> seed) {
    ensure_initialised();
    SigningKey k;
    crypto_sign_ed25519_seed_keypair(k.public_key.data(), k.secret_key.data(), seed.data());
    return k;
}

namespace {
// The signed message is context || 0x00 || message, hashed by Ed25519 itself.
// A streaming form would need Ed25519ph; instead we build the buffer once.
Bytes signing_input(std::string_view context, ByteView message) {
    Bytes in;
    in.reserve(context.size() + 1 + message.size());
    append(in, as_bytes(context));
    in.push_back(0);
    append(in, message);
    return in;
}
}  // namespace

Signature sign(const SigningKey& key, std::string_view context, ByteView message) {
    const Bytes in = signing_input(context, message);
    Signature sig{};
    crypto_sign_ed25519_detached(sig.data(), nullptr, in.data(), in.size(), key.secret_key.data());
    return sig;
}

Status verify(const SignPublicKey& key, std::string_view context, ByteView message,
              const Signature& signature) {
    const Bytes in = signing_input(context, message);
    if (crypto_sign_ed25519_verify_detached(signature.data(), in.data(), in.size(), key.data()) != 0) {
        return make_error(ErrorCode::bad_signature, std::string("signature does not verify (") +
                                                        std::string(context) + ")");
    }
    return {};
}

BoxKey generate_box_key() {
    ensure_initialised();
    BoxKey k;
    randombytes_buf(k.secret_key.data(), kBoxSecretBytes);
    crypto_scalarmult_curve25519_base(k.public_key.data(), k.secret_key.data());
    return k;
}

BoxKey box_key_from_seed(std::span<const std::uint8_t, 32> seed) {
    ensure_initialised();
    BoxKey k;
    std::memcpy(k.secret_key.data(), seed.data(), 32);
    crypto_scalarmult_curve25519_base(k.public_key.data(), k.secret_key.data());
    return k;
}

Bytes aead_encrypt(std::span<const std::uint8_t, kAeadKeyBytes> key,
                   std::span<const std::uint8_t, kAeadNonceBytes> nonce, ByteView ad, ByteView plaintext) {
    Bytes out(plaintext.size() + kAeadTagBytes);
    unsigned long long n = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt(out.data(), &n, plaintext.data(), plaintext.size(), ad.data(),
                                              ad.size(), nullptr, nonce.data(), key.data());
    out.resize(static_cast<std::size_t>(n));
    return out;
}

Result<SecretBytes> aead_decrypt(std::span<const std::uint8_t, kAeadKeyBytes> key,
                                 std::span<const std::uint8_t, kAeadNonceBytes> nonce, ByteView ad,
                                 ByteView ciphertext) {
    if (ciphertext.size() < kAeadTagBytes) {
        return make_error(ErrorCode::malformed, "ciphertext shorter than its tag");
    }
    SecretBytes out(ciphertext.size() - kAeadTagBytes);
    unsigned long long n = 0;
    if (crypto_aead_chacha20poly1305_ietf_decrypt(out.data(), &n, nullptr, ciphertext.data(), ciphertext.size(),
                                                  ad.data(), ad.size(), nonce.data(), key.data()) != 0) {
        return make_error(ErrorCode::auth_failed, "message authentication failed");
    }
    return out;
}

}  // namespace credprov::crypto
