// Decoder properties of every message, record payload and signed object:
// a valid encoding decodes to what was encoded and re-encodes to the same
// bytes; every strict prefix fails with a typed error; a corrupted encoding
// either fails or is itself canonical; size bounds hold. The samples come
// from tests/support/codec_samples.hpp (fixed keys, deterministic bytes).
#include <doctest/doctest.h>

#include <random>
#include <sstream>
#include <string>

#include "codec_samples.hpp"

using namespace credprov;
namespace samples = credprov::testing::samples;
using credprov::testing::kNow;
using credprov::testing::test_profile;

namespace {

template <class T>
std::string outcome(const Result<T>& r) {
    if (r.ok()) return "ok";
    return std::string(to_string(r.error().code));
}

// A corrupted encoding is acceptable if the decoder refuses it or if it is
// itself the canonical encoding of what it decodes to.
struct CorruptionReport {
    std::size_t tried{0};
    std::size_t accepted{0};
    std::vector<std::string> non_canonical;

    void check(const samples::Sample& s, const Bytes& mutated, std::size_t pos) {
        ++tried;
        auto rt = s.round_trip(mutated);
        if (!rt) {
            // A refusal must carry a cause and a message.
            if (rt.error().message.empty()) non_canonical.push_back(s.name + ": empty error message");
            return;
        }
        ++accepted;
        if (*rt != mutated) {
            std::ostringstream o;
            o << s.name << " @" << pos << ": " << to_hex(mutated);
            non_canonical.push_back(o.str());
        }
    }
};

}  // namespace

TEST_CASE("decode: every sample message and object decodes and re-encodes to identical bytes") {
    const auto all = samples::all_samples();
    CHECK(all.size() >= 39);
    for (const auto& s : all) {
        CAPTURE(s.name);
        auto rt = s.round_trip(s.bytes);
        REQUIRE_MESSAGE(rt.ok(), outcome(rt), ": ", rt.ok() ? "" : rt.error().message);
        CHECK(*rt == s.bytes);
    }
}

TEST_CASE("decode: every strict prefix of every sample fails with a typed decode error") {
    for (const auto& s : samples::all_samples()) {
        CAPTURE(s.name);
        for (std::size_t n = 0; n < s.bytes.size(); ++n) {
            auto rt = s.round_trip(ByteView(s.bytes).first(n));
            // Truncation is malformed, except where a decoder reports any failure
            // to read an enumerated value (operation, owner command kind,
            // diagnostic) as unknown_critical.
            const bool typed = !rt.ok() && !rt.error().message.empty() &&
                               (rt.error().code == ErrorCode::malformed || rt.error().code == ErrorCode::unknown_critical);
            if (!typed) {
                FAIL_CHECK("prefix of length ", n, " gave ", outcome(rt));
                break;
            }
        }
    }
}

TEST_CASE("decode: every single-bit flip of every sample fails or decodes to its own canonical encoding") {
    CorruptionReport report;
    for (const auto& s : samples::all_samples()) {
        for (std::size_t pos = 0; pos < s.bytes.size(); ++pos) {
            for (unsigned bit = 0; bit < 8; ++bit) {
                Bytes m = s.bytes;
                m[pos] = static_cast<std::uint8_t>(m[pos] ^ (1U << bit));
                report.check(s, m, pos);
            }
        }
    }
    CHECK(report.accepted > 0);  // flips inside opaque bytes (keys, records) still decode
    for (std::size_t i = 0; i < report.non_canonical.size() && i < 10; ++i) FAIL_CHECK(report.non_canonical[i]);
    CHECK(report.non_canonical.empty());
}

TEST_CASE("decode: random byte replacements fail or decode to their own canonical encoding") {
    std::mt19937 rng(0x5eed);
    CorruptionReport report;
    for (const auto& s : samples::all_samples()) {
        for (int i = 0; i < 400; ++i) {
            Bytes m = s.bytes;
            const std::size_t pos = rng() % m.size();
            m[pos] = static_cast<std::uint8_t>(rng() & 0xff);
            if (i % 4 == 0) {  // and sometimes a second byte
                const std::size_t pos2 = rng() % m.size();
                m[pos2] = static_cast<std::uint8_t>(rng() & 0xff);
            }
            report.check(s, m, pos);
        }
    }
    for (std::size_t i = 0; i < report.non_canonical.size() && i < 10; ++i) FAIL_CHECK(report.non_canonical[i]);
    CHECK(report.non_canonical.empty());
}

