// The agent's protected store: one AgentState, encrypted and authenticated
// at rest (XChaCha20-Poly1305-IETF under a 32-byte data key kept in its own
// 0600 key file), replaced atomically and durably on every commit.
//
// File format, crash and tamper behaviour and the rollback limit are in
// target_agent/STORE.md. Rules this code keeps:
//   - a power cut at any instant leaves the old or the new state;
//   - a store that fails any check is refused, and nothing on disk is
//     changed or deleted when it is (the evidence is kept);
//   - error messages name files and causes, never key material or state.
// All file access goes through FileSystem so tests can inject crashes.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "credprov/agent/agent_state.hpp"
#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/result.hpp"
#include "credprov/protocol/secret.hpp"

namespace credprov::agent {

// ---- file system ----------------------------------------------------------------

struct FileHandle {
    int fd{-1};
};

struct FileStatus {
    bool exists{false};
    bool regular{false};       // a regular file (symlinks are not followed)
    bool directory{false};
    std::uint32_t mode{0};     // permission bits (st_mode & 07777)
    std::uint64_t size{0};
};

// The operations the store performs, one call per durable step. Every
// mutating call is a point where a test may simulate a crash. Errors carry
// ErrorCode::storage and name the path and the system's reason.
class FileSystem {
public:
    virtual ~FileSystem() = default;
    // Creates `path` for writing; fails if it exists (O_EXCL, no symlink follow).
    [[nodiscard]] virtual Result<FileHandle> create_exclusive(const std::filesystem::path& path,
                                                              std::uint32_t mode) = 0;
    [[nodiscard]] virtual Status write_all(FileHandle file, ByteView data) = 0;
    [[nodiscard]] virtual Status sync(FileHandle file) = 0;
    [[nodiscard]] virtual Status close(FileHandle file) = 0;
    [[nodiscard]] virtual Status rename(const std::filesystem::path& from, const std::filesystem::path& to) = 0;
    [[nodiscard]] virtual Status sync_dir(const std::filesystem::path& dir) = 0;
    [[nodiscard]] virtual Status remove(const std::filesystem::path& path) = 0;
    // lstat: exists == false (and no error) when the path does not exist.
    [[nodiscard]] virtual Result<FileStatus> status(const std::filesystem::path& path) = 0;
    // Reads the first min(size, out.size()) bytes of a regular file into
    // `out` (which may be secret memory) and returns the status taken from
    // the same open descriptor, so mode and content belong to one file.
    [[nodiscard]] virtual Result<FileStatus> read(const std::filesystem::path& path, std::span<std::uint8_t> out) = 0;
    // Names of the entries of a directory (without "." and "..").
    [[nodiscard]] virtual Result<std::vector<std::string>> list(const std::filesystem::path& dir) = 0;
};

// POSIX implementation (open/write/fsync/rename/unlink).
[[nodiscard]] FileSystem& real_fs();

// ---- rollback protection --------------------------------------------------------

// A hardware monotonic counter (TPM NV counter, eMMC RPMB, secure element).
// With one, open() refuses a store older than the counter: a restored
// snapshot. Without one (no_counter()), rollback cannot be detected.
class MonotonicCounter {
public:
    virtual ~MonotonicCounter() = default;
    // The counter's value, or nullopt when there is no counter.
    [[nodiscard]] virtual Result<std::optional<std::uint64_t>> read() = 0;
    // Raises the counter to `value`; never lowers it.
    [[nodiscard]] virtual Status advance_to(std::uint64_t value) = 0;
};

// No hardware counter: read() is nullopt, advance_to() does nothing.
[[nodiscard]] MonotonicCounter& no_counter();

// ---- the store ------------------------------------------------------------------

class Store {
public:
    static constexpr std::string_view kFileName = "agent.store";
    static constexpr std::string_view kTempPrefix = "agent.store.tmp-";
    static constexpr std::size_t kKeyBytes = 32;

    // Factory-init: a new random data key in `key_file` (0600, created
    // exclusively, fsync'd) and `initial` as generation 1 (or one above the
    // monotonic counter) in <state_dir>/agent.store. state_dir must exist.
    // ErrorCode::already_provisioned if the store file or the key file
    // exists; nothing existing is touched.
    [[nodiscard]] static Result<Store> create(const std::filesystem::path& state_dir,
                                              const std::filesystem::path& key_file, const AgentState& initial,
                                              FileSystem& fs = real_fs(), MonotonicCounter& counter = no_counter());

    // Verifies and loads the store. Refusals (nothing is modified):
    //   not_provisioned      no store file in state_dir (first start)
    //   storage              key file missing, unreadable, not a regular file,
    //                        or accessible to group/others; file system errors
    //   malformed            key file of the wrong size; store file truncated,
    //                        oversized, bad magic, or content that does not decode
    //   unsupported_version  store format version not known
    //   auth_failed          written with another key (another device's store
    //                        or a replaced key file), or modified (AEAD fails)
    //   replay               older than the monotonic counter (a rollback)
    [[nodiscard]] static Result<Store> open(const std::filesystem::path& state_dir,
                                            const std::filesystem::path& key_file, FileSystem& fs = real_fs(),
                                            MonotonicCounter& counter = no_counter());

    // Whether <state_dir>/agent.store exists (the daemon's first-start test).
    [[nodiscard]] static Result<bool> exists(const std::filesystem::path& state_dir, FileSystem& fs = real_fs());
    [[nodiscard]] static std::filesystem::path file_path(const std::filesystem::path& state_dir);

    [[nodiscard]] const AgentState& state() const noexcept { return state_; }
    [[nodiscard]] std::uint64_t generation() const noexcept { return generation_; }
    [[nodiscard]] const std::filesystem::path& file() const noexcept { return file_; }

    // Atomically and durably replaces the stored state with `next`: removes
    // leftover temporary files, writes a temporary file in the state
    // directory, fsyncs it, renames it over the store, fsyncs the directory,
    // advances the counter. Returns only once the new state is durable; on
    // an error the in-memory state stays the old one. A failure after the
    // rename leaves the disk holding either state: the store then refuses
    // further commits (ErrorCode::storage) and must be reopened.
    // Refuses (ErrorCode::malformed / oversized) a state that would not load.
    [[nodiscard]] Status commit(const AgentState& next);

    // Re-reads the file and checks it is this store's current generation
    // and decrypts (the "store check" diagnostic). Changes nothing.
    [[nodiscard]] Status verify_file() const;

    Store(Store&&) noexcept = default;
    Store& operator=(Store&&) noexcept = default;
    Store(const Store&) = delete;
    Store& operator=(const Store&) = delete;
    ~Store() = default;

private:
    Store(FileSystem& fs, MonotonicCounter& counter, std::filesystem::path dir, std::filesystem::path key_file,
          Secret<kKeyBytes> key, std::uint64_t generation, AgentState state);
    [[nodiscard]] Status write_generation(const AgentState& next, std::uint64_t generation);

    FileSystem* fs_;
    MonotonicCounter* counter_;
    std::filesystem::path dir_;
    std::filesystem::path file_;
    std::filesystem::path key_file_;
    Secret<kKeyBytes> key_;
    std::uint64_t generation_{0};
    AgentState state_;
    bool broken_{false};  // a commit failed after its rename: disk state unknown
};

}  // namespace credprov::agent
