// Everything the agent keeps across restarts, as one value.
//
// The store (store.hpp) persists an AgentState atomically, encrypted and
// integrity-protected; nothing else writes it. This header only defines the
// model and its canonical encoding. Never log an AgentState: it holds the
// device's private keys, the setup code, K and OPc.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>

#include "credprov/protocol/device_session.hpp"
#include "credprov/protocol/secret.hpp"
#include "credprov/protocol/signed_objects.hpp"

namespace credprov::agent {

// Failed pairing attempts not yet cleared by a provisioner's confirmation.
struct AttemptState {
    std::uint32_t unconfirmed{0};       // attempts since the last confirmed pairing
    std::uint64_t last_attempt_unix{0}; // wall clock of the last attempt, seconds
    friend bool operator==(const AttemptState&, const AttemptState&) = default;
};

// The soft-USIM's sequence number state (TS 33.102 Annex C): the highest
// SEQ accepted per IND, as aka::UsimSqnState::to_bytes() writes it; all zero
// for a fresh credential.
struct UsimState {
    static constexpr std::size_t kBytes = 32 * 6;
    ByteArray<kBytes> sqn_state{};
    friend bool operator==(const UsimState&, const UsimState&) = default;
};

struct AgentState {
    // Identity, created at factory-init. Seeds, from which the key pairs derive.
    Secret<32> identity_seed;
    Secret<32> box_seed;
    std::optional<SignedObject> attestation;
    SecretBytes setup_code;  // ASCII digits
    // Trust anchors installed at manufacture.
    DeviceTrust trust;
    // Protocol state (owner, counters, credential metadata, settings).
    DeviceRecord record;
    // The credential's secrets, present iff record.credential is.
    std::optional<Secret<16>> k;
    std::optional<Secret<16>> opc;
    AttemptState attempts;
    UsimState usim;

    [[nodiscard]] AgentState clone() const;
};

// Version of the state encoding (key 0 of the map); decode refuses others.
inline constexpr std::uint64_t kStateFormatVersion = 1;
// Upper bound of an encoded state: a full state is under 3 KiB.
inline constexpr std::size_t kMaxStateBytes = 8192;

// Canonical CBOR encoding of the whole state (the store's plaintext). The
// secrets are written straight into the returned SecretBytes; no public
// buffer ever holds them. The layout is in target_agent/STORE.md.
[[nodiscard]] SecretBytes encode_state(const AgentState& state);
// Strict inverse of encode_state: every field bounded, unknown critical keys
// refused, k/opc present exactly when record.credential is. Error messages
// never quote the input.
[[nodiscard]] Result<AgentState> decode_state(ByteView plaintext);

}  // namespace credprov::agent