// ---- size bounds -----------------------------------------------------------------

TEST_CASE("decode: top-level messages over 4096 bytes are oversized") {
    for (const auto& s : samples::message_samples()) {
        auto type = peek_type(s.bytes);
        if (!type) continue;  // payloads and ADs are not top-level messages
        CAPTURE(s.name);
        Bytes padded = s.bytes;
        padded.resize(kMaxMessageBytes, 0x00);
        CHECK(outcome(s.round_trip(padded)) == "malformed");  // at the limit: only trailing bytes are wrong
        padded.push_back(0x00);
        CHECK(outcome(s.round_trip(padded)) == "oversized");
        padded.resize(1 << 16, 0x00);
        CHECK(outcome(s.round_trip(padded)) == "oversized");
    }
}

TEST_CASE("decode: a record message of exactly 4096 bytes decodes, one byte more is oversized") {
    // {0: 4, 1: bstr(n)} with a 2-byte length: 7 bytes of overhead.
    Record rec;
    rec.record = Bytes(kMaxMessageBytes - 7, 0x5a);
    const Bytes at_limit = rec.encode();
    REQUIRE(at_limit.size() == kMaxMessageBytes);
    auto back = Record::decode(at_limit);
    REQUIRE(back.ok());
    CHECK(back->record == rec.record);
    rec.record.push_back(0x5a);
    CHECK(outcome(Record::decode(rec.encode())) == "oversized");
}

TEST_CASE("decode: associated data over 64 bytes and signed bodies over 1024 bytes are oversized") {
    ProvisionerAd ada;
    ada.versions = {1, 2, 3, 4, 5, 6, 7, 8};
    REQUIRE(ProvisionerAd::decode(ada.encode()).ok());
    Bytes long_ad = ada.encode();
    long_ad.resize(65, 0x00);
    CHECK(outcome(ProvisionerAd::decode(long_ad)) == "oversized");
    CHECK(outcome(DeviceAd::decode(long_ad)) == "oversized");

    SignedObject big = samples::certificate();
    big.body.resize(SignedObject::kMaxBody + 1, 0x00);
    CHECK(outcome(SignedObject::decode(big.encode())) == "oversized");
    ProvisionerPayload p;
    p.token = big;
    CHECK(outcome(ProvisionerPayload::decode(p.encode())) == "oversized");
}

// ---- field by field --------------------------------------------------------------

TEST_CASE("decode: handshake messages decode to the fields that were encoded") {
    PairRequest m1;
    m1.sid = samples::pattern<kSidBytes>(0x01);
    m1.ya = samples::pattern<32>(0x80);
    m1.ada = ProvisionerAd{}.encode();
    auto d1 = PairRequest::decode(m1.encode());
    REQUIRE(d1.ok());
    CHECK(d1->sid == m1.sid);
    CHECK(d1->ya == m1.ya);
    CHECK(d1->ada == m1.ada);

    PairResponse m2;
    m2.yb = samples::pattern<32>(0x90);
    m2.adb = DeviceAd{}.encode();
    m2.tb = samples::pattern<kConfirmTagBytes>(0xa0);
    auto d2 = PairResponse::decode(m2.encode());
    REQUIRE(d2.ok());
    CHECK(d2->yb == m2.yb);
    CHECK(d2->adb == m2.adb);
    CHECK(d2->tb == m2.tb);
    CHECK_FALSE(d2->record.has_value());
    m2.record = samples::pattern_bytes(40, 0x33);
    auto d2r = PairResponse::decode(m2.encode());
    REQUIRE(d2r.ok());
    REQUIRE(d2r->record.has_value());
    CHECK(*d2r->record == *m2.record);

    Authorise m3;
    m3.ta = samples::pattern<kConfirmTagBytes>(0xc0);
    m3.record = samples::pattern_bytes(64, 0x05);
    auto d3 = Authorise::decode(m3.encode());
    REQUIRE(d3.ok());
    CHECK(d3->ta == m3.ta);
    CHECK(d3->record == m3.record);

    auto e = ErrorMessage::decode(ErrorMessage{ErrorCode::backoff, 30}.encode());
    REQUIRE(e.ok());
    CHECK(e->code == ErrorCode::backoff);
    CHECK(e->retry_after_s == 30);

    ProvisionerAd ada;
    ada.versions = {1, 9};
    ada.modes = kModeSealed | kModeField;
    ada.device_keys_known = true;
    auto da = ProvisionerAd::decode(ada.encode());
    REQUIRE(da.ok());
    CHECK(da->versions == ada.versions);
    CHECK(da->modes == ada.modes);
    CHECK(da->device_keys_known);

    DeviceAd adb;
    adb.modes = kModeField;
    adb.owner = OwnerState::pinned;
    auto db = DeviceAd::decode(adb.encode());
    REQUIRE(db.ok());
    CHECK(db->version == kProtocolVersion);
    CHECK(db->modes == kModeField);
    CHECK(db->owner == OwnerState::pinned);
}

