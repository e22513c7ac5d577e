// Key files and small public files on disk, shared by the backend (operator
// and root keys) and the provisioner (its identity key).
//
// Key files are created 0600 with O_EXCL, written to a temporary name,
// fsynced and linked into place (never replacing an existing key); opening
// one refuses group/other permissions. A key file may be passphrase-protected
// (Argon2id + XChaCha20-Poly1305). Nothing here logs, and no error message
// carries key bytes or passphrases.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <string_view>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/result.hpp"
#include "credprov/protocol/secret.hpp"

namespace credprov {

// Seeds of one key pair (sign seed || box seed); a root or a provisioner
// uses only the first.
struct KeySeeds {
    Secret<32> sign;
    Secret<32> box;
    [[nodiscard]] static KeySeeds random();
};

// Writes a new key file; fails if `path` exists. An empty passphrase writes
// it unencrypted (still 0600).
[[nodiscard]] Status write_key_file(const std::filesystem::path& path, const KeySeeds& seeds,
                                    std::string_view passphrase = {});
[[nodiscard]] Result<KeySeeds> read_key_file(const std::filesystem::path& path, std::string_view passphrase = {});
// Writes a small non-secret file atomically (certificates, public keys, settings).
[[nodiscard]] Status write_public_file(const std::filesystem::path& path, std::string_view content);
[[nodiscard]] Result<std::string> read_text_file(const std::filesystem::path& path, std::size_t max_bytes = 1 << 16);

// Building blocks: atomic create (temp, fsync, link or rename, fsync of the
// folder) and a bounded read into wiped memory that, for secrets, refuses
// group/other permissions.
[[nodiscard]] Status write_file_atomically(const std::filesystem::path& path, ByteView data, mode_t mode, bool exclusive);
[[nodiscard]] Result<SecretBytes> read_small_file(const std::filesystem::path& path, std::size_t max, bool secret);

}  // namespace credprov
