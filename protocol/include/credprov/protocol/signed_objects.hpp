// The signed objects of credprov: operator certificates, authorisation tokens,
// credential bundles (sealed), field authorisations, receipts and owner
// commands, with their canonical encodings and signature checks.
//
// Every signature is Ed25519 over  context || 0x00 || canonical body,  where
// the body carries the protocol version, so no signed object can be replayed
// in another role. Owner commands carry the device id and the per-device
// counter. Decoders bound every field and reject unknown critical fields.
// Never logs; K and OPc appear here only as ciphertext or in Secret<>.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/codec.hpp"
#include "credprov/protocol/crypto.hpp"
#include "credprov/protocol/identifiers.hpp"
#include "credprov/protocol/result.hpp"
#include "credprov/protocol/secret.hpp"

namespace credprov {

namespace context {
inline constexpr std::string_view operator_certificate = "credprov/v1 operator-certificate";
inline constexpr std::string_view authorisation_token = "credprov/v1 authorisation-token";
inline constexpr std::string_view credential_bundle = "credprov/v1 credential-bundle";
inline constexpr std::string_view field_authorisation = "credprov/v1 field-authorisation";
inline constexpr std::string_view receipt = "credprov/v1 receipt";
inline constexpr std::string_view device_box_key = "credprov/v1 device-box-key";
inline constexpr std::string_view manufacturer_attestation = "credprov/v1 manufacturer-attestation";
inline constexpr std::string_view transcript_device = "credprov/v1 transcript device";
inline constexpr std::string_view transcript_provisioner = "credprov/v1 transcript provisioner";
inline constexpr std::string_view owner_deprovision = "credprov/v1 owner-command deprovision";
inline constexpr std::string_view owner_reconfigure = "credprov/v1 owner-command reconfigure";
inline constexpr std::string_view owner_diagnose = "credprov/v1 owner-command diagnose";
inline constexpr std::string_view owner_transfer = "credprov/v1 owner-command transfer";
inline constexpr std::string_view seal_bundle = "credprov/v1 seal bundle-keys";
inline constexpr std::string_view seal_field = "credprov/v1 seal field-keys";
}  // namespace context

inline constexpr std::size_t kDigestBytes = 32;
using Digest = ByteArray<kDigestBytes>;
// SHA-512 truncated to 256 bits: object hashes and key hashes in receipts.
[[nodiscard]] Digest digest(ByteView data);

// A signed object on the wire: CBOR [body: bstr, signature: bstr .size 64].
struct SignedObject {
    static constexpr std::size_t kMaxBody = 1024;
    Bytes body;
    crypto::Signature signature{};

    [[nodiscard]] Bytes encode() const;
    void encode_into(cbor::Writer& w) const;
    [[nodiscard]] static Result<SignedObject> decode(ByteView bytes);
    [[nodiscard]] static Result<SignedObject> read(cbor::Reader& r);
    // Hash of the encoded object, as receipts reference it.
    [[nodiscard]] Digest hash() const { return digest(encode()); }
};

// Signs body bytes under a context string.
[[nodiscard]] SignedObject sign_body(const crypto::SigningKey& key, std::string_view context, Bytes body);
[[nodiscard]] Status verify_body(const SignedObject& obj, const crypto::SignPublicKey& key, std::string_view context);

// ---- operator certificate (root-signed) -------------------------------------
struct OperatorKeys {
    crypto::SignPublicKey sign_key{};
    crypto::BoxPublicKey box_key{};
    std::string name;  // 1..32 printable characters
    friend bool operator==(const OperatorKeys&, const OperatorKeys&) = default;

    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<OperatorKeys> decode(ByteView body);
};
[[nodiscard]] SignedObject certify_operator(const crypto::SigningKey& root, const OperatorKeys& keys);
[[nodiscard]] Result<OperatorKeys> verify_operator_certificate(const SignedObject& cert,
                                                              const crypto::SignPublicKey& root);

// ---- authorisation token (operator-signed) ----------------------------------
struct AuthorisationToken {
    crypto::SignPublicKey provisioner_key{};
    std::optional<DeviceId> device;  // exactly one of device / device_prefix
    Bytes device_prefix;              // 1..16 bytes
    std::vector<Operation> operations;  // explicit list, no wildcards
    std::uint64_t not_before{0};        // seconds since the Unix epoch
    std::uint64_t not_after{0};

