// AES-128 block encryption via libcrypto (EVP, AES-128-ECB, no padding): the
// only place credprov_aka touches OpenSSL. Never logs the key or the blocks.
#include "aes128_block.hpp"

#include <new>

#include <openssl/evp.h>

namespace credprov::aka::detail {

Aes128Block::Aes128Block(ConstBlock key) : ctx_(EVP_CIPHER_CTX_new()) {
    if (ctx_ == nullptr) throw std::bad_alloc();
    // Initialisation fails only when libcrypto cannot allocate the key schedule.
    if (EVP_EncryptInit_ex(ctx_, EVP_aes_128_ecb(), nullptr, key.data(), nullptr) != 1 ||
        EVP_CIPHER_CTX_set_padding(ctx_, 0) != 1) {
        EVP_CIPHER_CTX_free(ctx_);
        throw std::bad_alloc();
    }
}

Aes128Block::~Aes128Block() { EVP_CIPHER_CTX_free(ctx_); }

void Aes128Block::encrypt(ConstBlock in, Block out) {
    // ECB without padding turns each full block into one output block at
    // once; nothing is buffered in the context between calls.
    int written = 0;
    if (EVP_EncryptUpdate(ctx_, out.data(), &written, in.data(), static_cast<int>(kBlockBytes)) != 1 ||
        written != static_cast<int>(kBlockBytes)) {
        throw std::bad_alloc();  // unreachable for a keyed ECB context
    }
}

}  // namespace credprov::aka::detail
