// Key files and atomic small files (see key_file.hpp).
#include "credprov/common/key_file.hpp"

#include <fcntl.h>
#include <sodium.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "credprov/protocol/crypto.hpp"

namespace credprov {

namespace {

constexpr std::string_view kKeyMagic = "CPK1";
constexpr std::uint8_t kPlain = 0;
constexpr std::uint8_t kProtected = 1;
constexpr std::size_t kSaltBytes = crypto_pwhash_SALTBYTES;
constexpr std::size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr std::size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;

Error file_error(std::string_view what, const std::filesystem::path& path) {
    return make_error(ErrorCode::storage, std::string(what) + " " + path.string() + ": " + std::strerror(errno));
}

void put_u64(Bytes& out, std::uint64_t v) {
    for (int i = 7; i >= 0; --i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}
std::uint64_t get_u64(const std::uint8_t* p) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | p[i];
    return v;
}

// Atomic create: temp file (O_EXCL, mode), write, fsync, rename, fsync dir.
// `exclusive` refuses to replace an existing `path`.
}  // namespace

Status write_file_atomically(const std::filesystem::path& path, ByteView data, mode_t mode, bool exclusive) {
    if (exclusive && std::filesystem::exists(path)) {
        return make_error(ErrorCode::storage, "refusing to overwrite existing file " + path.string());
    }
    const auto tmp = path.string() + ".tmp";
    ::unlink(tmp.c_str());
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) return file_error("cannot create", tmp);
    std::size_t done = 0;
    while (done < data.size()) {
        const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
        if (n < 0) {
            if (errno == EINTR) continue;
            auto e = file_error("cannot write", tmp);
            ::close(fd);
            ::unlink(tmp.c_str());
            return e;
        }
        done += static_cast<std::size_t>(n);
    }
    if (::fchmod(fd, mode) != 0 || ::fsync(fd) != 0) {
        auto e = file_error("cannot sync", tmp);
        ::close(fd);
        ::unlink(tmp.c_str());
        return e;
    }
    ::close(fd);
    if (exclusive) {
        // link() fails if the target appeared meanwhile: never replace a key.
        if (::link(tmp.c_str(), path.c_str()) != 0) {
            auto e = file_error("cannot create", path);
            ::unlink(tmp.c_str());
            return e;
        }
        ::unlink(tmp.c_str());
    } else if (::rename(tmp.c_str(), path.c_str()) != 0) {
        auto e = file_error("cannot rename onto", path);
        ::unlink(tmp.c_str());
        return e;
    }
    const auto dir = path.has_parent_path() ? path.parent_path() : std::filesystem::path(".");
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)::fsync(dfd);
        ::close(dfd);
    }
    return {};
}

// Reads a whole file of at most `max` bytes into wiped memory. For secret
// files (`secret`), refuses any group or other permission bit.
Result<SecretBytes> read_small_file(const std::filesystem::path& path, std::size_t max, bool secret) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) return file_error("cannot open", path);
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        return make_error(ErrorCode::storage, path.string() + " is not a regular file");
    }
    if (secret && (st.st_mode & 077) != 0) {
        ::close(fd);
        return make_error(ErrorCode::storage, path.string() + " is readable by group or others; chmod 600 it");
    }
    if (static_cast<std::size_t>(st.st_size) > max) {
        ::close(fd);
        return make_error(ErrorCode::oversized, path.string() + " is larger than expected");
    }
    SecretBytes out(static_cast<std::size_t>(st.st_size));
    std::size_t done = 0;
    while (done < out.size()) {
        const ssize_t n = ::read(fd, out.data() + done, out.size() - done);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) {
            auto e = file_error("cannot read", path);
            ::close(fd);
            return e;
        }
        done += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return out;
}

KeySeeds KeySeeds::random() {
    KeySeeds s;
    crypto::random_bytes({s.sign.data(), 32});
    crypto::random_bytes({s.box.data(), 32});
    return s;
}

