// Thin, typed wrappers over the libsodium primitives the protocol uses.
//
// No primitive is implemented here; this file only fixes sizes in types and
// turns libsodium's int returns into Status values. HKDF is built on
// libsodium's HMAC-SHA-512 (RFC 5869), because libsodium 1.0.18 has no HKDF.
// Never logs; every temporary holding key material is wiped before return.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <span>
#include <string_view>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/result.hpp"
#include "credprov/protocol/secret.hpp"

namespace credprov::crypto {

inline constexpr std::size_t kHashBytes = 64;        // SHA-512
inline constexpr std::size_t kSignPublicBytes = 32;  // Ed25519
inline constexpr std::size_t kSignSecretBytes = 64;
inline constexpr std::size_t kSignatureBytes = 64;
inline constexpr std::size_t kBoxPublicBytes = 32;   // X25519
inline constexpr std::size_t kBoxSecretBytes = 32;
inline constexpr std::size_t kAeadKeyBytes = 32;     // ChaCha20-Poly1305-IETF
inline constexpr std::size_t kAeadNonceBytes = 12;
inline constexpr std::size_t kAeadTagBytes = 16;

using Hash = ByteArray<kHashBytes>;
using SignPublicKey = ByteArray<kSignPublicBytes>;
using Signature = ByteArray<kSignatureBytes>;
using BoxPublicKey = ByteArray<kBoxPublicBytes>;

// Initialises libsodium once; every entry point of the library calls it.
void ensure_initialised();

void random_bytes(std::span<std::uint8_t> out);

[[nodiscard]] Hash sha512(ByteView data);
// SHA-512 over the concatenation of several parts.
[[nodiscard]] Hash sha512(std::initializer_list<ByteView> parts);

void hmac_sha512(ByteView key, ByteView data, std::span<std::uint8_t, 64> out);

// HKDF-SHA-512 (RFC 5869). prk is 64 bytes; expand writes at most 255*64 bytes.
void hkdf_extract(ByteView salt, ByteView ikm, std::span<std::uint8_t, 64> prk);
void hkdf_expand(std::span<const std::uint8_t, 64> prk, ByteView info, std::span<std::uint8_t> out);

// Ed25519 identity key pair: public half is public, secret half guarded.
struct SigningKey {
    SignPublicKey public_key{};
    Secret<kSignSecretBytes> secret_key;
};
[[nodiscard]] SigningKey generate_signing_key();
// Deterministic key from a 32-byte seed (tests and key files).
[[nodiscard]] SigningKey signing_key_from_seed(std::span<const std::uint8_t, 32> seed);

// Signs context || 0x00 || message: every signature in credprov is
// domain-separated by a context string (see PROTOCOL.md, "Signatures").
[[nodiscard]] Signature sign(const SigningKey& key, std::string_view context, ByteView message);
[[nodiscard]] Status verify(const SignPublicKey& key, std::string_view context, ByteView message,
                            const Signature& signature);

// X25519 key pair for sealing.
struct BoxKey {
    BoxPublicKey public_key{};
    Secret<kBoxSecretBytes> secret_key;
};
[[nodiscard]] BoxKey generate_box_key();
[[nodiscard]] BoxKey box_key_from_seed(std::span<const std::uint8_t, 32> seed);

// ChaCha20-Poly1305-IETF. ciphertext = encrypted plaintext || 16-byte tag.
[[nodiscard]] Bytes aead_encrypt(std::span<const std::uint8_t, kAeadKeyBytes> key,
                                 std::span<const std::uint8_t, kAeadNonceBytes> nonce, ByteView ad,
                                 ByteView plaintext);
[[nodiscard]] Result<SecretBytes> aead_decrypt(std::span<const std::uint8_t, kAeadKeyBytes> key,
                                               std::span<const std::uint8_t, kAeadNonceBytes> nonce,
                                               ByteView ad, ByteView ciphertext);

}  // namespace credprov::crypto
