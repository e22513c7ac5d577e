// The protected store: encrypt-then-replace of the agent's state file, its
// verification at open, and the POSIX file system underneath.
//
// Never writes the data key, the plaintext or any part of the state into an
// error message or a log; never modifies or deletes a file while refusing it.
// The plaintext only lives in SecretBytes, the data key in a Secret<32>.
#include "credprov/agent/store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <system_error>
#include <utility>

#include <sodium.h>

#include "credprov/protocol/crypto.hpp"

namespace credprov::agent {

namespace fs = std::filesystem;

namespace {

// ---- file format (STORE.md) ---------------------------------------------------

constexpr std::array<std::uint8_t, 4> kMagic{'C', 'P', 'A', 'S'};
constexpr std::uint8_t kFormatVersion = 1;
constexpr std::size_t kKeyIdBytes = 16;
constexpr std::size_t kNonceBytes = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
constexpr std::size_t kTagBytes = crypto_aead_xchacha20poly1305_ietf_ABYTES;
static_assert(kNonceBytes == 24 && kTagBytes == 16);

constexpr std::size_t kOffVersion = kMagic.size();
constexpr std::size_t kOffKeyId = kOffVersion + 1;
constexpr std::size_t kOffGeneration = kOffKeyId + kKeyIdBytes;
constexpr std::size_t kOffNonce = kOffGeneration + 8;
constexpr std::size_t kHeaderBytes = kOffNonce + kNonceBytes;  // 53
constexpr std::size_t kMinFileBytes = kHeaderBytes + 1 + kTagBytes;
constexpr std::size_t kMaxFileBytes = kHeaderBytes + kMaxStateBytes + kTagBytes;

constexpr std::string_view kKeyIdContext = "credprov/v1 store-key-id";

using KeyId = ByteArray<kKeyIdBytes>;

// Names the key without revealing it: a keyed BLAKE2b of a constant.
KeyId key_id(const Secret<Store::kKeyBytes>& key) {
    KeyId id{};
    crypto_generichash(id.data(), id.size(), reinterpret_cast<const unsigned char*>(kKeyIdContext.data()),
                       kKeyIdContext.size(), key.data(), key.size());
    return id;
}

void put_u64(std::uint8_t* out, std::uint64_t v) {
    for (int i = 7; i >= 0; --i) {
        out[i] = static_cast<std::uint8_t>(v & 0xff);
        v >>= 8;
    }
}

std::uint64_t get_u64(const std::uint8_t* in) {
    std::uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = (v << 8) | in[i];
    return v;
}

std::string quoted(const fs::path& p) { return "'" + p.string() + "'"; }

std::string octal_mode(std::uint32_t mode) {
    std::array<char, 8> buf{};
    std::snprintf(buf.data(), buf.size(), "%04o", static_cast<unsigned>(mode & 07777));
    return buf.data();
}

fs::path parent_dir(const fs::path& p) {
    const fs::path parent = p.parent_path();
    return parent.empty() ? fs::path(".") : parent;
}

Error with_context(const Error& e, std::string_view context) {
    return make_error(e.code, std::string(context) + ": " + e.message);
}

// Encodes and decodes `state` once: a state that would not load must never
// replace one that does.
Result<SecretBytes> encode_checked(const AgentState& state) {
    SecretBytes plain = encode_state(state);
    if (plain.size() > kMaxStateBytes) {
        return make_error(ErrorCode::oversized, "refusing to store a state larger than " +
                                                    std::to_string(kMaxStateBytes) + " bytes");
    }
    if (auto back = decode_state(plain.view()); !back) {
        return make_error(back.error().code, "refusing to store a state that would not load: " + back.error().message);
    }
    return plain;
}

struct Loaded {
    std::uint64_t generation{0};
    AgentState state;
};

// Reads, authenticates and decodes a store file. Read-only.
Result<Loaded> load(FileSystem& files, const fs::path& file, const fs::path& key_file,
                    const Secret<Store::kKeyBytes>& key) {
    Bytes raw(kMaxFileBytes);
    auto st = files.read(file, raw);
    if (!st) return st.error();
    if (!st->regular) return make_error(ErrorCode::malformed, "store " + quoted(file) + " is not a regular file");
    if (st->size > kMaxFileBytes) {
        return make_error(ErrorCode::malformed, "store " + quoted(file) + " is " + std::to_string(st->size) +
                                                    " bytes, larger than any store: refusing it, file left as it is");
    }
    raw.resize(static_cast<std::size_t>(st->size));
    if (raw.size() < kMinFileBytes) {
        return make_error(ErrorCode::malformed, "store " + quoted(file) + " is truncated (" +
                                                    std::to_string(raw.size()) +
                                                    " bytes): refusing it, file left as it is");
    }
    if (!std::equal(kMagic.begin(), kMagic.end(), raw.begin())) {
        return make_error(ErrorCode::malformed,
                          quoted(file) + " is not a credprov agent store (bad magic): refusing it, file left as it is");
    }
    if (raw[kOffVersion] != kFormatVersion) {
        return make_error(ErrorCode::unsupported_version,
                          "store " + quoted(file) + " has format version " + std::to_string(raw[kOffVersion]) +
                              ", this agent reads version " + std::to_string(kFormatVersion) +
                              ": refusing it, file left as it is");
    }
    const KeyId expected = key_id(key);
    if (!ct_equal(ByteView(raw).subspan(kOffKeyId, kKeyIdBytes), expected)) {
        return make_error(ErrorCode::auth_failed,
                          "store " + quoted(file) + " was not written with key file " + quoted(key_file) +
                              " (a store from another device, or a replaced key file): refusing it, both files "
                              "left as they are");
    }
    const std::uint64_t generation = get_u64(raw.data() + kOffGeneration);
    SecretBytes plain(raw.size() - kHeaderBytes - kTagBytes);
    unsigned long long plain_len = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain.data(), &plain_len, nullptr, raw.data() + kHeaderBytes,
                                                   raw.size() - kHeaderBytes, raw.data(), kHeaderBytes,
                                                   raw.data() + kOffNonce, key.data()) != 0) {
        return make_error(ErrorCode::auth_failed, "store " + quoted(file) +
                                                      " failed authentication (modified, truncated, extended or "
                                                      "corrupted): refusing it, file left as it is");
    }
    auto state = decode_state(plain.view());
    if (!state) {
        return make_error(ErrorCode::malformed, "store " + quoted(file) + " is authentic but does not decode (" +
                                                    state.error().message + "): refusing it, file left as it is");
    }
    return Loaded{generation, std::move(*state)};
}

