// Deterministic sample encodings of every credprov message, payload and
// signed object, built from fixed key seeds, plus the fixed device the
// device-session fuzzer talks to.
//
// Shared by the decoder unit tests, the seed-corpus generator and the fuzz
// harnesses (which include it by relative path), so all three agree on the
// same keys and bytes. Every key here is a public test key from a constant
// seed: never use this outside tests and fuzzing.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "credprov/protocol/device_session.hpp"
#include "credprov/protocol/messages.hpp"
#include "credprov/protocol/signed_objects.hpp"
#include "protocol_world.hpp"

namespace credprov::testing::samples {

// ---- fixed keys -------------------------------------------------------------

inline std::array<std::uint8_t, 32> seed(std::uint8_t tag) {
    std::array<std::uint8_t, 32> s{};
    s.fill(tag);
    return s;
}

template <std::size_t N>
ByteArray<N> pattern(std::uint8_t first) {
    ByteArray<N> a{};
    for (std::size_t i = 0; i < N; ++i) a[i] = static_cast<std::uint8_t>(first + i);
    return a;
}

inline Bytes pattern_bytes(std::size_t n, std::uint8_t first) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(first + i);
    return b;
}

// The keys every sample is built from; one instance per process.
struct Keys {
    crypto::SigningKey root = crypto::signing_key_from_seed(seed(0x01));
    crypto::SigningKey op_sign = crypto::signing_key_from_seed(seed(0x02));
    crypto::BoxKey op_box = crypto::box_key_from_seed(seed(0x03));
    DeviceIdentity device = DeviceIdentity::from_seeds(seed(0x04), seed(0x05));
    crypto::SigningKey provisioner = crypto::signing_key_from_seed(seed(0x06));
    crypto::SigningKey manufacturer = crypto::signing_key_from_seed(seed(0x07));

    [[nodiscard]] OperatorKeys operator_keys() const {
        return OperatorKeys{op_sign.public_key, op_box.public_key, "Sample Operator"};
    }
};

inline const Keys& keys() {
    static const Keys k;
    return k;
}

// The device of the device-session fuzzer: fixed identity, trust rooted in
// Keys::root, field mode allowed, setup code 1234567890, clock at kNow.
inline const DeviceTrust& fixed_trust() {
    static const DeviceTrust t{keys().root.public_key, std::nullopt, false, true};
    return t;
}

inline const SetupCode& fixed_code() {
    static const SetupCode c = std::move(SetupCode::parse("1234567890")).value();
    return c;
}

// ---- objects ----------------------------------------------------------------

inline SignedObject certificate() { return certify_operator(keys().root, keys().operator_keys()); }

inline AuthorisationToken token_for_device() {
    AuthorisationToken t;
    t.provisioner_key = keys().provisioner.public_key;
    t.device = keys().device.id;
    t.operations = {Operation::deliver_sealed, Operation::query, Operation::deliver_field};
    t.not_before = kNow - 60;
    t.not_after = kNow + 3600;
    return t;
}

inline AuthorisationToken token_for_prefix() {
    AuthorisationToken t;
    t.provisioner_key = keys().provisioner.public_key;
    t.device_prefix = Bytes(keys().device.id.bytes.begin(), keys().device.id.bytes.begin() + 4);
    t.operations = {Operation::query, Operation::diagnose, Operation::reconfigure, Operation::deprovision,
                    Operation::transfer};
    t.not_before = kNow - 60;
    t.not_after = kNow + 86400;
    return t;
}

inline SignedObject token() { return issue_token(keys().op_sign, token_for_device()); }

inline CredentialBundle bundle_content() {
    CredentialBundle b;
    b.id.bytes = pattern<16>(0xb0);
    b.device = keys().device.id;
    b.epoch = 1;
    b.profile = test_profile();
    b.issued_at = kNow;
    b.not_after = kNow + 86400;
    return b;
}

