// The provisioner role of the credprov protocol: one session with one device.
//
//   start()               -> M1
//   read_pair_response(M2)   verifies Tb; learns the device keys if needed
//   authorise(request)    -> M3   (a backend call may sit before this one)
//   read_response(M4)        verifies the device's transcript signature and,
//                            for a delivery, the receipt
//   request(request)      -> later records; read_response() again
//
// No I/O, no clock (the caller passes `now`), no logging. Every failure is
// terminal and wipes the session keys.
#pragma once

#include <cstdint>
#include <optional>

#include "credprov/protocol/cpace.hpp"
#include "credprov/protocol/identifiers.hpp"
#include "credprov/protocol/messages.hpp"
#include "credprov/protocol/secure_channel.hpp"
#include "credprov/protocol/signed_objects.hpp"

namespace credprov {

// Device keys known in advance (label, backend inventory): the device then
// skips sending them, which saves a record in M2.
struct KnownDeviceKeys {
    crypto::SignPublicKey identity{};
    crypto::BoxPublicKey box{};
    // The identity key's signature over the box key, when the device sent
    // its keys (M2): the backend checks it before sealing to the box key.
    std::optional<crypto::Signature> box_signature;
};

struct ProvisionerSetup {
    DeviceId device;                  // from the label
    TransportType transport{TransportType::tcp};
    const crypto::SigningKey* key{nullptr};  // the provisioner's identity key
    SignedObject token;               // operator-signed authorisation
    std::optional<SignedObject> operator_certificate;  // for unowned devices
    std::optional<KnownDeviceKeys> device_keys;
    std::uint64_t modes{kModeSealed};  // offered: kModeSealed | kModeField
    std::optional<std::uint64_t> now;  // the provisioner's clock, for early token checks
    // Refuse early what the device would refuse (token for another device or
    // key, outside its validity). Tests switch it off to reach the device's checks.
    bool check_token_locally{true};
};

class ProvisionerSession {
public:
    enum class State : std::uint8_t { start, await_pair_response, paired, await_response, ready, failed };

    ProvisionerSession(ProvisionerSetup setup, const SetupCode& code);
    ~ProvisionerSession();
    ProvisionerSession(const ProvisionerSession&) = delete;
    ProvisionerSession& operator=(const ProvisionerSession&) = delete;

    [[nodiscard]] Result<Bytes> start();
    // Test hook: a fixed sid instead of 16 random bytes.
    [[nodiscard]] Result<Bytes> start_with_sid(const ByteArray<kSidBytes>& sid);
    [[nodiscard]] Status read_pair_response(ByteView m2);
    [[nodiscard]] Result<Bytes> authorise(Request request);
    [[nodiscard]] Result<Bytes> request(Request request);
    [[nodiscard]] Result<Response> read_response(ByteView message);

    [[nodiscard]] State state() const noexcept { return state_; }
    // Valid from read_pair_response() on.
    [[nodiscard]] const KnownDeviceKeys& device_keys() const { return *device_keys_; }
    [[nodiscard]] const DeviceAd& device_ad() const { return device_ad_; }
    // The manufacturer attestation the device sent with its keys, if any
    // (checked by the backend, which knows the manufacturers).
    [[nodiscard]] const std::optional<SignedObject>& device_attestation() const { return attestation_; }
    [[nodiscard]] std::uint64_t agreed_modes() const noexcept { return device_ad_.modes & setup_.modes; }
    // After the device refused with its back-off running: the seconds it
    // asked the provisioner to wait before the next pairing attempt.
    [[nodiscard]] std::optional<std::uint64_t> retry_after_s() const noexcept { return retry_after_s_; }

private:
    Error fail(Error e);
    Error refused(ByteView error_message);
    Result<Bytes> send_request(Request request, bool first);

    ProvisionerSetup setup_;
    const SetupCode& code_;
    State state_{State::start};
    ByteArray<kSidBytes> sid_{};
    Bytes m1_;
    Bytes ada_;
    std::optional<cpace::Ephemeral> eph_;
    std::optional<cpace::MacKey> mac_key_;
    std::optional<SecureChannel> channel_;
    crypto::Hash th_{};
    DeviceAd device_ad_;
    std::optional<KnownDeviceKeys> device_keys_;
    std::optional<SignedObject> attestation_;
    std::optional<Request> pending_;
    bool first_response_{true};
    std::optional<std::uint64_t> retry_after_s_;
};

}  // namespace credprov
