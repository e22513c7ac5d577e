// The canonical CBOR encoding of AgentState: the plaintext of the protected
// store (layout in target_agent/STORE.md).
//
// Secrets (seeds, setup code, K, OPc) are copied only between Secret<> /
// SecretBytes buffers: the encoder leaves zero placeholders in the public
// CBOR buffer and patches the secrets into the final SecretBytes. Never logs,
// and no error message quotes the input.
#include "credprov/agent/agent_state.hpp"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>
#include <string_view>
#include <vector>

#include "credprov/protocol/codec.hpp"
#include "credprov/protocol/codec_fields.hpp"
#include "credprov/protocol/crypto.hpp"

namespace credprov::agent {

using cbor::bit;
using cbor::handled;
using cbor::read_bool;
using cbor::read_fixed;
using cbor::read_parsed;
using cbor::read_u64;
using cbor::MapBuilder;
using cbor::Reader;
using cbor::Writer;

namespace {

// Top-level keys.
enum : std::uint64_t {
    kVersion = 0,
    kIdentitySeed = 1,
    kBoxSeed = 2,
    kSetupCode = 3,
    kAttestation = 4,
    kTrust = 5,
    kRecord = 6,
    kK = 7,
    kOpc = 8,
    kAttempts = 9,
    kUsim = 10,
};

constexpr std::uint64_t kMaxSqn = (std::uint64_t{1} << 48) - 1;
constexpr std::size_t kMaxEmbedded = 512;  // an encoded OperatorKeys, DeviceSettings or receipt
constexpr std::size_t kMaxTopEntries = 16;
constexpr std::size_t kMaxInnerEntries = 16;

// ---- encoding -----------------------------------------------------------------

// A secret value whose bytes the public buffer holds as zeros.
struct SecretSlot {
    std::size_t offset;  // in the map body
    ByteView value;
};

class SecretMap {
public:
    void secret_bytes(std::uint64_t key, ByteView value) {
        const Bytes zeros(value.size(), 0);
        Writer& w = map_.field(key).bytes(zeros);
        slots_.push_back(SecretSlot{w.data().size() - value.size(), value});
        body_ = &w;
    }
    void secret_text(std::uint64_t key, ByteView value) {
        const std::string zeros(value.size(), '\0');
        Writer& w = map_.field(key).text(zeros);
        slots_.push_back(SecretSlot{w.data().size() - value.size(), value});
        body_ = &w;
    }
    Writer& field(std::uint64_t key) {
        body_ = &map_.field(key);
        return *body_;
    }
    SecretBytes finish() {
        const std::size_t body_size = body_ == nullptr ? 0 : body_->data().size();
        const Bytes pub = map_.finish();
        const std::size_t head = pub.size() - body_size;
        SecretBytes out(pub.data(), pub.size());
        for (const auto& s : slots_) std::memcpy(out.data() + head + s.offset, s.value.data(), s.value.size());
        return out;
    }

private:
    MapBuilder map_;
    Writer* body_{nullptr};
    std::vector<SecretSlot> slots_;
};

Bytes encode_trust(const DeviceTrust& t) {
    MapBuilder m;
    if (t.provisioning_root) m.field(1).bytes(*t.provisioning_root);
    if (t.pinned_owner) m.field(2).bytes(t.pinned_owner->encode());
    m.field(3).boolean(t.lab_trust_on_first_use);
    m.field(4).boolean(t.field_mode_allowed);
    return m.finish();
}

Bytes encode_credential(const StoredCredential& c) {
    MapBuilder m;
    m.field(1).bytes(c.id.bytes);
    m.field(2).bytes(c.object_hash);
    m.field(3).text(c.profile.imsi.str());
    m.field(4).bytes(c.profile.amf);
    m.field(5).uint(c.profile.sqn);
    m.field(6).text(c.profile.plmn.str());
    m.field(7).text(c.profile.network_name.str());
    m.field(8).boolean(c.field_mode);
    m.field(9).bytes(c.receipt);
    return m.finish();
}

Bytes encode_record(const DeviceRecord& r) {
    MapBuilder m;
    if (r.owner) m.field(1).bytes(r.owner->encode());
    m.field(2).uint(r.owner_counter);
    m.field(3).uint(r.deprovision_epoch);
    m.field(4).uint(r.time_high_water);
    if (r.credential) m.field(5).raw(encode_credential(*r.credential));
    m.field(6).bytes(r.settings.encode());
    return m.finish();
}

// ---- decoding -----------------------------------------------------------------

template <std::size_t N>
Status read_secret(Reader& v, Secret<N>& out) {
    auto b = v.bytes(N, N);  // a view into the (secret) input: no copy
    if (!b) return b.error();
    std::memcpy(out.data(), b->data(), N);
    return {};
}

// A field holding another object's canonical encoding as a byte string.
template <class T>
Status read_embedded(Reader& v, T& out) {
    auto b = v.bytes(1, kMaxEmbedded);
    if (!b) return b.error();
    auto d = T::decode(*b);
    if (!d) return d.error();
    out = std::move(*d);
    return {};
}

Status read_setup_code(Reader& v, SecretBytes& out) {
    auto t = v.text(SetupCode::kMinDigits, SetupCode::kMaxDigits);  // a view: no copy
    if (!t) return t.error();
    if (!std::all_of(t->begin(), t->end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return make_error(ErrorCode::malformed, "setup code is not all decimal digits");
    }
    out = SecretBytes(reinterpret_cast<const std::uint8_t*>(t->data()), t->size());
    return {};
}

template <class F>
Status read_inner_map(Reader& v, std::uint64_t required, std::string_view what, F&& on_field) {
    std::uint64_t seen = 0;
    if (auto s = cbor::read_map(v, kMaxInnerEntries, on_field, &seen); !s) return s;
    return cbor::require_fields(seen, required, what);
}

Status read_trust(Reader& v, DeviceTrust& t) {
    return read_inner_map(v, bit(3) | bit(4), "trust", [&](std::uint64_t key, Reader& f) -> Result<bool> {
        switch (key) {
            case 1: {
                crypto::SignPublicKey root{};
                auto s = read_fixed(f, root);
                if (s) t.provisioning_root = root;
                return handled(s);
            }
            case 2: {
                OperatorKeys owner;
                auto s = read_embedded(f, owner);
                if (s) t.pinned_owner = std::move(owner);
                return handled(s);
            }
            case 3: return handled(read_bool(f, t.lab_trust_on_first_use));
            case 4: return handled(read_bool(f, t.field_mode_allowed));
            default: return false;
        }
    });
}

Status read_credential(Reader& v, StoredCredential& c) {
    const std::uint64_t required = bit(1) | bit(2) | bit(3) | bit(4) | bit(5) | bit(6) | bit(7) | bit(8) | bit(9);
    return read_inner_map(v, required, "credential", [&](std::uint64_t key, Reader& f) -> Result<bool> {
        switch (key) {
            case 1: return handled(read_fixed(f, c.id.bytes));
            case 2: return handled(read_fixed(f, c.object_hash));
            case 3: return handled(read_parsed(f, 15, c.profile.imsi, Imsi::parse));
            case 4: return handled(read_fixed(f, c.profile.amf));
            case 5: return handled(read_u64(f, c.profile.sqn, kMaxSqn));
            case 6: return handled(read_parsed(f, 6, c.profile.plmn, Plmn::parse));
            case 7: return handled(read_parsed(f, NetworkName::kMaxLength, c.profile.network_name, NetworkName::parse));
            case 8: return handled(read_bool(f, c.field_mode));
            case 9: {
                auto b = f.bytes(1, kMaxEmbedded);
                if (!b) return b.error();
                // The stored receipt is sent again on re-delivery: it must parse.
                if (auto rc = Receipt::decode(*b); !rc) return rc.error();
                c.receipt.assign(b->begin(), b->end());
                return true;
            }
            default: return false;
        }
    });
}

Status read_record(Reader& v, DeviceRecord& r) {
    return read_inner_map(v, bit(2) | bit(3) | bit(4) | bit(6), "record",
                          [&](std::uint64_t key, Reader& f) -> Result<bool> {
                              switch (key) {
                                  case 1: {
                                      OperatorKeys owner;
                                      auto s = read_embedded(f, owner);
                                      if (s) r.owner = std::move(owner);
                                      return handled(s);
                                  }
                                  case 2: return handled(read_u64(f, r.owner_counter));
                                  case 3: return handled(read_u64(f, r.deprovision_epoch));
                                  case 4: return handled(read_u64(f, r.time_high_water));
                                  case 5: {
                                      StoredCredential c;
                                      auto s = read_credential(f, c);
                                      if (s) r.credential = std::move(c);
                                      return handled(s);
                                  }
                                  case 6: {
                                      auto b = f.bytes(0, kMaxEmbedded);
                                      if (!b) return b.error();
                                      auto d = DeviceSettings::decode(*b);
                                      if (!d) return d.error();
                                      r.settings = std::move(*d);
                                      return true;
                                  }
                                  default: return false;
                              }
                          });
}

Status read_attempts(Reader& v, AttemptState& a) {
    return read_inner_map(v, bit(1) | bit(2), "attempts", [&](std::uint64_t key, Reader& f) -> Result<bool> {
        switch (key) {
            case 1: {
                std::uint64_t n = 0;
                auto s = read_u64(f, n, std::numeric_limits<std::uint32_t>::max());
                a.unconfirmed = static_cast<std::uint32_t>(n);
                return handled(s);
            }
            case 2: return handled(read_u64(f, a.last_attempt_unix));
            default: return false;
        }
    });
}

Status read_usim(Reader& v, UsimState& u) {
    return read_inner_map(v, bit(1), "usim", [&](std::uint64_t key, Reader& f) -> Result<bool> {
        if (key != 1) return false;
        return handled(read_fixed(f, u.sqn_state));
    });
}

Status decode_into(ByteView plaintext, AgentState& s) {
    if (plaintext.size() > kMaxStateBytes) return make_error(ErrorCode::oversized, "larger than any agent state");
    Reader r(plaintext);
    std::uint64_t seen = 0;
    auto st = cbor::read_map(
        r, kMaxTopEntries,
        [&](std::uint64_t key, Reader& v) -> Result<bool> {
            switch (key) {
                case kVersion: {
                    auto ver = v.uint();
                    if (!ver) return ver.error();
                    if (*ver != kStateFormatVersion) {
                        return make_error(ErrorCode::unsupported_version,
                                          "state format version " + std::to_string(*ver) + " is not supported");
                    }
                    return true;
                }
                case kIdentitySeed: return handled(read_secret(v, s.identity_seed));
                case kBoxSeed: return handled(read_secret(v, s.box_seed));
                case kSetupCode: return handled(read_setup_code(v, s.setup_code));
                case kAttestation: {
                    auto a = SignedObject::read(v);
                    if (!a) return a.error();
                    s.attestation = std::move(*a);
                    return true;
                }
                case kTrust: return handled(read_trust(v, s.trust));
                case kRecord: return handled(read_record(v, s.record));
                case kK: return handled(read_secret(v, s.k.emplace()));
                case kOpc: return handled(read_secret(v, s.opc.emplace()));
                case kAttempts: return handled(read_attempts(v, s.attempts));
                case kUsim: return handled(read_usim(v, s.usim));
                default: return false;
            }
        },
        &seen);
    if (!st) return st;
    if (auto f = r.finish(); !f) return f;
    const std::uint64_t required = bit(kVersion) | bit(kIdentitySeed) | bit(kBoxSeed) | bit(kSetupCode) |
                                   bit(kTrust) | bit(kRecord) | bit(kAttempts) | bit(kUsim);
    if (auto f = cbor::require_fields(seen, required, "agent state"); !f) return f;
    const bool has_credential = s.record.credential.has_value();
    if (s.k.has_value() != has_credential || s.opc.has_value() != has_credential) {
        return make_error(ErrorCode::malformed, "K and OPc must be present exactly when a credential is");
    }
    return {};
}

}  // namespace

AgentState AgentState::clone() const {
    AgentState c;  // (sodium is initialised: this state's own Secrets exist)
    std::memcpy(c.identity_seed.data(), identity_seed.data(), identity_seed.size());
    std::memcpy(c.box_seed.data(), box_seed.data(), box_seed.size());
    c.attestation = attestation;
    c.setup_code = SecretBytes(setup_code.data(), setup_code.size());
    c.trust = trust;
    c.record = record;
    if (k) c.k.emplace(k->span());
    if (opc) c.opc.emplace(opc->span());
    c.attempts = attempts;
    c.usim = usim;
    return c;
}

SecretBytes encode_state(const AgentState& state) {
    SecretMap m;
    m.field(kVersion).uint(kStateFormatVersion);
    m.secret_bytes(kIdentitySeed, state.identity_seed.span());
    m.secret_bytes(kBoxSeed, state.box_seed.span());
    m.secret_text(kSetupCode, state.setup_code.view());
    if (state.attestation) state.attestation->encode_into(m.field(kAttestation));
    m.field(kTrust).raw(encode_trust(state.trust));
    m.field(kRecord).raw(encode_record(state.record));
    if (state.k) m.secret_bytes(kK, state.k->span());
    if (state.opc) m.secret_bytes(kOpc, state.opc->span());
    {
        MapBuilder a;
        a.field(1).uint(state.attempts.unconfirmed);
        a.field(2).uint(state.attempts.last_attempt_unix);
        m.field(kAttempts).raw(a.finish());
    }
    {
        MapBuilder u;
        u.field(1).bytes(state.usim.sqn_state);
        m.field(kUsim).raw(u.finish());
    }
    return m.finish();
}

Result<AgentState> decode_state(ByteView plaintext) {
    crypto::ensure_initialised();  // Secret<> needs sodium_init before sodium_malloc
    AgentState s;
    if (auto st = decode_into(plaintext, s); !st) {
        // Partly decoded secrets die with `s` (Secret<> and SecretBytes wipe).
        return make_error(st.error().code, "agent state: " + st.error().message);
    }
    return s;
}

}  // namespace credprov::agent