inline SubscriberKeys fixed_subscriber_keys() {
    const auto k = pattern<16>(0x10);
    const auto opc = pattern<16>(0x20);
    return SubscriberKeys{Secret<16>(std::span<const std::uint8_t, 16>(k)),
                          Secret<16>(std::span<const std::uint8_t, 16>(opc))};
}

inline SignedObject bundle() {
    return std::move(issue_bundle(keys().op_sign, keys().op_box, keys().device.box.public_key, bundle_content(),
                                  fixed_subscriber_keys()))
        .value();
}

inline FieldAuthorisation field_authorisation_content() {
    FieldAuthorisation a;
    a.id.bytes = pattern<16>(0xf0);
    a.provisioner_key_hash = digest(keys().provisioner.public_key);
    a.profile = test_profile();
    a.issued_at = kNow;
    a.not_after = kNow + 86400;
    return a;
}

inline SignedObject field_authorisation() {
    return issue_field_authorisation(keys().op_sign, field_authorisation_content());
}

inline DeviceSettings settings() {
    DeviceSettings s;
    s.label = "rack 4, slot 2";
    s.field_mode_allowed = true;
    s.advertise_when_provisioned = false;
    s.attach_check_interval_s = 600;
    return s;
}

inline OwnerCommand owner_command(OwnerCommandKind kind, Bytes payload, std::uint64_t counter) {
    OwnerCommand c;
    c.kind = kind;
    c.device = keys().device.id;
    c.counter = counter;
    c.issued_at = kNow;
    c.payload = std::move(payload);
    return c;
}

inline ReceiptContent receipt_content(bool field_keys) {
    ReceiptContent c;
    c.device = keys().device.id;
    c.object_id.bytes = pattern<16>(0xb0);
    c.object_hash = bundle().hash();
    c.provisioner_key_hash = digest(keys().provisioner.public_key);
    if (field_keys) {
        c.field_salt = pattern<16>(0x50);
        c.field_keys = pattern<kSealedKeysBytes>(0x40);
    }
    return c;
}

inline Receipt receipt(bool field_keys) { return sign_receipt(keys().device.identity, receipt_content(field_keys)); }

inline SignedObject attestation() {
    return sign_body(keys().manufacturer, context::manufacturer_attestation, Bytes(keys().device.identity.public_key.begin(),
                                                                                  keys().device.identity.public_key.end()));
}

// ---- the table the tests iterate ----------------------------------------------

// Decodes and re-encodes; the decoder's error when it refuses.
using RoundTrip = Result<Bytes> (*)(ByteView);

template <class T>
Result<Bytes> round_trip(ByteView in) {
    auto v = T::decode(in);
    if (!v) return v.error();
    return v->encode();
}

inline Result<Bytes> round_trip_diagnostics(ByteView in) {
    auto v = decode_diagnostics(in);
    if (!v) return v.error();
    return encode_diagnostics(*v);
}

struct Sample {
    std::string name;    // also the seed file name
    std::string family;  // fuzz corpus: "messages" or "signed_objects"
    Bytes bytes;
    RoundTrip round_trip;
};

