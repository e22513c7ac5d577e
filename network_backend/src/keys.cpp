// Key files: exclusive create, 0600, write-fsync-rename; passphrase
// protection with Argon2id (crypto_pwhash) and XChaCha20-Poly1305.
#include "credprov/backend/keys.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace credprov::backend {
namespace {
constexpr std::string_view kDataMagic = "CPD1";
constexpr std::size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr std::size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
}  // namespace
OperatorKeys OperatorIdentity::public_keys() const {
    OperatorKeys k;
    k.sign_key = sign.public_key;
    k.box_key = box.public_key;
    k.name = name;
    return k;
}

OperatorIdentity OperatorIdentity::from_seeds(const KeySeeds& seeds, std::string name) {
    OperatorIdentity id;
    id.sign = crypto::signing_key_from_seed(std::span<const std::uint8_t, 32>(seeds.sign.data(), 32));
    id.box = crypto::box_key_from_seed(std::span<const std::uint8_t, 32>(seeds.box.data(), 32));
    id.name = std::move(name);
    return id;
}

// ---- data key --------------------------------------------------------------------

Status DataKey::create(const std::filesystem::path& path) {
    ensure_sodium();
    SecretBytes blob(kDataMagic.size() + 32);
    std::memcpy(blob.data(), kDataMagic.data(), kDataMagic.size());
    randombytes_buf(blob.data() + kDataMagic.size(), 32);
    return write_file_atomically(path, blob.view(), 0600, true);
}

Result<DataKey> DataKey::load(const std::filesystem::path& path) {
    auto raw = read_small_file(path, 64, true);
    if (!raw) return raw.error();
    const ByteView b = raw->view();
    if (b.size() != kDataMagic.size() + 32 || !std::equal(kDataMagic.begin(), kDataMagic.end(), b.begin())) {
        return make_error(ErrorCode::malformed, path.string() + " is not a credprov data key file");
    }
    DataKey k;
    std::memcpy(k.key_.data(), b.data() + kDataMagic.size(), 32);
    return k;
}

DataKey DataKey::random() {
    ensure_sodium();
    DataKey k;
    randombytes_buf(k.key_.data(), 32);
    return k;
}

std::string DataKey::seal(const std::string& imsi, const SubscriberKeys& keys) const {
    SecretBytes plain(32);
    std::memcpy(plain.data(), keys.k.data(), 16);
    std::memcpy(plain.data() + 16, keys.opc.data(), 16);
    Bytes out(kNonceBytes + 32 + kTagBytes);
    randombytes_buf(out.data(), kNonceBytes);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + kNonceBytes, &clen, plain.data(), 32,
                                               reinterpret_cast<const unsigned char*>(imsi.data()), imsi.size(),
                                               nullptr, out.data(), key_.data());
    return to_hex(out);
}

Result<SubscriberKeys> DataKey::open(const std::string& imsi, const std::string& sealed_hex) const {
    SecretBytes plain(32);
    if (auto st = open_into(imsi, sealed_hex, plain); !st) return st.error();
    SubscriberKeys keys;
    std::memcpy(keys.k.data(), plain.data(), 16);
    std::memcpy(keys.opc.data(), plain.data() + 16, 16);
    return keys;
}

Result<aka::SubscriberKeys> DataKey::open_for_aka(const std::string& imsi, const std::string& sealed_hex) const {
    SecretBytes plain(32);
    if (auto st = open_into(imsi, sealed_hex, plain); !st) return st.error();
    return aka::SubscriberKeys::from_k_and_opc(aka::SubscriberKeys::KeyView(plain.data(), 16),
                                               aka::SubscriberKeys::KeyView(plain.data() + 16, 16));
}

std::string DataKey::id() const {
    static constexpr std::string_view kText = "credprov/v1 data-key id";
    std::array<unsigned char, 16> out{};
    crypto_generichash(out.data(), out.size(), reinterpret_cast<const unsigned char*>(kText.data()), kText.size(),
                       key_.data(), key_.size());
    return to_hex(ByteView(out.data(), out.size()));
}

Status DataKey::open_into(const std::string& imsi, const std::string& sealed_hex, SecretBytes& plain) const {
    Bytes in;
    if (!from_hex(sealed_hex, in) || in.size() != kNonceBytes + 32 + kTagBytes) {
        return make_error(ErrorCode::malformed, "stored subscriber keys are malformed");
    }
    unsigned long long plen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain.data(), &plen, nullptr, in.data() + kNonceBytes,
                                                   in.size() - kNonceBytes,
                                                   reinterpret_cast<const unsigned char*>(imsi.data()), imsi.size(),
                                                   in.data(), key_.data()) != 0) {
        return make_error(ErrorCode::auth_failed, "stored subscriber keys do not decrypt with this data key");
    }
    return {};
}

}  // namespace credprov::backend
