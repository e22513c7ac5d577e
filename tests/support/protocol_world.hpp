// An in-memory world for protocol tests and benchmarks: a provisioning root,
// an operator, a device with an in-memory host, and a provisioner.
//
// MemoryDeviceHost is a test double for the agent's store at the one
// boundary the protocol library cannot reach (persistence); it records what
// was committed so tests can assert on it. Not for production use.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "credprov/protocol/device_session.hpp"
#include "credprov/protocol/provisioner_session.hpp"

namespace credprov::testing {

class MemoryDeviceHost final : public DeviceHost {
public:
    Result<AttemptDecision> record_pairing_attempt() override {
        ++attempts_recorded;
        ++pending_failures;
        if (refuse_attempts) return AttemptDecision{false, 30};
        return AttemptDecision{};
    }
    Status confirm_pairing() override {
        pending_failures = 0;
        return {};
    }
    const DeviceRecord& record() const override { return rec; }
    Status commit(const DeviceRecord& next, const SubscriberKeys* keys) override {
        if (fail_commit) return make_error(ErrorCode::storage, "simulated storage failure");
        rec = next;
        ++commits;
        if (keys != nullptr) {
            k.assign(keys->k.data(), keys->k.data() + 16);
            opc.assign(keys->opc.data(), keys->opc.data() + 16);
        }
        if (!next.credential) {
            k.clear();
            opc.clear();
        }
        return {};
    }
    std::vector<DiagnosticResult> run_diagnostics(const std::vector<Diagnostic>& which) override {
        std::vector<DiagnosticResult> out;
        for (auto d : which) out.push_back({d, true, "ok"});
        return out;
    }
    std::string software() const override { return "credprov-test 0"; }
    Status consent(OwnerCommandKind kind) override {
        if (withhold_consent_for && *withhold_consent_for == kind) {
            return make_error(ErrorCode::not_authorised, "local consent missing");
        }
        return {};
    }
    std::optional<OwnerCommandKind> withhold_consent_for;

    DeviceRecord rec;
    int attempts_recorded{0};
    int pending_failures{0};  // attempts not yet cleared by a confirmation
    int commits{0};
    bool refuse_attempts{false};
    bool fail_commit{false};
    Bytes k;  // plain copies for assertions only
    Bytes opc;
};

struct Operator {
    crypto::SigningKey sign = crypto::generate_signing_key();
    crypto::BoxKey box = crypto::generate_box_key();
    OperatorKeys keys() const { return OperatorKeys{sign.public_key, box.public_key, "Test Operator"}; }
};

inline constexpr std::uint64_t kNow = 1'800'000'000;  // fixed test time

inline SubscriberProfile test_profile() {
    SubscriberProfile p;
    p.imsi = *Imsi::parse("001010123456789");
    p.sqn = 32;
    p.plmn = *Plmn::parse("00101");
    p.network_name = *NetworkName::parse("credprov-test");
    return p;
}

struct World {
    crypto::SigningKey root = crypto::generate_signing_key();
    Operator op;
    SignedObject certificate = certify_operator(root, op.keys());
    DeviceIdentity device = DeviceIdentity::generate();
    DeviceTrust trust{root.public_key, std::nullopt, false, true};
    MemoryDeviceHost host;
    SetupCode code = std::move(SetupCode::parse("1234567890")).value();
    crypto::SigningKey provisioner = crypto::generate_signing_key();
    std::uint64_t next_counter{1};

    SignedObject token(std::vector<Operation> ops = {Operation::deliver_sealed, Operation::query},
                       std::uint64_t not_before = kNow - 60, std::uint64_t not_after = kNow + 3600,
                       const crypto::SigningKey* issuer = nullptr, std::optional<DeviceId> for_device = std::nullopt) {
        AuthorisationToken t;
        t.provisioner_key = provisioner.public_key;
        t.device = for_device.value_or(device.id);
        t.operations = std::move(ops);
        t.not_before = not_before;
        t.not_after = not_after;
        return issue_token(issuer != nullptr ? *issuer : op.sign, t);
    }

    SignedObject bundle(std::uint64_t epoch = 1, std::optional<DeviceId> for_device = std::nullopt,
                        const crypto::SigningKey* signer = nullptr) {
        CredentialBundle b;
        b.id = BundleId::random();
        b.device = for_device.value_or(device.id);
        b.epoch = epoch;
        b.profile = test_profile();
        b.issued_at = kNow;
        b.not_after = kNow + 86400;
        auto keys = SubscriberKeys::random();
        last_k.assign(keys.k.data(), keys.k.data() + 16);
        return *issue_bundle(signer != nullptr ? *signer : op.sign, op.box, device.box.public_key, b, keys);
    }

    SignedObject field_authorisation() {
        FieldAuthorisation a;
        a.id = BundleId::random();
        a.provisioner_key_hash = digest(provisioner.public_key);
        a.profile = test_profile();
        a.issued_at = kNow;
        a.not_after = kNow + 86400;
        return issue_field_authorisation(op.sign, a);
    }

    SignedObject owner_command(OwnerCommandKind kind, Bytes payload = {}, std::optional<std::uint64_t> counter = {},
                               std::optional<DeviceId> for_device = std::nullopt, const crypto::SigningKey* signer = nullptr) {
        OwnerCommand c;
        c.kind = kind;
        c.device = for_device.value_or(device.id);
        c.counter = counter.value_or(next_counter++);
        c.issued_at = kNow;
        c.payload = std::move(payload);
        return sign_owner_command(signer != nullptr ? *signer : op.sign, c);
    }

    ProvisionerSetup setup(SignedObject tok, bool keys_known = true, std::uint64_t modes = kModeSealed) {
        ProvisionerSetup s;
        s.device = device.id;
        s.transport = TransportType::loopback;
        s.key = &provisioner;
        s.token = std::move(tok);
        s.operator_certificate = certificate;
        if (keys_known) s.device_keys = KnownDeviceKeys{device.identity.public_key, device.box.public_key, std::nullopt};
        s.modes = modes;
        s.now = kNow;
        return s;
    }

    Bytes last_k;
};

// Drives both state machines in memory; records every message for byte counts
// and lets a test tamper with each one through `tamper`.
struct Exchange {
    std::vector<Bytes> messages;
    int round_trips{0};
    std::size_t bytes() const {
        std::size_t n = 0;
        for (const auto& m : messages) n += m.size();
        return n;
    }
};

}  // namespace credprov::testing