// Reads the data key, refusing a key file others could read or replace.
Status read_key(FileSystem& files, const fs::path& key_file, const fs::path& store_file,
                Secret<Store::kKeyBytes>& key) {
    auto pre = files.status(key_file);
    if (!pre) return pre.error();
    if (!pre->exists) {
        return make_error(ErrorCode::storage, "key file " + quoted(key_file) + " does not exist; the store " +
                                                  quoted(store_file) + " cannot be opened without it");
    }
    auto st = files.read(key_file, key.span());
    if (!st) return st.error();
    if (!st->regular) {
        key.wipe();
        return make_error(ErrorCode::storage, "key file " + quoted(key_file) + " is not a regular file");
    }
    if ((st->mode & 077) != 0) {
        key.wipe();
        return make_error(ErrorCode::storage, "key file " + quoted(key_file) + " has mode " + octal_mode(st->mode) +
                                                  ": it must not be accessible to group or others; refusing it "
                                                  "(chmod 600 it if it was never exposed, otherwise re-initialise)");
    }
    if (st->size != Store::kKeyBytes) {
        key.wipe();
        return make_error(ErrorCode::malformed, "key file " + quoted(key_file) + " is " + std::to_string(st->size) +
                                                    " bytes, a store key is " + std::to_string(Store::kKeyBytes));
    }
    return {};
}

// ---- POSIX file system ------------------------------------------------------------

