// Internal: AES-128 single-block encryption (the Milenage kernel E_K) over
// libcrypto's EVP AES-128-ECB without padding. This file must never implement
// AES itself. The key schedule lives in the EVP context, which
// EVP_CIPHER_CTX_free cleanses; the object is not copyable so that it cannot
// leave an unwiped copy behind.
#pragma once

#include <cstdint>
#include <span>

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;  // NOLINT: libcrypto's own name

namespace credprov::aka::detail {

inline constexpr std::size_t kBlockBytes = 16;
using Block = std::span<std::uint8_t, kBlockBytes>;
using ConstBlock = std::span<const std::uint8_t, kBlockBytes>;

class Aes128Block {
public:
    // Throws std::bad_alloc when libcrypto cannot allocate or key the context.
    explicit Aes128Block(ConstBlock key);
    ~Aes128Block();
    Aes128Block(const Aes128Block&) = delete;
    Aes128Block& operator=(const Aes128Block&) = delete;
    Aes128Block(Aes128Block&&) = delete;
    Aes128Block& operator=(Aes128Block&&) = delete;

    // out = E_K(in); in and out may be the same block.
    void encrypt(ConstBlock in, Block out);

private:
    EVP_CIPHER_CTX* ctx_;
};

}  // namespace credprov::aka::detail