    [[nodiscard]] bool allows(Operation op) const noexcept;
    [[nodiscard]] bool covers(const DeviceId& id) const noexcept;
    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<AuthorisationToken> decode(ByteView body);
};
[[nodiscard]] SignedObject issue_token(const crypto::SigningKey& operator_key, const AuthorisationToken& token);
[[nodiscard]] Result<AuthorisationToken> verify_token(const SignedObject& token, const crypto::SignPublicKey& issuer);

// ---- subscriber keys and sealing --------------------------------------------
struct SubscriberKeys {
    Secret<16> k;
    Secret<16> opc;
    [[nodiscard]] static SubscriberKeys random();
};
inline constexpr std::size_t kSealedKeysBytes = 32 + crypto::kAeadTagBytes;
using SealedKeys = ByteArray<kSealedKeysBytes>;

// K || OPc encrypted with ChaCha20-Poly1305-IETF under a key derived with
// HKDF-SHA-512 from X25519(operator, device), salted with the hash of the
// object header that also is the associated data. `mine` is the caller's box
// secret key (operator when sealing a bundle, device for field mode).
[[nodiscard]] Result<SealedKeys> seal_keys(std::string_view label, const crypto::BoxKey& mine,
                                           const crypto::BoxPublicKey& operator_box,
                                           const crypto::BoxPublicKey& device_box, ByteView header,
                                           const SubscriberKeys& keys);
// The X25519 value the sealing key is derived from, computed ahead: it
// depends only on the two box keys, not on the header (the backend computes
// it before its write transaction, outside the serial commit).
using SealShared = InlineSecret<32>;
[[nodiscard]] Result<SealShared> seal_shared(const crypto::BoxKey& mine, const crypto::BoxPublicKey& peer);
[[nodiscard]] Result<SealedKeys> seal_keys(std::string_view label, const SealShared& shared,
                                           const crypto::BoxPublicKey& operator_box,
                                           const crypto::BoxPublicKey& device_box, ByteView header,
                                           const SubscriberKeys& keys);
[[nodiscard]] Result<SubscriberKeys> open_keys(std::string_view label, const crypto::BoxKey& mine,
                                               const crypto::BoxPublicKey& operator_box,
                                               const crypto::BoxPublicKey& device_box, ByteView header,
                                               const SealedKeys& sealed);

// ---- credential bundle (operator-signed, sealed) ----------------------------
struct SubscriberProfile {
    Imsi imsi;
    ByteArray<2> amf{{0x80, 0x00}};
    std::uint64_t sqn{0};  // initial SQN, 48 bits
    Plmn plmn;
    NetworkName network_name;
    friend bool operator==(const SubscriberProfile&, const SubscriberProfile&) = default;
};

// A profile as five consecutive map entries from first_key: IMSI, AMF, SQN,
// PLMN, network name. read_profile_field returns false for keys outside them.
void write_profile(cbor::MapBuilder& m, std::uint64_t first_key, const SubscriberProfile& p);
[[nodiscard]] Result<bool> read_profile_field(std::uint64_t key, std::uint64_t first_key, cbor::Reader& v,
                                              SubscriberProfile& p);

struct CredentialBundle {
    BundleId id;
    DeviceId device;
    std::uint64_t epoch{1};  // must exceed the device's last deprovisioning counter
    SubscriberProfile profile;
    std::uint64_t issued_at{0};
    std::uint64_t not_after{0};
    SealedKeys sealed{};

    // The header is every field but the ciphertext; its encoding is the
    // sealing's associated data.
    [[nodiscard]] Bytes encode_header() const;
    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<CredentialBundle> decode(ByteView body);
};
// Backend side: seals the keys to the device and signs the bundle.
[[nodiscard]] Result<SignedObject> issue_bundle(const crypto::SigningKey& operator_sign, const crypto::BoxKey& operator_box,
                                                const crypto::BoxPublicKey& device_box, CredentialBundle bundle,
                                                const SubscriberKeys& keys);
// The same with seal_shared(operator's box key, device_box) computed ahead.
[[nodiscard]] Result<SignedObject> issue_bundle(const crypto::SigningKey& operator_sign,
                                                const crypto::BoxPublicKey& operator_box, const SealShared& shared,
                                                const crypto::BoxPublicKey& device_box, CredentialBundle bundle,
                                                const SubscriberKeys& keys);
[[nodiscard]] Result<CredentialBundle> verify_bundle(const SignedObject& bundle, const crypto::SignPublicKey& issuer);

// ---- field authorisation (operator-signed, no keys) -------------------------
struct FieldAuthorisation {
    BundleId id;
    Digest provisioner_key_hash{};  // the provisioner whose pool holds it
    SubscriberProfile profile;
    std::uint64_t issued_at{0};
    std::uint64_t not_after{0};

    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<FieldAuthorisation> decode(ByteView body);
};
[[nodiscard]] SignedObject issue_field_authorisation(const crypto::SigningKey& operator_key,
                                                     const FieldAuthorisation& auth);
[[nodiscard]] Result<FieldAuthorisation> verify_field_authorisation(const SignedObject& auth,
                                                                    const crypto::SignPublicKey& issuer);

// ---- receipt (device-signed) ------------------------------------------------
enum class ReceiptResult : std::uint8_t { committed = 0, rejected = 1 };

// What the device signs. Only object_id, result, sealed keys and the signature
// travel; the verifier rebuilds the rest from what it already knows.
struct ReceiptContent {
    DeviceId device;
    BundleId object_id;       // bundle id or field authorisation id
    Digest object_hash{};     // hash of the signed bundle / authorisation as delivered
    Digest provisioner_key_hash{};
    ReceiptResult result{ReceiptResult::committed};
    // Field mode: K || OPc sealed to the operator, under a key salted with a
    // fresh random value from the device, so that a field authorisation
    // delivered twice (after a deprovisioning) never reuses a sealing key.
    std::optional<ByteArray<16>> field_salt;
    std::optional<SealedKeys> field_keys;
    [[nodiscard]] Bytes encode() const;
    // Associated data for sealing field keys: the content without the keys.
    [[nodiscard]] Bytes encode_header() const;
};

struct Receipt {
    BundleId object_id;
    ReceiptResult result{ReceiptResult::committed};
    std::optional<ByteArray<16>> field_salt;
    std::optional<SealedKeys> field_keys;
    crypto::Signature signature{};