Error sys_error(std::string_view what, const fs::path& path, int err) {
    return make_error(ErrorCode::storage,
                      std::string(what) + " " + quoted(path) + ": " + std::generic_category().message(err));
}

Error sys_error_fd(std::string_view what, int err) {
    return make_error(ErrorCode::storage, std::string(what) + ": " + std::generic_category().message(err));
}

FileStatus to_status(const struct stat& s) {
    FileStatus f;
    f.exists = true;
    f.regular = S_ISREG(s.st_mode);
    f.directory = S_ISDIR(s.st_mode);
    f.mode = static_cast<std::uint32_t>(s.st_mode & 07777);
    f.size = s.st_size < 0 ? 0 : static_cast<std::uint64_t>(s.st_size);
    return f;
}

class PosixFileSystem final : public FileSystem {
public:
    Result<FileHandle> create_exclusive(const fs::path& path, std::uint32_t mode) override {
        const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
                              static_cast<mode_t>(mode));
        if (fd < 0) return sys_error("cannot create", path, errno);
        return FileHandle{fd};
    }

    Status write_all(FileHandle file, ByteView data) override {
        std::size_t done = 0;
        while (done < data.size()) {
            const ssize_t n = ::write(file.fd, data.data() + done, data.size() - done);
            if (n < 0) {
                if (errno == EINTR) continue;
                return sys_error_fd("write failed", errno);
            }
            done += static_cast<std::size_t>(n);
        }
        return {};
    }

    Status sync(FileHandle file) override {
        if (::fsync(file.fd) != 0) return sys_error_fd("fsync failed", errno);
        return {};
    }

    Status close(FileHandle file) override {
        // Never retried: on Linux the descriptor is gone even on EINTR.
        if (::close(file.fd) != 0) return sys_error_fd("close failed", errno);
        return {};
    }

    Status rename(const fs::path& from, const fs::path& to) override {
        if (::rename(from.c_str(), to.c_str()) != 0) return sys_error("cannot rename to", to, errno);
        return {};
    }

    Status sync_dir(const fs::path& dir) override {
        const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) return sys_error("cannot open directory", dir, errno);
        const int rc = ::fsync(fd);
        const int err = errno;
        ::close(fd);
        if (rc != 0) return sys_error("fsync failed on directory", dir, err);
        return {};
    }

    Status remove(const fs::path& path) override {
        if (::unlink(path.c_str()) != 0) return sys_error("cannot remove", path, errno);
        return {};
    }

    Result<FileStatus> status(const fs::path& path) override {
        struct stat s {};
        if (::lstat(path.c_str(), &s) != 0) {
            if (errno == ENOENT) return FileStatus{};
            return sys_error("cannot stat", path, errno);
        }
        return to_status(s);
    }

    Result<FileStatus> read(const fs::path& path, std::span<std::uint8_t> out) override {
        const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) return sys_error("cannot open", path, errno);
        struct stat s {};
        if (::fstat(fd, &s) != 0) {
            const int err = errno;
            ::close(fd);
            return sys_error("cannot stat", path, err);
        }
        const FileStatus st = to_status(s);
        if (!st.regular) {
            ::close(fd);
            return st;
        }
        const std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(st.size, out.size()));
        std::size_t done = 0;
        while (done < want) {
            const ssize_t n = ::read(fd, out.data() + done, want - done);
            if (n < 0) {
                if (errno == EINTR) continue;
                const int err = errno;
                ::close(fd);
                return sys_error("cannot read", path, err);
            }
            if (n == 0) break;
            done += static_cast<std::size_t>(n);
        }
        ::close(fd);
        if (done != want) return make_error(ErrorCode::storage, quoted(path) + " changed while being read");
        return st;
    }

    Result<std::vector<std::string>> list(const fs::path& dir) override {
        std::error_code ec;
        std::vector<std::string> names;
        for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
            names.push_back(it->path().filename().string());
        }
        if (ec) return sys_error("cannot list", dir, ec.value());
        return names;
    }
};