Status write_key_file(const std::filesystem::path& path, const KeySeeds& seeds, std::string_view passphrase) {
    ensure_sodium();
    SecretBytes plain(64);
    std::memcpy(plain.data(), seeds.sign.data(), 32);
    std::memcpy(plain.data() + 32, seeds.box.data(), 32);
    Bytes out(kKeyMagic.begin(), kKeyMagic.end());
    if (passphrase.empty()) {
        out.push_back(kPlain);
        out.insert(out.end(), plain.view().begin(), plain.view().end());
    } else {
        out.push_back(kProtected);
        ByteArray<kSaltBytes> salt{};
        randombytes_buf(salt.data(), salt.size());
        const std::uint64_t ops = crypto_pwhash_OPSLIMIT_MODERATE;
        const std::uint64_t mem = crypto_pwhash_MEMLIMIT_MODERATE;
        Secret<32> kek;
        if (crypto_pwhash(kek.data(), 32, passphrase.data(), passphrase.size(), salt.data(), ops,
                          static_cast<std::size_t>(mem), crypto_pwhash_ALG_ARGON2ID13) != 0) {
            return make_error(ErrorCode::crypto, "not enough memory to derive the key-file key");
        }
        ByteArray<kNonceBytes> nonce{};
        randombytes_buf(nonce.data(), nonce.size());
        out.insert(out.end(), salt.begin(), salt.end());
        put_u64(out, ops);
        put_u64(out, mem);
        out.insert(out.end(), nonce.begin(), nonce.end());
        const std::size_t at = out.size();
        out.resize(at + plain.size() + kTagBytes);
        unsigned long long clen = 0;
        crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + at, &clen, plain.data(), plain.size(),
                                                   reinterpret_cast<const unsigned char*>(kKeyMagic.data()),
                                                   kKeyMagic.size(), nullptr, nonce.data(), kek.data());
    }
    auto st = write_file_atomically(path, out, 0600, true);
    sodium_memzero(out.data(), out.size());
    return st;
}

Result<KeySeeds> read_key_file(const std::filesystem::path& path, std::string_view passphrase) {
    auto raw = read_small_file(path, 512, true);
    if (!raw) return raw.error();
    const ByteView b = raw->view();
    if (b.size() < 5 || !std::equal(kKeyMagic.begin(), kKeyMagic.end(), b.begin())) {
        return make_error(ErrorCode::malformed, path.string() + " is not a credprov key file");
    }
    KeySeeds seeds;
    if (b[4] == kPlain) {
        if (b.size() != 5 + 64) return make_error(ErrorCode::malformed, path.string() + " has the wrong size");
        std::memcpy(seeds.sign.data(), b.data() + 5, 32);
        std::memcpy(seeds.box.data(), b.data() + 37, 32);
        return seeds;
    }
    if (b[4] != kProtected || b.size() != 5 + kSaltBytes + 16 + kNonceBytes + 64 + kTagBytes) {
        return make_error(ErrorCode::malformed, path.string() + " is not a credprov key file");
    }
    if (passphrase.empty()) {
        return make_error(ErrorCode::auth_failed, path.string() + " is passphrase-protected; give the passphrase");
    }
    const std::uint8_t* p = b.data() + 5;
    const std::uint8_t* salt = p;
    const std::uint64_t ops = get_u64(p + kSaltBytes);
    const std::uint64_t mem = get_u64(p + kSaltBytes + 8);
    const std::uint8_t* nonce = p + kSaltBytes + 16;
    const std::uint8_t* ct = nonce + kNonceBytes;
    if (ops > crypto_pwhash_OPSLIMIT_SENSITIVE || mem > crypto_pwhash_MEMLIMIT_SENSITIVE ||
        ops < crypto_pwhash_OPSLIMIT_MIN || mem < crypto_pwhash_MEMLIMIT_MIN) {
        return make_error(ErrorCode::malformed, path.string() + " has out-of-range key derivation limits");
    }
    Secret<32> kek;
    if (crypto_pwhash(kek.data(), 32, passphrase.data(), passphrase.size(), salt, ops, static_cast<std::size_t>(mem),
                      crypto_pwhash_ALG_ARGON2ID13) != 0) {
        return make_error(ErrorCode::crypto, "not enough memory to derive the key-file key");
    }
    SecretBytes plain(64);
    unsigned long long plen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain.data(), &plen, nullptr, ct, 64 + kTagBytes,
                                                   reinterpret_cast<const unsigned char*>(kKeyMagic.data()),
                                                   kKeyMagic.size(), nonce, kek.data()) != 0) {
        return make_error(ErrorCode::auth_failed, "wrong passphrase for " + path.string());
    }
    std::memcpy(seeds.sign.data(), plain.data(), 32);
    std::memcpy(seeds.box.data(), plain.data() + 32, 32);
    return seeds;
}

Status write_public_file(const std::filesystem::path& path, std::string_view content) {
    return write_file_atomically(path, as_bytes(content), 0644, false);
}

Result<std::string> read_text_file(const std::filesystem::path& path, std::size_t max_bytes) {
    auto raw = read_small_file(path, max_bytes, false);
    if (!raw) return raw.error();
    return std::string(raw->view().begin(), raw->view().end());
}


}  // namespace credprov