inline std::vector<Sample> message_samples() {
    const Keys& k = keys();
    std::vector<Sample> out;
    auto add = [&out](std::string name, Bytes b, RoundTrip rt) {
        out.push_back(Sample{std::move(name), "messages", std::move(b), rt});
    };

    ProvisionerAd ada;
    add("provisioner_ad", ada.encode(), &round_trip<ProvisionerAd>);
    ProvisionerAd ada2;
    ada2.versions = {1, 2, 255};
    ada2.modes = kModeSealed | kModeField;
    ada2.device_keys_known = true;
    add("provisioner_ad_all", ada2.encode(), &round_trip<ProvisionerAd>);

    DeviceAd adb;
    adb.modes = kModeSealed | kModeField;
    adb.owner = OwnerState::owned;
    add("device_ad", adb.encode(), &round_trip<DeviceAd>);

    PairRequest m1;
    m1.sid = pattern<kSidBytes>(0x01);
    m1.ya = pattern<32>(0x80);
    m1.ada = ada2.encode();
    add("pair_request", m1.encode(), &round_trip<PairRequest>);

    PairResponse m2;
    m2.yb = pattern<32>(0x90);
    m2.adb = adb.encode();
    m2.tb = pattern<kConfirmTagBytes>(0xa0);
    add("pair_response", m2.encode(), &round_trip<PairResponse>);
    m2.record = pattern_bytes(180, 0x33);
    add("pair_response_keys", m2.encode(), &round_trip<PairResponse>);

    Authorise m3;
    m3.ta = pattern<kConfirmTagBytes>(0xc0);
    m3.record = pattern_bytes(900, 0x05);
    add("authorise", m3.encode(), &round_trip<Authorise>);

    Record rec;
    rec.record = pattern_bytes(300, 0x07);
    add("record", rec.encode(), &round_trip<Record>);

    add("error_backoff", ErrorMessage{ErrorCode::backoff, 30}.encode(), &round_trip<ErrorMessage>);
    add("error_auth_failed", ErrorMessage{ErrorCode::auth_failed, 0}.encode(), &round_trip<ErrorMessage>);

    DeviceKeys dk{k.device.identity.public_key, k.device.box.public_key, k.device.box_signature, std::nullopt};
    add("device_keys", dk.encode(), &round_trip<DeviceKeys>);
    dk.attestation = attestation();
    add("device_keys_attested", dk.encode(), &round_trip<DeviceKeys>);

    ProvisionerPayload first;
    first.transcript_signature = pattern<64>(0x50);
    first.token = token();
    first.operator_certificate = certificate();
    first.request = Request{Operation::deliver_sealed, bundle()};
    add("provisioner_payload_first", first.encode(), &round_trip<ProvisionerPayload>);
    ProvisionerPayload later;
    later.request = Request{Operation::query, std::nullopt};
    add("provisioner_payload_query", later.encode(), &round_trip<ProvisionerPayload>);
    ProvisionerPayload command;
    command.request = Request{Operation::reconfigure,
                              sign_owner_command(k.op_sign, owner_command(OwnerCommandKind::reconfigure,
                                                                          settings().encode(), 7))};
    add("provisioner_payload_owner_command", command.encode(), &round_trip<ProvisionerPayload>);

    DevicePayload delivered;
    delivered.transcript_signature = pattern<64>(0x60);
    delivered.response.receipt = receipt(false);
    add("device_payload_receipt", delivered.encode(), &round_trip<DevicePayload>);
    DevicePayload field;
    field.response.receipt = receipt(true);
    add("device_payload_field_receipt", field.encode(), &round_trip<DevicePayload>);

    DevicePayload info;
    DeviceInfo di;
    di.device = k.device.id;
    di.owner_state = OwnerState::owned;
    di.owner_key_hash = digest(k.op_sign.public_key);
    di.owner_counter = 7;
    di.provisioned = true;
    di.bundle = BundleId{pattern<16>(0xb0)};
    di.profile = test_profile();
    di.settings = settings();
    di.software = "credprov-agent 0.1.0";
    info.response.info = di;
    add("device_payload_info", info.encode(), &round_trip<DevicePayload>);
    DevicePayload bare_info;
    DeviceInfo unprovisioned;
    unprovisioned.device = k.device.id;
    unprovisioned.software = "credprov-agent 0.1.0";
    bare_info.response.info = unprovisioned;
    add("device_payload_info_unprovisioned", bare_info.encode(), &round_trip<DevicePayload>);

    DevicePayload diag;
    diag.response.diagnostics = {{Diagnostic::self_test, true, "ok"}, {Diagnostic::aka_self_check, false, "no SIM"}};
    diag.response.counter = 8;
    add("device_payload_diagnostics", diag.encode(), &round_trip<DevicePayload>);

    DevicePayload failure;
    failure.response = Response::failure(make_error(ErrorCode::not_authorised, "authorisation token does not allow query"));
    add("device_payload_failure", failure.encode(), &round_trip<DevicePayload>);
    return out;
}