class NoCounter final : public MonotonicCounter {
public:
    Result<std::optional<std::uint64_t>> read() override { return std::optional<std::uint64_t>{}; }
    Status advance_to(std::uint64_t) override { return {}; }
};

}  // namespace

FileSystem& real_fs() {
    static PosixFileSystem instance;
    return instance;
}

MonotonicCounter& no_counter() {
    static NoCounter instance;
    return instance;
}

// ---- Store ----------------------------------------------------------------------

Store::Store(FileSystem& files, MonotonicCounter& counter, fs::path dir, fs::path key_file, Secret<kKeyBytes> key,
             std::uint64_t generation, AgentState state)
    : fs_(&files),
      counter_(&counter),
      dir_(std::move(dir)),
      file_(file_path(dir_)),
      key_file_(std::move(key_file)),
      key_(std::move(key)),
      generation_(generation),
      state_(std::move(state)) {}

fs::path Store::file_path(const fs::path& state_dir) { return state_dir / kFileName; }

Result<bool> Store::exists(const fs::path& state_dir, FileSystem& files) {
    auto st = files.status(file_path(state_dir));
    if (!st) return st.error();
    return st->exists;
}

Result<Store> Store::create(const fs::path& state_dir, const fs::path& key_file, const AgentState& initial,
                            FileSystem& files, MonotonicCounter& counter) {
    crypto::ensure_initialised();
    const fs::path file = file_path(state_dir);
    auto dir_st = files.status(state_dir);
    if (!dir_st) return dir_st.error();
    if (!dir_st->directory) {
        return make_error(ErrorCode::storage, "state directory " + quoted(state_dir) + " does not exist");
    }
    auto file_st = files.status(file);
    if (!file_st) return file_st.error();
    if (file_st->exists) {
        return make_error(ErrorCode::already_provisioned,
                          "a store already exists at " + quoted(file) + "; refusing to create another");
    }
    auto key_st = files.status(key_file);
    if (!key_st) return key_st.error();
    if (key_st->exists) {
        return make_error(ErrorCode::already_provisioned,
                          "key file " + quoted(key_file) + " exists but there is no store " + quoted(file) +
                              " (an interrupted factory-init or a removed store); remove the key file to "
                              "initialise again");
    }
    if (auto plain = encode_checked(initial); !plain) return plain.error();
    auto counted = counter.read();
    if (!counted) return with_context(counted.error(), "monotonic counter");
    const std::uint64_t generation = counted->has_value() ? **counted + 1 : 1;

    Secret<kKeyBytes> key;
    crypto::random_bytes(key.span());

    auto handle = files.create_exclusive(key_file, 0600);
    if (!handle) return handle.error();
    Status written = files.write_all(*handle, key.span());
    if (written) written = files.sync(*handle);
    if (written) {
        written = files.close(*handle);
    } else {
        (void)files.close(*handle);
    }
    if (written) written = files.sync_dir(parent_dir(key_file));
    if (!written) {
        (void)files.remove(key_file);  // ours, never used: nothing to keep
        return with_context(written.error(), "writing key file " + quoted(key_file));
    }

    Store store(files, counter, state_dir, key_file, std::move(key), 0, AgentState{});
    if (auto s = store.write_generation(initial, generation); !s) {
        if (!store.broken_) {
            // The store file was never renamed into place: undo the key too,
            // so that factory-init can simply run again.
            (void)files.remove(key_file);
            (void)files.sync_dir(parent_dir(key_file));
        }
        return s.error();
    }
    store.generation_ = generation;
    store.state_ = initial.clone();
    return store;
}

