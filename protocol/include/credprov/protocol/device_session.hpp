// The device role of the credprov protocol: answers one provisioner session.
//
// Bytes in, bytes out: handle() takes one message and returns the one reply
// to send. Persistence is the host's job (the agent's store), reached through
// DeviceHost; this file never does I/O, never reads a clock, never logs.
// Every failure is terminal: the session wipes its keys and refuses further
// input. Durability rules that the security argument rests on:
//   - the pairing attempt is recorded through the host before M2 is returned,
//     and cleared only once the provisioner's confirmation tag verifies;
//   - a credential and the receipt that acknowledges it are committed through
//     the host before the receipt leaves the session.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "credprov/protocol/cpace.hpp"
#include "credprov/protocol/identifiers.hpp"
#include "credprov/protocol/messages.hpp"
#include "credprov/protocol/secure_channel.hpp"
#include "credprov/protocol/signed_objects.hpp"

namespace credprov {

// The device's keys, created at first start or at manufacture.
struct DeviceIdentity {
    crypto::SigningKey identity;
    crypto::BoxKey box;
    crypto::Signature box_signature{};        // identity-signed box key
    std::optional<SignedObject> attestation;  // manufacturer-signed identity key
    DeviceId id;

    [[nodiscard]] static DeviceIdentity generate();
    [[nodiscard]] static DeviceIdentity from_seeds(std::span<const std::uint8_t, 32> identity_seed,
                                                   std::span<const std::uint8_t, 32> box_seed);
};

// Who the device may accept as its owner; fixed at manufacture.
struct DeviceTrust {
    std::optional<crypto::SignPublicKey> provisioning_root;  // certifies operator keys
    std::optional<OperatorKeys> pinned_owner;                // never adopts another
    bool lab_trust_on_first_use{false};  // lab opt-in: adopt any operator, uncertified
    bool field_mode_allowed{false};      // default policy; settings may override
};

// A credential the device holds (K and OPc are kept by the host, apart).
struct StoredCredential {
    BundleId id;
    Digest object_hash{};
    SubscriberProfile profile;
    bool field_mode{false};
    Bytes receipt;  // encoded receipt, returned again on re-delivery
};

// The device's persistent protocol state, written only through DeviceHost::commit.
struct DeviceRecord {
    std::optional<OperatorKeys> owner;
    std::uint64_t owner_counter{0};       // highest owner-command counter applied
    std::uint64_t deprovision_epoch{0};   // counter of the last deprovisioning
    std::uint64_t time_high_water{0};     // highest operator-signed time seen
    std::optional<StoredCredential> credential;
    DeviceSettings settings;
};

struct AttemptDecision {
    bool allowed{true};
    std::uint64_t retry_after_s{0};
};

class DeviceHost {
public:
    virtual ~DeviceHost() = default;
    // Durably counts a pairing attempt; refuses while a back-off runs.
    [[nodiscard]] virtual Result<AttemptDecision> record_pairing_attempt() = 0;
    // The provisioner proved knowledge of the setup code: clear the attempt.
    [[nodiscard]] virtual Status confirm_pairing() = 0;
    [[nodiscard]] virtual const DeviceRecord& record() const = 0;
    // Atomically and durably replaces the record; `keys` is the new K/OPc on
    // delivery, nullptr when the credential is unchanged, and the credential
    // is wiped when next.credential is empty.
    [[nodiscard]] virtual Status commit(const DeviceRecord& next, const SubscriberKeys* keys) = 0;
    [[nodiscard]] virtual std::vector<DiagnosticResult> run_diagnostics(const std::vector<Diagnostic>& which) = 0;
    // Local consent before an owner command takes effect on the channel (a
    // button, a file, a D-Bus call: the host decides). Default: no consent
    // needed. A refusal is ErrorCode::not_authorised.
    [[nodiscard]] virtual Status consent(OwnerCommandKind kind) {
        (void)kind;
        return {};
    }
    [[nodiscard]] virtual std::string software() const = 0;
};

class DeviceSession {
public:
    enum class State : std::uint8_t { await_pair_request, await_authorise, ready, failed };

    DeviceSession(const DeviceIdentity& identity, const DeviceTrust& trust, DeviceHost& host, const SetupCode& code,
                  TransportType transport, std::optional<std::uint64_t> trusted_now = std::nullopt);
    ~DeviceSession();
    DeviceSession(const DeviceSession&) = delete;
    DeviceSession& operator=(const DeviceSession&) = delete;

    struct Step {
        Bytes reply;                 // send this (may be an error notice)
        std::optional<Error> error;  // set when the session failed
    };
    [[nodiscard]] Step handle(ByteView message);

    [[nodiscard]] State state() const noexcept { return state_; }
    [[nodiscard]] bool failed() const noexcept { return state_ == State::failed; }

private:
    struct Authorised;
    Step on_pair_request(ByteView message);
    Step on_authorise(ByteView message);
    Step on_record(ByteView message);
    Response execute(const Request& request);
    Step fail(Error e, bool notify_in_channel);
    Step reply_in_channel(DevicePayload payload);

    const DeviceIdentity& identity_;
    const DeviceTrust& trust_;
    DeviceHost& host_;
    const SetupCode& code_;
    TransportType transport_;
    std::optional<std::uint64_t> trusted_now_;
    State state_{State::await_pair_request};

    ByteArray<kSidBytes> sid_{};
    cpace::Point ya_{};
    Bytes ada_bytes_;
    crypto::Hash th_{};
    ProvisionerAd ada_;
    std::uint64_t modes_{kModeSealed};
    std::optional<cpace::MacKey> mac_key_;
    std::optional<cpace::Point> yb_;
    Bytes adb_;
    std::optional<SecureChannel> channel_;
    std::optional<OperatorKeys> operator_;       // the operator the token came from
    std::optional<AuthorisationToken> token_;
};

// The network path: verifies an owner-signed deprovisioning notice received
// without a provisioner and returns the record to commit.
[[nodiscard]] Result<DeviceRecord> apply_network_deprovision(const DeviceIdentity& identity, const DeviceTrust& trust,
                                                             const DeviceRecord& record, const SignedObject& notice);

// CPace channel identifier: lv_cat("credprov/v1", transport type, device id).
[[nodiscard]] Bytes channel_identifier(TransportType transport, const DeviceId& device);

// What both identity signatures cover: th || signer key || peer key.
[[nodiscard]] Bytes transcript_signature_input(const crypto::Hash& th, const crypto::SignPublicKey& signer,
                                               const crypto::SignPublicKey& peer);

}  // namespace credprov