TEST_CASE("decode: record payloads decode to the fields that were encoded") {
    const auto& k = samples::keys();
    DeviceKeys keys{k.device.identity.public_key, k.device.box.public_key, k.device.box_signature,
                    samples::attestation()};
    auto dk = DeviceKeys::decode(keys.encode());
    REQUIRE(dk.ok());
    CHECK(dk->identity == keys.identity);
    CHECK(dk->box == keys.box);
    CHECK(dk->box_signature == keys.box_signature);
    REQUIRE(dk->attestation.has_value());
    CHECK(dk->attestation->encode() == keys.attestation->encode());

    ProvisionerPayload first;
    first.transcript_signature = samples::pattern<64>(0x50);
    first.token = samples::token();
    first.operator_certificate = samples::certificate();
    first.request = Request{Operation::deliver_sealed, samples::bundle()};
    auto dp = ProvisionerPayload::decode(first.encode());
    REQUIRE(dp.ok());
    CHECK(dp->transcript_signature == first.transcript_signature);
    CHECK(dp->token->encode() == first.token->encode());
    CHECK(dp->operator_certificate->encode() == first.operator_certificate->encode());
    CHECK(dp->request.op == Operation::deliver_sealed);
    CHECK(dp->request.object->encode() == first.request.object->encode());

    DevicePayload reply;
    reply.transcript_signature = samples::pattern<64>(0x60);
    reply.response.receipt = samples::receipt(true);
    DeviceInfo info;
    info.device = k.device.id;
    info.owner_state = OwnerState::owned;
    info.owner_key_hash = digest(k.op_sign.public_key);
    info.owner_counter = 7;
    info.provisioned = true;
    info.bundle = BundleId{samples::pattern<16>(0xb0)};
    info.profile = test_profile();
    info.settings = samples::settings();
    info.software = "credprov-agent 0.1.0";
    reply.response.info = info;
    reply.response.diagnostics = {{Diagnostic::store_check, false, "journal replayed"}};
    reply.response.counter = 12;
    auto dr = DevicePayload::decode(reply.encode());
    REQUIRE(dr.ok());
    const Response& r = dr->response;
    CHECK(dr->transcript_signature == reply.transcript_signature);
    CHECK(r.ok);
    REQUIRE(r.receipt.has_value());
    CHECK(r.receipt->encode() == reply.response.receipt->encode());
    REQUIRE(r.info.has_value());
    CHECK(r.info->device == info.device);
    CHECK(r.info->owner_state == OwnerState::owned);
    CHECK(r.info->owner_key_hash == info.owner_key_hash);
    CHECK(r.info->owner_counter == 7);
    CHECK(r.info->provisioned);
    CHECK(r.info->bundle == info.bundle);
    CHECK(r.info->profile == info.profile);
    CHECK(r.info->settings == info.settings);
    CHECK(r.info->software == info.software);
    REQUIRE(r.diagnostics.size() == 1);
    CHECK(r.diagnostics[0].id == Diagnostic::store_check);
    CHECK_FALSE(r.diagnostics[0].ok);
    CHECK(r.diagnostics[0].detail == "journal replayed");
    CHECK(r.counter == std::optional<std::uint64_t>(12));

    DevicePayload failure;
    failure.response = Response::failure(make_error(ErrorCode::expired, "credential has expired"));
    auto df = DevicePayload::decode(failure.encode());
    REQUIRE(df.ok());
    CHECK_FALSE(df->response.ok);
    CHECK(df->response.status == ErrorCode::expired);
    CHECK(df->response.message == "credential has expired");
}

