// The messages of the credprov protocol and the payloads inside its records.
// Wire format and field tables: protocol/PROTOCOL.md.
//
//   M1 pair-request   P -> D  cleartext  {0:1, 1:sid, 2:Ya, 3:ADa}
//   M2 pair-response  D -> P  cleartext  {0:2, 1:Yb, 2:ADb, 3:Tb, 4:record?}
//   M3 authorise      P -> D             {0:3, 1:Ta, 2:record}
//   M4.. record       either direction   {0:4, 1:record}
//   error             D -> P  cleartext  {0:5, 1:code, 2:retry-after?}
//
// Decoders bound every field; none of them ever logs a payload.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/cpace.hpp"
#include "credprov/protocol/identifiers.hpp"
#include "credprov/protocol/result.hpp"
#include "credprov/protocol/signed_objects.hpp"

namespace credprov {

inline constexpr std::size_t kMaxMessageBytes = 4096;
inline constexpr std::size_t kSidBytes = 16;
inline constexpr std::size_t kConfirmTagBytes = 32;  // HMAC-SHA-512 truncated, RFC 2104 section 5

enum class MessageType : std::uint8_t { pair_request = 1, pair_response = 2, authorise = 3, record = 4, error = 5 };

[[nodiscard]] Result<MessageType> peek_type(ByteView message);

// Mode bits offered (ADa) and supported (ADb).
inline constexpr std::uint64_t kModeSealed = 1;
inline constexpr std::uint64_t kModeField = 2;

enum class OwnerState : std::uint8_t { unowned = 0, owned = 1, pinned = 2 };

// ADa: the provisioner's associated data, bound into CPace.
struct ProvisionerAd {
    std::vector<std::uint64_t> versions{kProtocolVersion};
    std::uint64_t modes{kModeSealed};
    bool device_keys_known{false};  // if set, the device does not send its keys in M2
    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<ProvisionerAd> decode(ByteView bytes);
};

// ADb: the device's associated data, bound into CPace.
struct DeviceAd {
    std::uint64_t version{kProtocolVersion};
    std::uint64_t modes{kModeSealed};
    OwnerState owner{OwnerState::unowned};
    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<DeviceAd> decode(ByteView bytes);
};

struct PairRequest {
    ByteArray<kSidBytes> sid{};
    cpace::Point ya{};
    Bytes ada;
    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<PairRequest> decode(ByteView bytes);
};

struct PairResponse {
    cpace::Point yb{};
    Bytes adb;
    ByteArray<kConfirmTagBytes> tb{};
    std::optional<Bytes> record;  // device keys, when the provisioner does not know them
    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<PairResponse> decode(ByteView bytes);
};

struct Authorise {
    ByteArray<kConfirmTagBytes> ta{};
    Bytes record;
    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<Authorise> decode(ByteView bytes);
};

struct Record {
    Bytes record;
    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<Record> decode(ByteView bytes);
};

// Cleartext refusal before a channel exists: a cause and, for back-off, when
// to try again. Carries nothing secret.
struct ErrorMessage {
    ErrorCode code{ErrorCode::internal};
    std::uint64_t retry_after_s{0};
    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<ErrorMessage> decode(ByteView bytes);
};

// ---- record payloads --------------------------------------------------------

// Inside M2's record: the device keys, for a provisioner that lacks them.
struct DeviceKeys {
    crypto::SignPublicKey identity{};
    crypto::BoxPublicKey box{};
    crypto::Signature box_signature{};
    std::optional<SignedObject> attestation;  // manufacturer-signed identity key
    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<DeviceKeys> decode(ByteView bytes);
};

struct Request {
    Operation op{Operation::query};
    std::optional<SignedObject> object;  // bundle, field authorisation or owner command
};

// First record P -> D (inside M3), later records carry only a request.
struct ProvisionerPayload {
    std::optional<crypto::Signature> transcript_signature;
    std::optional<SignedObject> token;
    std::optional<SignedObject> operator_certificate;
    Request request;
    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<ProvisionerPayload> decode(ByteView bytes);
};

struct DiagnosticResult {
    Diagnostic id{Diagnostic::self_test};
    bool ok{false};
    std::string detail;  // <= 64 printable characters, never secret
};

// Read-only device information and configuration (the "query" operation).
struct DeviceInfo {
    DeviceId device;
    OwnerState owner_state{OwnerState::unowned};
    std::optional<Digest> owner_key_hash;
    std::uint64_t owner_counter{0};
    bool provisioned{false};
    std::optional<BundleId> bundle;
    std::optional<SubscriberProfile> profile;
    DeviceSettings settings;
    std::string software;  // agent name and version
};

struct Response {
    ErrorCode status{};  // 0 = success, otherwise the cause
    bool ok{true};
    std::string message;  // on failure: why, never secret
    std::optional<Receipt> receipt;
    std::optional<DeviceInfo> info;
    std::vector<DiagnosticResult> diagnostics;
    std::optional<std::uint64_t> counter;  // owner counter after an owner command

    [[nodiscard]] static Response failure(const Error& e);
};

struct DevicePayload {
    std::optional<crypto::Signature> transcript_signature;
    Response response;
    [[nodiscard]] Bytes encode() const;
    [[nodiscard]] static Result<DevicePayload> decode(ByteView bytes);
};

}  // namespace credprov
