// The backend's long-term secrets on disk: the operator key (Ed25519 for
// signing, X25519 for what devices seal to it), the provisioning root key
// (which certifies operator keys and may stay offline) and the data key that
// encrypts K and OPc at rest.
//
// Key files are created 0600 with O_EXCL, written to a temporary name,
// fsynced and renamed; opening one refuses group/other permissions. A key
// file may be passphrase-protected (Argon2id + XChaCha20-Poly1305). Nothing
// here logs, and no error message carries key bytes or passphrases.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "credprov/aka/subscriber_keys.hpp"
#include "credprov/common/key_file.hpp"
#include "credprov/protocol/crypto.hpp"
#include "credprov/protocol/result.hpp"
#include "credprov/protocol/secret.hpp"
#include "credprov/protocol/signed_objects.hpp"

namespace credprov::backend {

// Key files live in common/ (shared with the provisioner).
using credprov::KeySeeds;
using credprov::read_key_file;
using credprov::read_text_file;
using credprov::write_key_file;
using credprov::write_public_file;

// The operator's keys in memory.
struct OperatorIdentity {
    crypto::SigningKey sign;
    crypto::BoxKey box;
    std::string name;
    std::optional<SignedObject> certificate;  // root-signed, when certified

    [[nodiscard]] OperatorKeys public_keys() const;
    [[nodiscard]] static OperatorIdentity from_seeds(const KeySeeds& seeds, std::string name);
};

// 32-byte key for K/OPc at rest: XChaCha20-Poly1305 with a random 24-byte
// nonce per value and the IMSI as associated data.
class DataKey {
public:
    [[nodiscard]] static Result<DataKey> load(const std::filesystem::path& path);
    [[nodiscard]] static Status create(const std::filesystem::path& path);
    [[nodiscard]] static DataKey random();  // tests

    // hex(nonce || ciphertext of K || OPc)
    [[nodiscard]] std::string seal(const std::string& imsi, const SubscriberKeys& keys) const;
    [[nodiscard]] Result<SubscriberKeys> open(const std::string& imsi, const std::string& sealed_hex) const;
    // The same keys straight into Milenage's guarded key object, without a
    // second guarded copy: every guarded allocation costs system calls, and
    // AKA opens keys on every vector request.
    [[nodiscard]] Result<aka::SubscriberKeys> open_for_aka(const std::string& imsi, const std::string& sealed_hex) const;
    // Names this key without revealing it (32 hex digits of a keyed BLAKE2b
    // of a fixed text): the database records it so that a node holding
    // another data key refuses to start.
    [[nodiscard]] std::string id() const;

private:
    [[nodiscard]] Status open_into(const std::string& imsi, const std::string& sealed_hex, SecretBytes& plain) const;
    Secret<32> key_;
};

}  // namespace credprov::backend