    [[nodiscard]] Bytes encode() const;
    void encode_into(cbor::Writer& w) const;
    [[nodiscard]] static Result<Receipt> decode(ByteView bytes);
    [[nodiscard]] static Result<Receipt> read(cbor::Reader& r);
};
[[nodiscard]] Receipt sign_receipt(const crypto::SigningKey& device_key, const ReceiptContent& content);
// Checks the receipt against what the verifier expects it to say.
[[nodiscard]] Status verify_receipt(const Receipt& receipt, const crypto::SignPublicKey& device_key,
                                    const DeviceId& device, const Digest& object_hash,
                                    const Digest& provisioner_key_hash);

// ---- owner commands (owner-signed, counter-protected) -----------------------
enum class OwnerCommandKind : std::uint8_t { deprovision = 1, reconfigure = 2, diagnose = 3, transfer = 4 };
[[nodiscard]] std::string_view context_of(OwnerCommandKind kind) noexcept;
[[nodiscard]] Operation operation_of(OwnerCommandKind kind) noexcept;

// Settings an owner may change on a device; absent fields stay as they are.
struct DeviceSettings {
    std::optional<std::string> label;              // free text shown in queries, <= 32 chars
    std::optional<bool> field_mode_allowed;
    std::optional<bool> advertise_when_provisioned;
    std::optional<std::uint64_t> attach_check_interval_s;
    friend bool operator==(const DeviceSettings&, const DeviceSettings&) = default;
    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<DeviceSettings> decode(ByteView body);
};

enum class Diagnostic : std::uint8_t { self_test = 1, store_check = 2, aka_self_check = 3, transport_info = 4 };
inline constexpr std::uint64_t kMaxDiagnostic = 4;
// "self-test", "store-check", "aka-self-check", "transport-info": the names
// the backend's API and the CLI use.
[[nodiscard]] std::string_view to_string(Diagnostic d) noexcept;
[[nodiscard]] std::optional<Diagnostic> diagnostic_from_string(std::string_view name) noexcept;

struct OwnerCommand {
    OwnerCommandKind kind{OwnerCommandKind::deprovision};
    DeviceId device;
    std::uint64_t counter{0};    // per-device, strictly increasing
    std::uint64_t issued_at{0};
    Bytes payload;               // settings, diagnostics list or new owner keys

    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<OwnerCommand> decode(ByteView body);
};
[[nodiscard]] SignedObject sign_owner_command(const crypto::SigningKey& owner, const OwnerCommand& cmd);
// Verifies signature (with the kind's context), device binding and counter.
[[nodiscard]] Result<OwnerCommand> verify_owner_command(const SignedObject& obj, const crypto::SignPublicKey& owner,
                                                        const DeviceId& device, std::uint64_t last_counter);

[[nodiscard]] Bytes encode_diagnostics(const std::vector<Diagnostic>& list);
[[nodiscard]] Result<std::vector<Diagnostic>> decode_diagnostics(ByteView payload);

// ---- manufacturer attestation (manufacturer-signed) -------------------------
// A manufacturer vouches for a device's two public keys; a backend that knows
// the manufacturer's key mints subscribers only for devices it can vouch for.
struct DeviceAttestation {
    crypto::SignPublicKey identity{};
    crypto::BoxPublicKey box{};
    std::string manufacturer;  // 1..32 printable characters

    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<DeviceAttestation> decode(ByteView body);
};
[[nodiscard]] SignedObject attest_device(const crypto::SigningKey& manufacturer, const DeviceAttestation& a);
// Verifies the signature and that the attestation names exactly these keys.
[[nodiscard]] Result<DeviceAttestation> verify_attestation(const SignedObject& attestation,
                                                           const crypto::SignPublicKey& manufacturer,
                                                           const crypto::SignPublicKey& identity,
                                                           const crypto::BoxPublicKey& box);

// The device's X25519 key, certified by its identity key.
[[nodiscard]] crypto::Signature sign_box_key(const crypto::SigningKey& identity, const crypto::BoxPublicKey& box);
[[nodiscard]] Status verify_box_key(const crypto::SignPublicKey& identity, const crypto::BoxPublicKey& box,
                                    const crypto::Signature& signature);

}  // namespace credprov