Result<Store> Store::open(const fs::path& state_dir, const fs::path& key_file, FileSystem& files,
                          MonotonicCounter& counter) {
    crypto::ensure_initialised();
    const fs::path file = file_path(state_dir);
    auto file_st = files.status(file);
    if (!file_st) return file_st.error();
    if (!file_st->exists) {
        return make_error(ErrorCode::not_provisioned,
                          "no store at " + quoted(file) + ": the device is not initialised (factory-init)");
    }
    Secret<kKeyBytes> key;
    if (auto s = read_key(files, key_file, file, key); !s) return s.error();
    auto loaded = load(files, file, key_file, key);
    if (!loaded) return loaded.error();
    auto counted = counter.read();
    if (!counted) return with_context(counted.error(), "monotonic counter");
    if (counted->has_value() && loaded->generation < **counted) {
        return make_error(ErrorCode::replay, "store " + quoted(file) + " is generation " +
                                                 std::to_string(loaded->generation) +
                                                 " but the monotonic counter is at " + std::to_string(**counted) +
                                                 ": an older copy was restored (rollback); refusing it, file left "
                                                 "as it is");
    }
    return Store(files, counter, state_dir, key_file, std::move(key), loaded->generation, std::move(loaded->state));
}

Status Store::commit(const AgentState& next) {
    if (broken_) {
        return make_error(ErrorCode::storage, "store " + quoted(file_) +
                                                  " is in an unknown state after a failed commit; reopen it");
    }
    const std::uint64_t generation = generation_ + 1;
    if (auto s = write_generation(next, generation); !s) return s;
    generation_ = generation;
    state_ = next.clone();
    return {};
}

Status Store::verify_file() const {
    auto loaded = load(*fs_, file_, key_file_, key_);
    if (!loaded) return loaded.error();
    if (loaded->generation != generation_) {
        return make_error(ErrorCode::replay, "store " + quoted(file_) + " is generation " +
                                                 std::to_string(loaded->generation) + ", expected " +
                                                 std::to_string(generation_) + ": replaced behind the agent's back");
    }
    return {};
}

Status Store::write_generation(const AgentState& next, std::uint64_t generation) {
    auto plain = encode_checked(next);
    if (!plain) return plain.error();

    // Temporary files are only ever left by a crash; their content is
    // encrypted, and the store file is never one of them.
    if (auto names = fs_->list(dir_)) {
        for (const auto& name : *names) {
            if (name.starts_with(kTempPrefix)) (void)fs_->remove(dir_ / name);
        }
    }

    Bytes out(kHeaderBytes + plain->size() + kTagBytes);
    std::copy(kMagic.begin(), kMagic.end(), out.begin());
    out[kOffVersion] = kFormatVersion;
    const KeyId id = key_id(key_);
    std::copy(id.begin(), id.end(), out.begin() + kOffKeyId);
    put_u64(out.data() + kOffGeneration, generation);
    crypto::random_bytes(std::span<std::uint8_t>(out.data() + kOffNonce, kNonceBytes));
    unsigned long long cipher_len = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(out.data() + kHeaderBytes, &cipher_len, plain->data(), plain->size(),
                                               out.data(), kHeaderBytes, nullptr, out.data() + kOffNonce,
                                               key_.data());
    out.resize(kHeaderBytes + static_cast<std::size_t>(cipher_len));
    plain->wipe();

    ByteArray<8> suffix{};
    crypto::random_bytes(suffix);
    const fs::path temp = dir_ / (std::string(kTempPrefix) + to_hex(suffix));

    auto handle = fs_->create_exclusive(temp, 0600);
    if (!handle) return with_context(handle.error(), "store commit");
    Status written = fs_->write_all(*handle, out);
    if (written) written = fs_->sync(*handle);
    if (written) {
        written = fs_->close(*handle);
    } else {
        (void)fs_->close(*handle);
    }
    if (written) written = fs_->rename(temp, file_);
    if (!written) {
        (void)fs_->remove(temp);
        return with_context(written.error(), "store commit (old state kept)");
    }
    // The rename happened: from here on a failure leaves either state on disk.
    if (auto s = fs_->sync_dir(dir_); !s) {
        broken_ = true;
        return with_context(s.error(), "store commit (durability unknown)");
    }
    if (auto s = counter_->advance_to(generation); !s) {
        broken_ = true;
        return with_context(s.error(), "store commit: monotonic counter");
    }
    return {};
}

}  // namespace credprov::agent
