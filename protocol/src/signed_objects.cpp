// Encodings, signatures and sealing of credprov's signed objects.
// Never logs. Plaintext K/OPc only ever in Secret<> or wiped temporaries.
#include "credprov/protocol/signed_objects.hpp"

#include "credprov/protocol/codec_fields.hpp"

#include <algorithm>
#include <array>
#include <cstring>

#include <sodium.h>

namespace credprov {

using cbor::bit;
using cbor::handled;
using cbor::read_fixed;
using cbor::read_parsed;
using cbor::MapBuilder;
using cbor::Reader;
using cbor::Writer;

namespace {

constexpr std::uint64_t kMaxTime = (std::uint64_t{1} << 40);  // far beyond any real clock
constexpr std::uint64_t kMaxSqn = (std::uint64_t{1} << 48) - 1;

template <class F>
Status decode_exact(ByteView body, std::size_t max_entries, std::uint64_t required, std::string_view what,
                    F&& on_field) {
    Reader r(body);
    std::uint64_t seen = 0;
    if (auto s = cbor::read_map(r, max_entries, on_field, &seen); !s) return s;
    if (auto s = r.finish(); !s) return s;
    return cbor::require_fields(seen, required, what);
}

Status check_version(Reader& v) {
    auto ver = v.uint();
    if (!ver) return ver.error();
    if (*ver != kProtocolVersion) return make_error(ErrorCode::unsupported_version, "unsupported object version");
    return {};
}

// Times are seconds since the Unix epoch, bounded far beyond any real clock.
Status read_time(Reader& v, std::uint64_t& out) { return cbor::read_u64(v, out, kMaxTime); }

std::uint64_t profile_bits(std::uint64_t first_key) {
    std::uint64_t b = 0;
    for (std::uint64_t k = first_key; k < first_key + 5; ++k) b |= bit(k);
    return b;
}

}  // namespace

void write_profile(MapBuilder& m, std::uint64_t first_key, const SubscriberProfile& p) {
    m.field(first_key).text(p.imsi.str());
    m.field(first_key + 1).bytes(p.amf);
    m.field(first_key + 2).uint(p.sqn);
    m.field(first_key + 3).text(p.plmn.str());
    m.field(first_key + 4).text(p.network_name.str());
}

// Reads profile field `key - first_key` (0..4); returns false if not a profile key.
Result<bool> read_profile_field(std::uint64_t key, std::uint64_t first_key, Reader& v, SubscriberProfile& p) {
    if (key < first_key || key > first_key + 4) return false;
    switch (key - first_key) {
        case 0: return handled(read_parsed(v, 15, p.imsi, Imsi::parse));
        case 1: return handled(read_fixed(v, p.amf));
        case 2: return handled(cbor::read_u64(v, p.sqn, kMaxSqn));
        case 3: return handled(read_parsed(v, 6, p.plmn, Plmn::parse));
        default: return handled(read_parsed(v, NetworkName::kMaxLength, p.network_name, NetworkName::parse));
    }
}

Digest digest(ByteView data) {
    const auto h = crypto::sha512(data);
    Digest d{};
    std::copy_n(h.begin(), d.size(), d.begin());
    return d;
}

// ---- SignedObject ---------------------------------------------------------

void SignedObject::encode_into(Writer& w) const {
    w.array(2).bytes(body).bytes(signature);
}

Bytes SignedObject::encode() const {
    Writer w;
    encode_into(w);
    return w.take();
}

Result<SignedObject> SignedObject::read(Reader& r) {
    auto n = r.array(2, 2);
    if (!n) return n.error();
    auto body = r.bytes(1, kMaxBody);
    if (!body) return body.error();
    auto sig = r.fixed_bytes<crypto::kSignatureBytes>();
    if (!sig) return sig.error();
    SignedObject o;
    o.body.assign(body->begin(), body->end());
    o.signature = *sig;
    return o;
}

Result<SignedObject> SignedObject::decode(ByteView bytes) {
    Reader r(bytes);
    auto o = read(r);
    if (!o) return o;
    if (auto s = r.finish(); !s) return s.error();
    return o;
}

SignedObject sign_body(const crypto::SigningKey& key, std::string_view ctx, Bytes body) {
    SignedObject o;
    o.signature = crypto::sign(key, ctx, body);
    o.body = std::move(body);
    return o;
}

Status verify_body(const SignedObject& obj, const crypto::SignPublicKey& key, std::string_view ctx) {
    return crypto::verify(key, ctx, obj.body, obj.signature);
}

// ---- OperatorKeys ---------------------------------------------------------

Bytes OperatorKeys::encode() const {
    MapBuilder m;
    m.field(0).uint(kProtocolVersion);
    m.field(1).bytes(sign_key);
    m.field(2).bytes(box_key);
    m.field(3).text(name);
    return m.finish();
}

Result<OperatorKeys> OperatorKeys::decode(ByteView body) {
    OperatorKeys k;
    auto s = decode_exact(body, 8, bit(0) | bit(1) | bit(2) | bit(3), "operator certificate",
                          [&](std::uint64_t key, Reader& v) -> Result<bool> {
                              switch (key) {
                                  case 0: return handled(check_version(v));
                                  case 1: return handled(read_fixed(v, k.sign_key));
                                  case 2: return handled(read_fixed(v, k.box_key));
                                  case 3: {
                                      NetworkName n;  // same character rules as a network name
                                      auto st = read_parsed(v, NetworkName::kMaxLength, n, NetworkName::parse);
                                      if (st) k.name = n.str();
                                      return handled(st);
                                  }
                                  default: return false;
                              }
                          });
    if (!s) return s.error();
    return k;
}

SignedObject certify_operator(const crypto::SigningKey& root, const OperatorKeys& keys) {
    return sign_body(root, context::operator_certificate, keys.encode());
}

Result<OperatorKeys> verify_operator_certificate(const SignedObject& cert, const crypto::SignPublicKey& root) {
    if (!verify_body(cert, root, context::operator_certificate)) {
        return make_error(ErrorCode::untrusted_operator, "operator key is not certified by the pinned provisioning root");
    }
    return OperatorKeys::decode(cert.body);
}

// ---- AuthorisationToken ---------------------------------------------------

bool AuthorisationToken::allows(Operation op) const noexcept {
    return std::find(operations.begin(), operations.end(), op) != operations.end();
}

bool AuthorisationToken::covers(const DeviceId& id) const noexcept {
    if (device) return *device == id;
    return has_prefix(id, device_prefix);
}

Bytes AuthorisationToken::encode() const {
    MapBuilder m;
    m.field(0).uint(kProtocolVersion);
    m.field(1).bytes(provisioner_key);
    if (device) m.field(2).bytes(device->bytes);
    else m.field(3).bytes(device_prefix);
    auto& ops = m.field(4).array(operations.size());
    for (auto op : operations) ops.uint(static_cast<std::uint64_t>(op));
    m.field(5).uint(not_before);
    m.field(6).uint(not_after);
    return m.finish();
}

Result<AuthorisationToken> AuthorisationToken::decode(ByteView body) {
    AuthorisationToken t;
    std::uint64_t seen = 0;
    Reader r(body);
    auto s = cbor::read_map(
        r, 8,
        [&](std::uint64_t key, Reader& v) -> Result<bool> {
            switch (key) {
                case 0: return handled(check_version(v));
                case 1: return handled(read_fixed(v, t.provisioner_key));
                case 2: {
                    DeviceId d;
                    auto st = read_fixed(v, d.bytes);
                    if (st) t.device = d;
                    return handled(st);
                }
                case 3: {
                    auto b = v.bytes(1, DeviceId::kBytes);
                    if (!b) return b.error();
                    t.device_prefix.assign(b->begin(), b->end());
                    return true;
                }
                case 4: {
                    auto n = v.array(1, kMaxOperation);
                    if (!n) return n.error();
                    for (std::size_t i = 0; i < *n; ++i) {
                        auto op = v.uint(1, kMaxOperation);
                        if (!op) return make_error(ErrorCode::unknown_critical, "token names an unknown operation");
                        const auto o = static_cast<Operation>(*op);
                        if (t.allows(o)) return make_error(ErrorCode::malformed, "token lists an operation twice");
                        t.operations.push_back(o);
                    }
                    return true;
                }
                case 5: return handled(read_time(v, t.not_before));
                case 6: return handled(read_time(v, t.not_after));
                default: return false;
            }
        },
        &seen);
    if (!s) return s.error();
    if (auto f = r.finish(); !f) return f.error();
    if (auto f = cbor::require_fields(seen, bit(0) | bit(1) | bit(4) | bit(5) | bit(6), "token"); !f) return f.error();
    const bool has_device = (seen & bit(2)) != 0;
    const bool has_prefix_field = (seen & bit(3)) != 0;
    if (has_device == has_prefix_field) {
        return make_error(ErrorCode::malformed, "token must name exactly one of device id and device-id prefix");
    }
    if (t.not_after < t.not_before) return make_error(ErrorCode::malformed, "token validity ends before it starts");
    return t;
}

SignedObject issue_token(const crypto::SigningKey& operator_key, const AuthorisationToken& token) {
    return sign_body(operator_key, context::authorisation_token, token.encode());
}

Result<AuthorisationToken> verify_token(const SignedObject& token, const crypto::SignPublicKey& issuer) {
    if (auto s = verify_body(token, issuer, context::authorisation_token); !s) {
        return make_error(ErrorCode::not_owner, "authorisation token is not signed by the device's operator");
    }
    return AuthorisationToken::decode(token.body);
}

// ---- sealing --------------------------------------------------------------

SubscriberKeys SubscriberKeys::random() {
    SubscriberKeys k;
    crypto::random_bytes(k.k.span());
    crypto::random_bytes(k.opc.span());
    return k;
}

namespace {

void derive_seal_key(std::string_view label, const SealShared& shared, const crypto::BoxPublicKey& operator_box,
                     const crypto::BoxPublicKey& device_box, ByteView header, std::span<std::uint8_t, 32> key) {
    const auto salt = crypto::sha512(header);
    WipedArray<64> prk;
    crypto::hkdf_extract(salt, shared.span(), prk.span());
    Bytes info;
    append(info, as_bytes(label));
    append(info, operator_box);
    append(info, device_box);
    crypto::hkdf_expand(prk.span(), info, key);
}

constexpr std::array<std::uint8_t, crypto::kAeadNonceBytes> kZeroNonce{};  // one key per header

// The shared value of the caller's box key with the other side's.
Result<SealShared> shared_with_other(const crypto::BoxKey& mine, const crypto::BoxPublicKey& operator_box,
                                     const crypto::BoxPublicKey& device_box) {
    return seal_shared(mine, (mine.public_key == operator_box) ? device_box : operator_box);
}

}  // namespace

Result<SealShared> seal_shared(const crypto::BoxKey& mine, const crypto::BoxPublicKey& peer) {
    SealShared shared;
    if (crypto_scalarmult_curve25519(shared.data(), mine.secret_key.data(), peer.data()) != 0) {
        return make_error(ErrorCode::crypto, "X25519 with a low-order public key");
    }
    return shared;
}

Result<SealedKeys> seal_keys(std::string_view label, const crypto::BoxKey& mine, const crypto::BoxPublicKey& operator_box,
                             const crypto::BoxPublicKey& device_box, ByteView header, const SubscriberKeys& keys) {
    auto shared = shared_with_other(mine, operator_box, device_box);
    if (!shared) return shared.error();
    return seal_keys(label, *shared, operator_box, device_box, header, keys);
}

Result<SealedKeys> seal_keys(std::string_view label, const SealShared& shared, const crypto::BoxPublicKey& operator_box,
                             const crypto::BoxPublicKey& device_box, ByteView header, const SubscriberKeys& keys) {
    WipedArray<32> key;
    derive_seal_key(label, shared, operator_box, device_box, header, key.span());
    WipedArray<32> plain;
    std::memcpy(plain.data(), keys.k.data(), 16);
    std::memcpy(plain.data() + 16, keys.opc.data(), 16);
    SealedKeys out{};
    unsigned long long n = 0;
    crypto_aead_chacha20poly1305_ietf_encrypt(out.data(), &n, plain.data(), plain.size(), header.data(), header.size(),
                                              nullptr, kZeroNonce.data(), key.data());
    return out;
}

Result<SubscriberKeys> open_keys(std::string_view label, const crypto::BoxKey& mine, const crypto::BoxPublicKey& operator_box,
                                 const crypto::BoxPublicKey& device_box, ByteView header, const SealedKeys& sealed) {
    auto shared = shared_with_other(mine, operator_box, device_box);
    if (!shared) return shared.error();
    WipedArray<32> key;
    derive_seal_key(label, *shared, operator_box, device_box, header, key.span());
    WipedArray<32> plain;
    unsigned long long n = 0;
    if (crypto_aead_chacha20poly1305_ietf_decrypt(plain.data(), &n, nullptr, sealed.data(), sealed.size(),
                                                  header.data(), header.size(), kZeroNonce.data(), key.data()) != 0) {
        return make_error(ErrorCode::auth_failed, "sealed keys do not open with this device's key");
    }
    SubscriberKeys k;
    std::memcpy(k.k.data(), plain.data(), 16);
    std::memcpy(k.opc.data(), plain.data() + 16, 16);
    return k;
}

// ---- CredentialBundle -----------------------------------------------------

namespace {
void write_bundle_header(MapBuilder& m, const CredentialBundle& b) {
    m.field(0).uint(kProtocolVersion);
    m.field(1).bytes(b.id.bytes);
    m.field(2).bytes(b.device.bytes);
    m.field(3).uint(b.epoch);
    write_profile(m, 4, b.profile);  // keys 4..8
    m.field(9).uint(b.issued_at);
    m.field(10).uint(b.not_after);
}
}  // namespace

Bytes CredentialBundle::encode_header() const {
    MapBuilder m;
    write_bundle_header(m, *this);
    return m.finish();
}

Bytes CredentialBundle::encode() const {
    MapBuilder m;
    write_bundle_header(m, *this);
    m.field(11).bytes(sealed);
    return m.finish();
}

Result<CredentialBundle> CredentialBundle::decode(ByteView body) {
    CredentialBundle b;
    const std::uint64_t required = bit(0) | bit(1) | bit(2) | bit(3) | profile_bits(4) | bit(9) | bit(10) | bit(11);
    auto s = decode_exact(body, 16, required, "credential bundle", [&](std::uint64_t key, Reader& v) -> Result<bool> {
        if (auto p = read_profile_field(key, 4, v, b.profile); !p || *p) return p;
        switch (key) {
            case 0: return handled(check_version(v));
            case 1: return handled(read_fixed(v, b.id.bytes));
            case 2: return handled(read_fixed(v, b.device.bytes));
            case 3: return handled(cbor::read_u64(v, b.epoch));
            case 9: return handled(read_time(v, b.issued_at));
            case 10: return handled(read_time(v, b.not_after));
            case 11: return handled(read_fixed(v, b.sealed));
            default: return false;
        }
    });
    if (!s) return s.error();
    return b;
}

Result<SignedObject> issue_bundle(const crypto::SigningKey& operator_sign, const crypto::BoxKey& operator_box,
                                  const crypto::BoxPublicKey& device_box, CredentialBundle bundle,
                                  const SubscriberKeys& keys) {
    auto shared = seal_shared(operator_box, device_box);
    if (!shared) return shared.error();
    return issue_bundle(operator_sign, operator_box.public_key, *shared, device_box, std::move(bundle), keys);
}

Result<SignedObject> issue_bundle(const crypto::SigningKey& operator_sign, const crypto::BoxPublicKey& operator_box,
                                  const SealShared& shared, const crypto::BoxPublicKey& device_box, CredentialBundle bundle,
                                  const SubscriberKeys& keys) {
    auto sealed = seal_keys(context::seal_bundle, shared, operator_box, device_box, bundle.encode_header(), keys);
    if (!sealed) return sealed.error();
    bundle.sealed = *sealed;
    return sign_body(operator_sign, context::credential_bundle, bundle.encode());
}

Result<CredentialBundle> verify_bundle(const SignedObject& bundle, const crypto::SignPublicKey& issuer) {
    if (!verify_body(bundle, issuer, context::credential_bundle)) {
        return make_error(ErrorCode::not_owner, "credential bundle is not signed by the device's operator");
    }
    return CredentialBundle::decode(bundle.body);
}

// ---- FieldAuthorisation ---------------------------------------------------

Bytes FieldAuthorisation::encode() const {
    MapBuilder m;
    m.field(0).uint(kProtocolVersion);
    m.field(1).bytes(id.bytes);
    m.field(2).bytes(provisioner_key_hash);
    write_profile(m, 3, profile);  // keys 3..7
    m.field(8).uint(issued_at);
    m.field(9).uint(not_after);
    return m.finish();
}

Result<FieldAuthorisation> FieldAuthorisation::decode(ByteView body) {
    FieldAuthorisation a;
    const std::uint64_t required = bit(0) | bit(1) | bit(2) | profile_bits(3) | bit(8) | bit(9);
    auto s = decode_exact(body, 16, required, "field authorisation", [&](std::uint64_t key, Reader& v) -> Result<bool> {
        if (auto p = read_profile_field(key, 3, v, a.profile); !p || *p) return p;
        switch (key) {
            case 0: return handled(check_version(v));
            case 1: return handled(read_fixed(v, a.id.bytes));
            case 2: return handled(read_fixed(v, a.provisioner_key_hash));
            case 8: return handled(read_time(v, a.issued_at));
            case 9: return handled(read_time(v, a.not_after));
            default: return false;
        }
    });
    if (!s) return s.error();
    return a;
}

SignedObject issue_field_authorisation(const crypto::SigningKey& operator_key, const FieldAuthorisation& auth) {
    return sign_body(operator_key, context::field_authorisation, auth.encode());
}

Result<FieldAuthorisation> verify_field_authorisation(const SignedObject& auth, const crypto::SignPublicKey& issuer) {
    if (!verify_body(auth, issuer, context::field_authorisation)) {
        return make_error(ErrorCode::not_owner, "field authorisation is not signed by the device's operator");
    }
    return FieldAuthorisation::decode(auth.body);
}

// ---- Receipt --------------------------------------------------------------

Bytes ReceiptContent::encode_header() const {
    MapBuilder m;
    m.field(0).uint(kProtocolVersion);
    m.field(1).bytes(device.bytes);
    m.field(2).bytes(object_id.bytes);
    m.field(3).bytes(object_hash);
    m.field(4).bytes(provisioner_key_hash);
    m.field(5).uint(static_cast<std::uint64_t>(result));
    if (field_salt) m.field(6).bytes(*field_salt);
    return m.finish();
}

Bytes ReceiptContent::encode() const {
    MapBuilder m;
    m.field(0).uint(kProtocolVersion);
    m.field(1).bytes(device.bytes);
    m.field(2).bytes(object_id.bytes);
    m.field(3).bytes(object_hash);
    m.field(4).bytes(provisioner_key_hash);
    m.field(5).uint(static_cast<std::uint64_t>(result));
    if (field_salt) m.field(6).bytes(*field_salt);
    if (field_keys) m.field(7).bytes(*field_keys);
    return m.finish();
}

void Receipt::encode_into(Writer& w) const {
    MapBuilder m;
    m.field(1).bytes(object_id.bytes);
    m.field(2).uint(static_cast<std::uint64_t>(result));
    if (field_keys) m.field(3).bytes(*field_keys);
    m.field(4).bytes(signature);
    if (field_salt) m.field(5).bytes(*field_salt);
    m.finish_into(w);
}

Bytes Receipt::encode() const {
    Writer w;
    encode_into(w);
    return w.take();
}

Result<Receipt> Receipt::read(Reader& r) {
    Receipt rc;
    std::uint64_t seen = 0;
    auto s = cbor::read_map(
        r, 6,
        [&](std::uint64_t key, Reader& v) -> Result<bool> {
            switch (key) {
                case 1: return handled(read_fixed(v, rc.object_id.bytes));
                case 2: {
                    auto x = v.uint(0, 1);
                    if (!x) return x.error();
                    rc.result = static_cast<ReceiptResult>(*x);
                    return true;
                }
                case 3: {
                    SealedKeys k{};
                    auto st = read_fixed(v, k);
                    if (st) rc.field_keys = k;
                    return handled(st);
                }
                case 4: return handled(read_fixed(v, rc.signature));
                case 5: {
                    ByteArray<16> salt{};
                    auto st = read_fixed(v, salt);
                    if (st) rc.field_salt = salt;
                    return handled(st);
                }
                default: return false;
            }
        },
        &seen);
    if (!s) return s.error();
    if (auto f = cbor::require_fields(seen, bit(1) | bit(2) | bit(4), "receipt"); !f) return f.error();
    if (rc.field_keys.has_value() != rc.field_salt.has_value()) {
        return make_error(ErrorCode::malformed, "receipt has field keys without their salt, or the reverse");
    }
    return rc;
}

Result<Receipt> Receipt::decode(ByteView bytes) {
    Reader r(bytes);
    auto rc = read(r);
    if (!rc) return rc;
    if (auto s = r.finish(); !s) return s.error();
    return rc;
}

Receipt sign_receipt(const crypto::SigningKey& device_key, const ReceiptContent& content) {
    Receipt r;
    r.object_id = content.object_id;
    r.result = content.result;
    r.field_salt = content.field_salt;
    r.field_keys = content.field_keys;
    r.signature = crypto::sign(device_key, context::receipt, content.encode());
    return r;
}

Status verify_receipt(const Receipt& receipt, const crypto::SignPublicKey& device_key, const DeviceId& device,
                      const Digest& object_hash, const Digest& provisioner_key_hash) {
    ReceiptContent c;
    c.device = device;
    c.object_id = receipt.object_id;
    c.object_hash = object_hash;
    c.provisioner_key_hash = provisioner_key_hash;
    c.result = receipt.result;
    c.field_salt = receipt.field_salt;
    c.field_keys = receipt.field_keys;
    if (!crypto::verify(device_key, context::receipt, c.encode(), receipt.signature)) {
        return make_error(ErrorCode::bad_signature,
                          "receipt does not verify for this device, object and provisioner");
    }
    return {};
}

// ---- owner commands -------------------------------------------------------

std::string_view context_of(OwnerCommandKind kind) noexcept {
    switch (kind) {
        case OwnerCommandKind::deprovision: return context::owner_deprovision;
        case OwnerCommandKind::reconfigure: return context::owner_reconfigure;
        case OwnerCommandKind::diagnose: return context::owner_diagnose;
        case OwnerCommandKind::transfer: return context::owner_transfer;
    }
    return "credprov/v1 invalid";
}

Operation operation_of(OwnerCommandKind kind) noexcept {
    switch (kind) {
        case OwnerCommandKind::deprovision: return Operation::deprovision;
        case OwnerCommandKind::reconfigure: return Operation::reconfigure;
        case OwnerCommandKind::diagnose: return Operation::diagnose;
        case OwnerCommandKind::transfer: return Operation::transfer;
    }
    return Operation::query;
}

Bytes DeviceSettings::encode() const {
    MapBuilder m;
    if (label) m.field(1).text(*label);
    if (field_mode_allowed) m.field(2).boolean(*field_mode_allowed);
    if (advertise_when_provisioned) m.field(3).boolean(*advertise_when_provisioned);
    if (attach_check_interval_s) m.field(4).uint(*attach_check_interval_s);
    return m.finish();
}

Result<DeviceSettings> DeviceSettings::decode(ByteView body) {
    DeviceSettings d;
    auto s = decode_exact(body, 8, 0, "device settings", [&](std::uint64_t key, Reader& v) -> Result<bool> {
        switch (key) {
            case 1: {
                NetworkName n;
                auto st = read_parsed(v, NetworkName::kMaxLength, n, NetworkName::parse);
                if (st) d.label = n.str();
                return handled(st);
            }
            case 2:
            case 3: {
                auto b = v.boolean();
                if (!b) return b.error();
                (key == 2 ? d.field_mode_allowed : d.advertise_when_provisioned) = *b;
                return true;
            }
            case 4: {
                auto x = v.uint(10, 7 * 24 * 3600);
                if (!x) return x.error();
                d.attach_check_interval_s = *x;
                return true;
            }
            default: return false;
        }
    });
    if (!s) return s.error();
    return d;
}

Bytes OwnerCommand::encode() const {
    MapBuilder m;
    m.field(0).uint(kProtocolVersion);
    m.field(1).uint(static_cast<std::uint64_t>(kind));
    m.field(2).bytes(device.bytes);
    m.field(3).uint(counter);
    m.field(4).uint(issued_at);
    m.field(5).bytes(payload);
    return m.finish();
}

Result<OwnerCommand> OwnerCommand::decode(ByteView body) {
    OwnerCommand c;
    const std::uint64_t required = bit(0) | bit(1) | bit(2) | bit(3) | bit(4) | bit(5);
    auto s = decode_exact(body, 8, required, "owner command", [&](std::uint64_t key, Reader& v) -> Result<bool> {
        switch (key) {
            case 0: return handled(check_version(v));
            case 1: {
                auto k = v.uint(1, 4);
                if (!k) return make_error(ErrorCode::unknown_critical, "unknown owner command kind");
                c.kind = static_cast<OwnerCommandKind>(*k);
                return true;
            }
            case 2: return handled(read_fixed(v, c.device.bytes));
            case 3: return handled(cbor::read_u64(v, c.counter));
            case 4: return handled(read_time(v, c.issued_at));
            case 5: {
                auto p = v.bytes(0, 512);
                if (!p) return p.error();
                c.payload.assign(p->begin(), p->end());
                return true;
            }
            default: return false;
        }
    });
    if (!s) return s.error();
    return c;
}

SignedObject sign_owner_command(const crypto::SigningKey& owner, const OwnerCommand& cmd) {
    return sign_body(owner, context_of(cmd.kind), cmd.encode());
}

Result<OwnerCommand> verify_owner_command(const SignedObject& obj, const crypto::SignPublicKey& owner,
                                          const DeviceId& device, std::uint64_t last_counter) {
    // The kind selects the context, so decode first; the signature check then
    // fails if the body was signed for another kind.
    auto cmd = OwnerCommand::decode(obj.body);
    if (!cmd) return cmd;
    if (!verify_body(obj, owner, context_of(cmd->kind))) {
        return make_error(ErrorCode::not_owner, "owner command is not signed by the device's owner");
    }
    if (!(cmd->device == device)) return make_error(ErrorCode::wrong_device, "owner command is for another device");
    if (cmd->counter <= last_counter) {
        return make_error(ErrorCode::stale_counter, "owner command is older than one already applied");
    }
    return cmd;
}

std::string_view to_string(Diagnostic d) noexcept {
    switch (d) {
        case Diagnostic::self_test: return "self-test";
        case Diagnostic::store_check: return "store-check";
        case Diagnostic::aka_self_check: return "aka-self-check";
        case Diagnostic::transport_info: return "transport-info";
    }
    return "unknown";
}

std::optional<Diagnostic> diagnostic_from_string(std::string_view name) noexcept {
    for (std::uint64_t i = 1; i <= kMaxDiagnostic; ++i) {
        if (to_string(static_cast<Diagnostic>(i)) == name) return static_cast<Diagnostic>(i);
    }
    return std::nullopt;
}

Bytes encode_diagnostics(const std::vector<Diagnostic>& list) {
    Writer w;
    w.array(list.size());
    for (auto d : list) w.uint(static_cast<std::uint64_t>(d));
    return w.take();
}

Result<std::vector<Diagnostic>> decode_diagnostics(ByteView payload) {
    Reader r(payload);
    auto n = r.array(1, kMaxDiagnostic);
    if (!n) return n.error();
    std::vector<Diagnostic> out;
    for (std::size_t i = 0; i < *n; ++i) {
        auto d = r.uint(1, kMaxDiagnostic);
        if (!d) return make_error(ErrorCode::unknown_critical, "unknown diagnostic");
        out.push_back(static_cast<Diagnostic>(*d));
    }
    if (auto s = r.finish(); !s) return s.error();
    return out;
}

Bytes DeviceAttestation::encode() const {
    MapBuilder m;
    m.field(0).uint(kProtocolVersion);
    m.field(1).bytes(identity);
    m.field(2).bytes(box);
    m.field(3).text(manufacturer);
    return m.finish();
}

Result<DeviceAttestation> DeviceAttestation::decode(ByteView body) {
    DeviceAttestation a;
    auto s = decode_exact(body, 8, bit(0) | bit(1) | bit(2) | bit(3), "attestation",
                          [&](std::uint64_t key, Reader& v) -> Result<bool> {
                              switch (key) {
                                  case 0: return handled(check_version(v));
                                  case 1: return handled(read_fixed(v, a.identity));
                                  case 2: return handled(read_fixed(v, a.box));
                                  case 3: {
                                      NetworkName n;  // same character rules
                                      auto st = read_parsed(v, NetworkName::kMaxLength, n, NetworkName::parse);
                                      if (st) a.manufacturer = n.str();
                                      return handled(st);
                                  }
                                  default: return false;
                              }
                          });
    if (!s) return s.error();
    return a;
}

SignedObject attest_device(const crypto::SigningKey& manufacturer, const DeviceAttestation& a) {
    return sign_body(manufacturer, context::manufacturer_attestation, a.encode());
}

Result<DeviceAttestation> verify_attestation(const SignedObject& attestation, const crypto::SignPublicKey& manufacturer,
                                             const crypto::SignPublicKey& identity, const crypto::BoxPublicKey& box) {
    if (!verify_body(attestation, manufacturer, context::manufacturer_attestation)) {
        return make_error(ErrorCode::bad_signature, "attestation is not signed by this manufacturer");
    }
    auto a = DeviceAttestation::decode(attestation.body);
    if (!a) return a;
    if (!(a->identity == identity) || !(a->box == box)) {
        return make_error(ErrorCode::wrong_device, "attestation is for other device keys");
    }
    return a;
}

crypto::Signature sign_box_key(const crypto::SigningKey& identity, const crypto::BoxPublicKey& box) {
    return crypto::sign(identity, context::device_box_key, box);
}

Status verify_box_key(const crypto::SignPublicKey& identity, const crypto::BoxPublicKey& box,
                      const crypto::Signature& signature) {
    return crypto::verify(identity, context::device_box_key, box, signature);
}

}  // namespace credprov
