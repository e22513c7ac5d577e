// Encoders and bounded decoders of the protocol messages and record payloads.
// Never logs: record payloads are decrypted plaintexts.
#include "credprov/protocol/messages.hpp"

#include "credprov/protocol/codec_fields.hpp"

#include <algorithm>

namespace credprov {

using cbor::bit;
using cbor::handled;
using cbor::read_blob;
using cbor::read_fixed;
using cbor::read_printable;
using cbor::MapBuilder;
using cbor::Reader;
using cbor::Writer;

namespace {

constexpr std::size_t kMaxRecordBytes = kMaxMessageBytes;
constexpr std::size_t kMaxAdBytes = 64;
constexpr std::size_t kMaxText = 200;

Status read_signed(Reader& v, std::optional<SignedObject>& out) {
    auto o = SignedObject::read(v);
    if (!o) return o.error();
    out = std::move(*o);
    return {};
}

// Texts for the peer are printable ASCII, cut to their bound, so that the
// decoder on the other side never rejects an honest error message.
std::string printable_copy(std::string_view s, std::size_t max) {
    std::string out(s.substr(0, max));
    for (char& c : out) {
        if (c < 0x20 || c >= 0x7f) c = '?';
    }
    return out;
}


// Reads a whole top-level message: a map whose key 0 is the expected type.
template <class F>
Status read_message(ByteView bytes, MessageType type, std::size_t max_entries, std::uint64_t required,
                    std::string_view what, F&& on_field) {
    if (bytes.size() > kMaxMessageBytes) return make_error(ErrorCode::oversized, "message larger than 4096 bytes");
    Reader r(bytes);
    std::uint64_t seen = 0;
    auto s = cbor::read_map(
        r, max_entries,
        [&](std::uint64_t key, Reader& v) -> Result<bool> {
            if (key == 0) {
                auto t = v.uint();
                if (!t) return t.error();
                if (*t != static_cast<std::uint64_t>(type)) {
                    return make_error(ErrorCode::bad_state, std::string("expected a ") + std::string(what) + " message");
                }
                return true;
            }
            return on_field(key, v);
        },
        &seen);
    if (!s) return s;
    if (auto f = r.finish(); !f) return f;
    return cbor::require_fields(seen, required | bit(0), what);
}

}  // namespace

Result<MessageType> peek_type(ByteView message) {
    Reader r(message);
    auto n = r.map(1, 8);
    if (!n) return n.error();
    auto k = r.uint();
    if (!k || *k != 0) return make_error(ErrorCode::malformed, "message does not start with its type");
    auto t = r.uint(1, 5);
    if (!t) return make_error(ErrorCode::unknown_critical, "unknown message type");
    return static_cast<MessageType>(*t);
}

// ---- AD -------------------------------------------------------------------

Bytes ProvisionerAd::encode() const {
    MapBuilder m;
    auto& a = m.field(1).array(versions.size());
    for (auto v : versions) a.uint(v);
    m.field(2).uint(modes);
    m.field(3).boolean(device_keys_known);
    return m.finish();
}

Result<ProvisionerAd> ProvisionerAd::decode(ByteView bytes) {
    if (bytes.size() > kMaxAdBytes) return make_error(ErrorCode::oversized, "ADa too long");
    ProvisionerAd ad;
    ad.versions.clear();
    Reader r(bytes);
    std::uint64_t seen = 0;
    auto s = cbor::read_map(
        r, 4,
        [&](std::uint64_t key, Reader& v) -> Result<bool> {
            switch (key) {
                case 1: {
                    auto n = v.array(1, 8);
                    if (!n) return n.error();
                    for (std::size_t i = 0; i < *n; ++i) {
                        auto x = v.uint(1, 255);
                        if (!x) return x.error();
                        ad.versions.push_back(*x);
                    }
                    return true;
                }
                case 2: {
                    auto x = v.uint(1, 3);
                    if (!x) return x.error();
                    ad.modes = *x;
                    return true;
                }
                case 3: {
                    auto b = v.boolean();
                    if (!b) return b.error();
                    ad.device_keys_known = *b;
                    return true;
                }
                default: return false;
            }
        },
        &seen);
    if (!s) return s.error();
    if (auto f = r.finish(); !f) return f.error();
    if (auto f = cbor::require_fields(seen, bit(1) | bit(2) | bit(3), "ADa"); !f) return f.error();
    return ad;
}

Bytes DeviceAd::encode() const {
    MapBuilder m;
    m.field(1).uint(version);
    m.field(2).uint(modes);
    m.field(3).uint(static_cast<std::uint64_t>(owner));
    return m.finish();
}

Result<DeviceAd> DeviceAd::decode(ByteView bytes) {
    if (bytes.size() > kMaxAdBytes) return make_error(ErrorCode::oversized, "ADb too long");
    DeviceAd ad;
    Reader r(bytes);
    std::uint64_t seen = 0;
    auto s = cbor::read_map(
        r, 4,
        [&](std::uint64_t key, Reader& v) -> Result<bool> {
            auto x = key == 1 ? v.uint(1, 255) : key == 2 ? v.uint(1, 3) : key == 3 ? v.uint(0, 2) : Result<std::uint64_t>(0);
            if (key < 1 || key > 3) return false;
            if (!x) return x.error();
            if (key == 1) ad.version = *x;
            if (key == 2) ad.modes = *x;
            if (key == 3) ad.owner = static_cast<OwnerState>(*x);
            return true;
        },
        &seen);
    if (!s) return s.error();
    if (auto f = r.finish(); !f) return f.error();
    if (auto f = cbor::require_fields(seen, bit(1) | bit(2) | bit(3), "ADb"); !f) return f.error();
    return ad;
}

// ---- handshake messages -----------------------------------------------------

Bytes PairRequest::encode() const {
    MapBuilder m;
    m.field(0).uint(static_cast<std::uint64_t>(MessageType::pair_request));
    m.field(1).bytes(sid);
    m.field(2).bytes(ya);
    m.field(3).bytes(ada);
    return m.finish();
}

Result<PairRequest> PairRequest::decode(ByteView bytes) {
    PairRequest p;
    auto s = read_message(bytes, MessageType::pair_request, 6, bit(1) | bit(2) | bit(3), "pair-request",
                          [&](std::uint64_t key, Reader& v) -> Result<bool> {
                              switch (key) {
                                  case 1: return handled(read_fixed(v, p.sid));
                                  case 2: return handled(read_fixed(v, p.ya));
                                  case 3: return handled(read_blob(v, 1, kMaxAdBytes, p.ada));
                                  default: return false;
                              }
                          });
    if (!s) return s.error();
    return p;
}

Bytes PairResponse::encode() const {
    MapBuilder m;
    m.field(0).uint(static_cast<std::uint64_t>(MessageType::pair_response));
    m.field(1).bytes(yb);
    m.field(2).bytes(adb);
    m.field(3).bytes(tb);
    if (record) m.field(4).bytes(*record);
    return m.finish();
}

Result<PairResponse> PairResponse::decode(ByteView bytes) {
    PairResponse p;
    auto s = read_message(bytes, MessageType::pair_response, 6, bit(1) | bit(2) | bit(3), "pair-response",
                          [&](std::uint64_t key, Reader& v) -> Result<bool> {
                              switch (key) {
                                  case 1: return handled(read_fixed(v, p.yb));
                                  case 2: return handled(read_blob(v, 1, kMaxAdBytes, p.adb));
                                  case 3: return handled(read_fixed(v, p.tb));
                                  case 4: {
                                      Bytes rec;
                                      auto st = read_blob(v, crypto::kAeadTagBytes, kMaxRecordBytes, rec);
                                      if (st) p.record = std::move(rec);
                                      return handled(st);
                                  }
                                  default: return false;
                              }
                          });
    if (!s) return s.error();
    return p;
}

Bytes Authorise::encode() const {
    MapBuilder m;
    m.field(0).uint(static_cast<std::uint64_t>(MessageType::authorise));
    m.field(1).bytes(ta);
    m.field(2).bytes(record);
    return m.finish();
}

Result<Authorise> Authorise::decode(ByteView bytes) {
    Authorise a;
    auto s = read_message(bytes, MessageType::authorise, 4, bit(1) | bit(2), "authorise",
                          [&](std::uint64_t key, Reader& v) -> Result<bool> {
                              switch (key) {
                                  case 1: return handled(read_fixed(v, a.ta));
                                  case 2: return handled(read_blob(v, crypto::kAeadTagBytes, kMaxRecordBytes, a.record));
                                  default: return false;
                              }
                          });
    if (!s) return s.error();
    return a;
}

Bytes Record::encode() const {
    MapBuilder m;
    m.field(0).uint(static_cast<std::uint64_t>(MessageType::record));
    m.field(1).bytes(record);
    return m.finish();
}

Result<Record> Record::decode(ByteView bytes) {
    Record rec;
    auto s = read_message(bytes, MessageType::record, 3, bit(1), "record",
                          [&](std::uint64_t key, Reader& v) -> Result<bool> {
                              if (key != 1) return false;
                              return handled(read_blob(v, crypto::kAeadTagBytes, kMaxRecordBytes, rec.record));
                          });
    if (!s) return s.error();
    return rec;
}

Bytes ErrorMessage::encode() const {
    MapBuilder m;
    m.field(0).uint(static_cast<std::uint64_t>(MessageType::error));
    m.field(1).uint(static_cast<std::uint64_t>(code));
    if (retry_after_s > 0) m.field(2).uint(retry_after_s);
    return m.finish();
}

Result<ErrorMessage> ErrorMessage::decode(ByteView bytes) {
    ErrorMessage e;
    auto s = read_message(bytes, MessageType::error, 4, bit(1), "error", [&](std::uint64_t key, Reader& v) -> Result<bool> {
        if (key == 1) {
            auto c = v.uint(1, static_cast<std::uint64_t>(ErrorCode::internal));
            if (!c) return c.error();
            e.code = static_cast<ErrorCode>(*c);
            return true;
        }
        if (key == 2) {
            auto x = v.uint(0, 30 * 24 * 3600);
            if (!x) return x.error();
            // encode() omits a zero retry-after: an explicit 0 would be a second encoding.
            if (*x == 0) return make_error(ErrorCode::malformed, "explicit zero retry-after is not canonical");
            e.retry_after_s = *x;
            return true;
        }
        return false;
    });
    if (!s) return s.error();
    return e;
}

// ---- payloads -------------------------------------------------------------

Bytes DeviceKeys::encode() const {
    MapBuilder m;
    m.field(1).bytes(identity);
    m.field(2).bytes(box);
    m.field(3).bytes(box_signature);
    if (attestation) attestation->encode_into(m.field(4));
    return m.finish();
}

Result<DeviceKeys> DeviceKeys::decode(ByteView bytes) {
    DeviceKeys k;
    Reader r(bytes);
    std::uint64_t seen = 0;
    auto s = cbor::read_map(
        r, 6,
        [&](std::uint64_t key, Reader& v) -> Result<bool> {
            switch (key) {
                case 1: return handled(read_fixed(v, k.identity));
                case 2: return handled(read_fixed(v, k.box));
                case 3: return handled(read_fixed(v, k.box_signature));
                case 4: return handled(read_signed(v, k.attestation));
                default: return false;
            }
        },
        &seen);
    if (!s) return s.error();
    if (auto f = r.finish(); !f) return f.error();
    if (auto f = cbor::require_fields(seen, bit(1) | bit(2) | bit(3), "device keys"); !f) return f.error();
    return k;
}

Bytes ProvisionerPayload::encode() const {
    MapBuilder m;
    if (transcript_signature) m.field(1).bytes(*transcript_signature);
    if (token) token->encode_into(m.field(2));
    if (operator_certificate) operator_certificate->encode_into(m.field(3));
    m.field(4).uint(static_cast<std::uint64_t>(request.op));
    if (request.object) request.object->encode_into(m.field(5));
    return m.finish();
}

Result<ProvisionerPayload> ProvisionerPayload::decode(ByteView bytes) {
    ProvisionerPayload p;
    Reader r(bytes);
    std::uint64_t seen = 0;
    auto s = cbor::read_map(
        r, 8,
        [&](std::uint64_t key, Reader& v) -> Result<bool> {
            switch (key) {
                case 1: {
                    crypto::Signature sig{};
                    auto st = read_fixed(v, sig);
                    if (st) p.transcript_signature = sig;
                    return handled(st);
                }
                case 2: return handled(read_signed(v, p.token));
                case 3: return handled(read_signed(v, p.operator_certificate));
                case 4: {
                    auto op = v.uint(1, kMaxOperation);
                    if (!op) return make_error(ErrorCode::unknown_critical, "unknown operation requested");
                    p.request.op = static_cast<Operation>(*op);
                    return true;
                }
                case 5: return handled(read_signed(v, p.request.object));
                default: return false;
            }
        },
        &seen);
    if (!s) return s.error();
    if (auto f = r.finish(); !f) return f.error();
    if (auto f = cbor::require_fields(seen, bit(4), "request"); !f) return f.error();
    return p;
}

Response Response::failure(const Error& e) {
    Response r;
    r.ok = false;
    r.status = e.code;
    r.message = e.message;
    return r;
}

namespace {

Bytes encode_info(const DeviceInfo& i) {
    MapBuilder m;
    m.field(1).bytes(i.device.bytes);
    m.field(2).uint(static_cast<std::uint64_t>(i.owner_state));
    if (i.owner_key_hash) m.field(3).bytes(*i.owner_key_hash);
    m.field(4).uint(i.owner_counter);
    m.field(5).boolean(i.provisioned);
    if (i.bundle) m.field(6).bytes(i.bundle->bytes);
    if (i.profile) write_profile(m, 7, *i.profile);  // 7..11
    m.field(12).bytes(i.settings.encode());
    m.field(13).text(i.software);
    return m.finish();
}

Result<DeviceInfo> decode_info(ByteView bytes) {
    DeviceInfo i;
    SubscriberProfile prof;
    Reader r(bytes);
    std::uint64_t seen = 0;
    auto s = cbor::read_map(
        r, 16,
        [&](std::uint64_t key, Reader& v) -> Result<bool> {
            if (auto p = read_profile_field(key, 7, v, prof); !p || *p) return p;  // keys 7..11
            switch (key) {
                case 1: return handled(read_fixed(v, i.device.bytes));
                case 2: {
                    auto x = v.uint(0, 2);
                    if (!x) return x.error();
                    i.owner_state = static_cast<OwnerState>(*x);
                    return true;
                }
                case 3: {
                    Digest d{};
                    auto st = read_fixed(v, d);
                    if (st) i.owner_key_hash = d;
                    return handled(st);
                }
                case 4: {
                    auto x = v.uint();
                    if (!x) return x.error();
                    i.owner_counter = *x;
                    return true;
                }
                case 5: {
                    auto b = v.boolean();
                    if (!b) return b.error();
                    i.provisioned = *b;
                    return true;
                }
                case 6: {
                    BundleId b;
                    auto st = read_fixed(v, b.bytes);
                    if (st) i.bundle = b;
                    return handled(st);
                }
                case 12: {
                    auto b = v.bytes(1, 256);
                    if (!b) return b.error();
                    auto st = DeviceSettings::decode(*b);
                    if (!st) return st.error();
                    i.settings = *st;
                    return true;
                }
                case 13: return handled(read_printable(v, 64, i.software));
                default: return false;
            }
        },
        &seen);
    if (!s) return s.error();
    if (auto f = r.finish(); !f) return f.error();
    if (auto f = cbor::require_fields(seen, bit(1) | bit(2) | bit(4) | bit(5) | bit(12) | bit(13), "device info"); !f) {
        return f.error();
    }
    const std::uint64_t profile_mask = bit(7) | bit(8) | bit(9) | bit(10) | bit(11);
    if ((seen & profile_mask) == profile_mask) i.profile = prof;
    else if ((seen & profile_mask) != 0) return make_error(ErrorCode::malformed, "device info has a partial profile");
    return i;
}

}  // namespace

Bytes DevicePayload::encode() const {
    MapBuilder m;
    if (transcript_signature) m.field(1).bytes(*transcript_signature);
    const Response& r = response;
    m.field(2).uint(r.ok ? 0 : static_cast<std::uint64_t>(r.status));
    if (!r.message.empty()) m.field(3).text(printable_copy(r.message, kMaxText));
    if (r.receipt) r.receipt->encode_into(m.field(4));
    if (r.info) m.field(5).bytes(encode_info(*r.info));
    if (!r.diagnostics.empty()) {
        auto& a = m.field(6).array(r.diagnostics.size());
        for (const auto& d : r.diagnostics) {
            a.array(3).uint(static_cast<std::uint64_t>(d.id)).boolean(d.ok).text(printable_copy(d.detail, 64));
        }
    }
    if (r.counter) m.field(7).uint(*r.counter);
    return m.finish();
}

Result<DevicePayload> DevicePayload::decode(ByteView bytes) {
    DevicePayload p;
    Response& resp = p.response;
    Reader r(bytes);
    std::uint64_t seen = 0;
    auto s = cbor::read_map(
        r, 10,
        [&](std::uint64_t key, Reader& v) -> Result<bool> {
            switch (key) {
                case 1: {
                    crypto::Signature sig{};
                    auto st = read_fixed(v, sig);
                    if (st) p.transcript_signature = sig;
                    return handled(st);
                }
                case 2: {
                    auto x = v.uint(0, static_cast<std::uint64_t>(ErrorCode::internal));
                    if (!x) return x.error();
                    resp.ok = *x == 0;
                    resp.status = static_cast<ErrorCode>(*x);
                    return true;
                }
                case 3: {
                    auto st = read_printable(v, kMaxText, resp.message);
                    // encode() omits an empty message: an explicit "" would be a second encoding.
                    if (st && resp.message.empty()) {
                        return make_error(ErrorCode::malformed, "explicit empty response message is not canonical");
                    }
                    return handled(st);
                }
                case 4: {
                    auto rc = Receipt::read(v);
                    if (!rc) return rc.error();
                    resp.receipt = *rc;
                    return true;
                }
                case 5: {
                    auto b = v.bytes(1, 1024);
                    if (!b) return b.error();
                    auto info = decode_info(*b);
                    if (!info) return info.error();
                    resp.info = std::move(*info);
                    return true;
                }
                case 6: {
                    auto n = v.array(1, kMaxDiagnostic);
                    if (!n) return n.error();
                    for (std::size_t i = 0; i < *n; ++i) {
                        DiagnosticResult d;
                        if (auto a = v.array(3, 3); !a) return a.error();
                        auto id = v.uint(1, kMaxDiagnostic);
                        if (!id) return id.error();
                        d.id = static_cast<Diagnostic>(*id);
                        auto ok = v.boolean();
                        if (!ok) return ok.error();
                        d.ok = *ok;
                        if (auto st = read_printable(v, 64, d.detail); !st) return st.error();
                        resp.diagnostics.push_back(std::move(d));
                    }
                    return true;
                }
                case 7: {
                    auto x = v.uint();
                    if (!x) return x.error();
                    resp.counter = *x;
                    return true;
                }
                default: return false;
            }
        },
        &seen);
    if (!s) return s.error();
    if (auto f = r.finish(); !f) return f.error();
    if (auto f = cbor::require_fields(seen, bit(2), "response"); !f) return f.error();
    return p;
}

}  // namespace credprov