inline std::vector<Sample> signed_object_samples() {
    const Keys& k = keys();
    std::vector<Sample> out;
    auto add = [&out](std::string name, Bytes b, RoundTrip rt) {
        out.push_back(Sample{std::move(name), "signed_objects", std::move(b), rt});
    };
    add("signed_certificate", certificate().encode(), &round_trip<SignedObject>);
    add("signed_token", token().encode(), &round_trip<SignedObject>);
    add("signed_bundle", bundle().encode(), &round_trip<SignedObject>);
    add("signed_field_authorisation", field_authorisation().encode(), &round_trip<SignedObject>);

    add("operator_keys", k.operator_keys().encode(), &round_trip<OperatorKeys>);
    add("token_device", token_for_device().encode(), &round_trip<AuthorisationToken>);
    add("token_prefix", token_for_prefix().encode(), &round_trip<AuthorisationToken>);
    add("bundle_body", bundle().body, &round_trip<CredentialBundle>);
    add("field_authorisation_body", field_authorisation_content().encode(), &round_trip<FieldAuthorisation>);
    add("owner_deprovision", owner_command(OwnerCommandKind::deprovision, {}, 3).encode(), &round_trip<OwnerCommand>);
    add("owner_reconfigure", owner_command(OwnerCommandKind::reconfigure, settings().encode(), 4).encode(),
        &round_trip<OwnerCommand>);
    add("owner_diagnose",
        owner_command(OwnerCommandKind::diagnose, encode_diagnostics({Diagnostic::self_test, Diagnostic::store_check}), 5)
            .encode(),
        &round_trip<OwnerCommand>);
    add("owner_transfer", owner_command(OwnerCommandKind::transfer, k.operator_keys().encode(), 6).encode(),
        &round_trip<OwnerCommand>);
    add("receipt", receipt(false).encode(), &round_trip<Receipt>);
    add("receipt_field_keys", receipt(true).encode(), &round_trip<Receipt>);
    add("device_settings", settings().encode(), &round_trip<DeviceSettings>);
    add("device_settings_empty", DeviceSettings{}.encode(), &round_trip<DeviceSettings>);
    add("diagnostics",
        encode_diagnostics({Diagnostic::self_test, Diagnostic::store_check, Diagnostic::aka_self_check,
                            Diagnostic::transport_info}),
        &round_trip_diagnostics);
    return out;
}

inline std::vector<Sample> all_samples() {
    auto all = message_samples();
    for (auto& s : signed_object_samples()) all.push_back(std::move(s));
    return all;
}

// ---- device-session fuzz input ------------------------------------------------

// The device-session fuzzer reads up to three messages: each of the first two
// is prefixed by its length (2 bytes, big-endian); the last one takes the rest.
inline void append_framed(Bytes& out, ByteView message) {
    out.push_back(static_cast<std::uint8_t>(message.size() >> 8));
    out.push_back(static_cast<std::uint8_t>(message.size() & 0xff));
    append(out, message);
}

inline std::vector<ByteView> split_session_input(ByteView in) {
    std::vector<ByteView> out;
    while (out.size() < 2 && in.size() >= 2) {
        const std::size_t n = (static_cast<std::size_t>(in[0]) << 8) | in[1];
        if (n > in.size() - 2) break;  // no valid prefix: the rest is the last message
        in = in.subspan(2);
        out.push_back(in.first(n));
        in = in.subspan(n);
        if (in.empty()) return out;
    }
    out.push_back(in);
    return out;
}

}  // namespace credprov::testing::samples