TEST_CASE("decode: signed objects and their bodies decode to the fields that were encoded") {
    const auto& k = samples::keys();
    auto ok = OperatorKeys::decode(k.operator_keys().encode());
    REQUIRE(ok.ok());
    CHECK(*ok == k.operator_keys());
    auto cert = verify_operator_certificate(*SignedObject::decode(samples::certificate().encode()), k.root.public_key);
    REQUIRE(cert.ok());
    CHECK(*cert == k.operator_keys());

    const AuthorisationToken tok = samples::token_for_device();
    auto t = AuthorisationToken::decode(tok.encode());
    REQUIRE(t.ok());
    CHECK(t->provisioner_key == tok.provisioner_key);
    CHECK(t->device == tok.device);
    CHECK(t->device_prefix.empty());
    CHECK(t->operations == tok.operations);
    CHECK(t->not_before == tok.not_before);
    CHECK(t->not_after == tok.not_after);
    auto tp = AuthorisationToken::decode(samples::token_for_prefix().encode());
    REQUIRE(tp.ok());
    CHECK_FALSE(tp->device.has_value());
    CHECK(tp->device_prefix == samples::token_for_prefix().device_prefix);
    CHECK(tp->covers(k.device.id));
    CHECK(verify_token(samples::token(), k.op_sign.public_key).ok());

    auto b = verify_bundle(samples::bundle(), k.op_sign.public_key);
    REQUIRE(b.ok());
    const CredentialBundle want = samples::bundle_content();
    CHECK(b->id == want.id);
    CHECK(b->device == want.device);
    CHECK(b->epoch == want.epoch);
    CHECK(b->profile == want.profile);
    CHECK(b->issued_at == want.issued_at);
    CHECK(b->not_after == want.not_after);
    auto opened = open_keys(context::seal_bundle, k.device.box, k.op_box.public_key, k.device.box.public_key,
                            b->encode_header(), b->sealed);
    REQUIRE(opened.ok());
    CHECK(Bytes(opened->k.data(), opened->k.data() + 16) == samples::pattern_bytes(16, 0x10));

    auto fa = verify_field_authorisation(samples::field_authorisation(), k.op_sign.public_key);
    REQUIRE(fa.ok());
    CHECK(fa->id == samples::field_authorisation_content().id);
    CHECK(fa->provisioner_key_hash == digest(k.provisioner.public_key));
    CHECK(fa->profile == test_profile());

    const OwnerCommand cmd = samples::owner_command(OwnerCommandKind::reconfigure, samples::settings().encode(), 4);
    auto c = OwnerCommand::decode(cmd.encode());
    REQUIRE(c.ok());
    CHECK(c->kind == OwnerCommandKind::reconfigure);
    CHECK(c->device == k.device.id);
    CHECK(c->counter == 4);
    CHECK(c->issued_at == kNow);
    CHECK(c->payload == cmd.payload);
    auto s = DeviceSettings::decode(c->payload);
    REQUIRE(s.ok());
    CHECK(*s == samples::settings());

    const Receipt rc = samples::receipt(true);
    auto r = Receipt::decode(rc.encode());
    REQUIRE(r.ok());
    CHECK(r->object_id == rc.object_id);
    CHECK(r->result == ReceiptResult::committed);
    CHECK(r->field_keys == rc.field_keys);
    CHECK(r->signature == rc.signature);
    CHECK(verify_receipt(*r, k.device.identity.public_key, k.device.id, samples::bundle().hash(),
                         digest(k.provisioner.public_key))
              .ok());

    auto d = decode_diagnostics(encode_diagnostics({Diagnostic::transport_info, Diagnostic::self_test}));
    REQUIRE(d.ok());
    CHECK(*d == std::vector<Diagnostic>{Diagnostic::transport_info, Diagnostic::self_test});
}

// ---- encodings the encoder never produces ---------------------------------------

TEST_CASE("decode: an error message with an explicit zero retry-after is not canonical") {
    // ErrorMessage::encode() omits key 2 when retry_after_s is 0, so {.., 2: 0}
    // is a second encoding of the same message.
    CHECK(ErrorMessage::decode(ErrorMessage{ErrorCode::backoff, 1}.encode()).ok());
    CHECK(outcome(ErrorMessage::decode(Bytes{0xa3, 0x00, 0x05, 0x01, 0x11, 0x02, 0x00})) == "malformed");
}

TEST_CASE("decode: a device payload with an explicit empty message is not canonical") {
    // DevicePayload::encode() omits key 3 when the message is empty.
    CHECK(DevicePayload::decode(Bytes{0xa2, 0x02, 0x0b, 0x03, 0x61, 0x78}).ok());
    CHECK(outcome(DevicePayload::decode(Bytes{0xa2, 0x02, 0x0b, 0x03, 0x60})) == "malformed");
}
