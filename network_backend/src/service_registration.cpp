// Service: authorisation tokens, two-phase registration (sealed bundles and
// field pools), receipts and network-only deprovisioning.
#include <sodium.h>

#include "credprov/aka/subscriber_keys.hpp"
#include "credprov/backend/service.hpp"
#include "request_fields.hpp"
#include "service_internal.hpp"

namespace credprov::backend {

using namespace detail;

namespace {
// How far before its issue an authorisation token is valid (seconds).
constexpr std::uint64_t kTokenClockSkewS = 60;
}  // namespace

Result<Secret<16>> load_op_file(const std::filesystem::path& path) {
    auto text = read_text_file(path, 256);
    if (!text) return text.error();
    std::string hex;
    for (const char ch : *text) {
        if (!std::isspace(static_cast<unsigned char>(ch))) hex += ch;
    }
    Secret<16> op;
    std::size_t len = 0;
    const int rc = sodium_hex2bin(op.data(), 16, hex.data(), hex.size(), nullptr, &len, nullptr);
    sodium_memzero(hex.data(), hex.size());
    sodium_memzero(text->data(), text->size());
    if (rc != 0 || len != 16) return make_error(ErrorCode::malformed, path.string() + " must hold OP as 32 hex digits");
    if (std::filesystem::status(path).permissions() != std::filesystem::perms::owner_read &&
        (std::filesystem::status(path).permissions() & (std::filesystem::perms::group_all | std::filesystem::perms::others_all)) !=
            std::filesystem::perms::none) {
        return make_error(ErrorCode::storage, path.string() + " is readable by group or others; chmod 600 it");
    }
    return op;
}

Result<SubscriberKeys> Service::new_subscriber_keys() const {
    SubscriberKeys keys = SubscriberKeys::random();
    if (op_) {
        aka::derive_opc(aka::SubscriberKeys::KeyView(keys.k.data(), 16), aka::SubscriberKeys::KeyView(op_->data(), 16),
                        std::span<std::uint8_t, 16>(keys.opc.data(), 16));
    }
    return keys;
}

Result<std::string> Service::allocate_imsi(Connection& conn) {
    auto rows = conn.query("SELECT next_msin FROM imsi_allocator WHERE id = 1" + std::string(conn.for_update()));
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(ErrorCode::storage, "the IMSI allocator row is missing");
    const auto next = static_cast<std::uint64_t>(rows->front().i64(0));
    const std::uint64_t msin = config_.msin_first + next;
    if (msin > config_.msin_last) return make_error(ErrorCode::oversized, "the configured IMSI range is exhausted");
    auto upd = conn.exec("UPDATE imsi_allocator SET next_msin = ? WHERE id = 1", {static_cast<std::int64_t>(next + 1)});
    if (!upd) return upd.error();
    std::string digits = std::to_string(msin);
    const std::size_t width = 15 - config_.plmn.size();
    return config_.plmn + std::string(width - digits.size(), '0') + digits;
}

struct Service::Vouched {
    DeviceId id;
    crypto::SignPublicKey identity{};
    crypto::BoxPublicKey box{};
    std::string vouched_by;
    std::int64_t owner_counter{0};
    std::string owner_key;
};

struct Service::SealAhead {
    crypto::BoxPublicKey box{};
    SealShared shared;
};

struct Service::ClaimedDevice {
    DeviceId id;
    crypto::SignPublicKey identity{};
    crypto::BoxPublicKey box{};
    std::optional<SignedObject> attestation;
};

// The device's keys as a request states them, consistent with each other
// (the id is the hash of the identity key, which signed the box key). Needs
// no database, so callers check it before their write transaction: the
// signature check then runs in parallel, not inside the serial group commit.
Result<Service::ClaimedDevice> Service::claim_device(const json& device) const {
    Fields f(device);
    auto id = f.device_id("device_id");
    auto identity = f.hex<32>("identity_key");
    auto box = f.hex<32>("box_key");
    auto box_sig = f.hex<64>("box_signature");
    auto attestation = f.signed_object("attestation", false);
    if (!f.done()) return make_error(ErrorCode::malformed, f.error());
    if (DeviceId::from_public_key(*identity) != *id) {
        return make_error(ErrorCode::malformed, "the device id is not the hash of the identity key");
    }
    if (!box_key_signed(*identity, *box, *box_sig)) {
        return make_error(ErrorCode::malformed, "the box key is not signed by the identity key");
    }
    return ClaimedDevice{*id, *identity, *box, std::move(attestation)};
}

bool Service::box_key_signed(const crypto::SignPublicKey& identity, const crypto::BoxPublicKey& box,
                             const crypto::Signature& signature) const {
    const auto name = VerifiedSignatures::name_of({as_bytes("device box key"), identity, box, signature});
    if (verified_box_keys_.contains(name)) return true;
    if (!verify_box_key(identity, box, signature)) return false;
    verified_box_keys_.insert(name);
    return true;
}

Result<Service::Vouched> Service::vouch_device(Connection& conn, const Caller& c, const json& device, std::string& refusal) {
    auto claimed = claim_device(device);
    if (!claimed) return claimed.error();
    return vouch_device(conn, c, *claimed, refusal);
}

// The device as the backend recorded it (imported or attested before), its
// row locked for the rest of the transaction; nullopt when it is unknown.
Result<std::optional<Service::Vouched>> Service::recorded_device(Connection& conn, const DeviceId& id) {
    auto rows = conn.query("SELECT identity_key, box_key, vouched_by, owner_counter, owner_key FROM devices WHERE "
                           "device_id = ?" + std::string(conn.for_update()),
                           {id.to_string()});
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<Vouched>{};
    const Row& r = rows->front();
    Vouched v{id, {}, {}, r.str(2), r.i64(3), r.str(4)};
    if (!key_from_hex(r.str(0), v.identity) || !key_from_hex(r.str(1), v.box)) {
        return make_error(ErrorCode::storage, "a stored device key is not 32 bytes of hex");
    }
    return std::optional<Vouched>{std::move(v)};
}

// The backend mints a subscriber only for a device it can vouch for: an
// inventory entry an admin imported, or an attestation by a known
// manufacturer. `refusal` is set (and no error returned) when it cannot.
Result<Service::Vouched> Service::vouch_device(Connection& conn, const Caller&, const ClaimedDevice& claim,
                                               std::string& refusal) {
    const DeviceId* id = &claim.id;
    const crypto::SignPublicKey* identity = &claim.identity;
    const crypto::BoxPublicKey* box = &claim.box;
    const std::optional<SignedObject>& attestation = claim.attestation;
    Vouched v{*id, *identity, *box, {}, 0, {}};
    auto recorded = recorded_device(conn, *id);
    if (!recorded) return recorded.error();
    if (*recorded) {
        if (!ct_equal((*recorded)->identity, *identity) || !ct_equal((*recorded)->box, *box)) {
            refusal = "the device is known with other keys";
            return v;
        }
        return std::move(**recorded);
    }
    if (!attestation) {
        refusal = "the device is not in the inventory and brings no manufacturer attestation";
        return v;
    }
    auto claimed = DeviceAttestation::decode(attestation->body);
    if (!claimed) {
        refusal = "the attestation does not decode";
        return v;
    }
    auto m = conn.query("SELECT public_key FROM manufacturers WHERE name = ?", {claimed->manufacturer});
    if (!m) return m.error();
    crypto::SignPublicKey mk{};
    if (m->empty() || !key_from_hex(m->front().str(0), mk)) {
        refusal = "the attestation names an unknown manufacturer";
        return v;
    }
    if (!verify_attestation(*attestation, mk, *identity, *box)) {
        refusal = "the attestation does not verify for this device's keys";
        return v;
    }
    v.vouched_by = "manufacturer:" + claimed->manufacturer;
    auto ins = conn.exec("INSERT INTO devices (device_id, identity_key, box_key, vouched_by, owner_counter, created_at) "
                         "VALUES (?, ?, ?, ?, 0, ?)",
                         {id->to_string(), to_hex(*identity), to_hex(*box), v.vouched_by, static_cast<std::int64_t>(now())});
    if (!ins) return ins.error();
    return v;
}

// Mints the device's pending subscriber and its sealed bundle in the
// caller's transaction, the device's row already locked (vouch_device,
// recorded_device): the pending bundle again while it lasts (status 200), or
// a conflict (an active subscription, the IMSI range exhausted).
struct Service::Minted {
    int status{201};
    json result;           // imsi, object_id, bundle, expires_at
    std::string conflict;  // set, with an error returned, on a conflict
};

Status Service::mint_in(Connection& conn, const Caller& c, const Vouched& v, const SubscriberKeys& keys, Minted& out,
                       const SealAhead* ahead) {
    const Provisioner& p = *c.provisioner;
    const auto t = static_cast<std::int64_t>(now());
    auto live = conn.query("SELECT imsi, state, signed_object, object_id, expires_at FROM subscribers WHERE device_id = ? "
                           "AND state IN ('pending', 'active')",
                           {v.id.to_string()});
    if (!live) return live.error();
    for (const Row& r : *live) {
        if (r.str(1) == "active") {
            out.conflict = "the device already holds an active subscription; deprovision it first";
            return make_error(ErrorCode::already_provisioned, out.conflict);
        }
        if (r.i64(4) >= t) {
            // Idempotent: the pending bundle is returned again, byte for byte.
            out.status = 200;
            out.result = {{"imsi", r.str(0)}, {"object_id", r.str(3)}, {"bundle", r.str(2)}, {"expires_at", r.i64(4)}};
            return {};
        }
    }
    auto imsi = allocate_imsi(conn);
    if (!imsi) {
        if (imsi.error().code == ErrorCode::oversized) out.conflict = imsi.error().message;
        return imsi.error();
    }
    CredentialBundle b;
    b.id = BundleId::random();
    b.device = v.id;
    b.epoch = static_cast<std::uint64_t>(v.owner_counter) + 1;
    b.profile.imsi = *Imsi::parse(*imsi);
    Bytes amf;
    (void)from_hex(config_.amf_hex, amf);
    b.profile.amf = {amf[0], amf[1]};
    b.profile.sqn = 0;
    b.profile.plmn = *Plmn::parse(config_.plmn);
    b.profile.network_name = *NetworkName::parse(config_.network_name);
    b.issued_at = static_cast<std::uint64_t>(t);
    b.not_after = static_cast<std::uint64_t>(t) + config_.bundle_ttl_s;
    auto signed_bundle = ahead != nullptr && ahead->box == v.box
                             ? credprov::issue_bundle(keys_.current.sign, keys_.current.box.public_key, ahead->shared, v.box, b, keys)
                             : credprov::issue_bundle(keys_.current.sign, keys_.current.box, v.box, b, keys);
    if (!signed_bundle) return signed_bundle.error();
    const std::string encoded = base64_encode(signed_bundle->encode());
    const std::int64_t expires = t + static_cast<std::int64_t>(config_.pending_ttl_s);
    auto ins = conn.exec(
        "INSERT INTO subscribers (imsi, device_id, state, mode, object_id, object_hash, signed_object, provisioner_id, "
        "keys_enc, amf, sqn, epoch, created_at, expires_at) VALUES (?, ?, 'pending', 'sealed', ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
        {*imsi, v.id.to_string(), b.id.to_string(), to_hex(signed_bundle->hash()), encoded, p.id,
         data_key_.seal(*imsi, keys), config_.amf_hex, static_cast<std::int64_t>(b.epoch), t, expires});
    if (!ins) return ins.error();
    if (auto a = audit(conn, c, "subscriber.mint", "imsi:" + *imsi, "ok",
                       "sealed bundle " + b.id.to_string() + " for device " + v.id.to_string() + " (" + v.vouched_by + ")");
        !a) {
        return a;
    }
    out.result = {{"imsi", *imsi}, {"object_id", b.id.to_string()}, {"bundle", encoded}, {"expires_at", expires}};
    return {};
}

// ---- tokens ---------------------------------------------------------------------------

Reply Service::issue_token(const Caller& c, const json& body) {
    const Provisioner& p = *c.provisioner;
    Fields f(body);
    auto device = f.device_id("device_id", false);
    auto prefix = f.hex_bytes("device_prefix", 1, DeviceId::kBytes, false);
    auto ops = f.operations("operations");
    // Tokens for offline field work (deliver-field and query only) may live as
    // long as the field authorisations they go with; every other token is short.
    const auto field_cap = static_cast<std::int64_t>(std::max(config_.token_max_ttl_s, config_.field_ttl_s));
    auto ttl = f.integer("ttl_s", 10, field_cap, false);
    const bool with_bundle = f.boolean("bundle", false).value_or(false);
    if (!f.done()) return bad_request(f.error());
    if (with_bundle && (!device || std::find(ops->begin(), ops->end(), Operation::deliver_sealed) == ops->end())) {
        return bad_request("field 'bundle' needs a 'device_id' and the operation deliver-sealed");
    }
    const bool field_only = std::all_of(ops->begin(), ops->end(), [](Operation op) {
        return op == Operation::deliver_field || op == Operation::query;
    });
    if (ttl && *ttl > static_cast<std::int64_t>(config_.token_max_ttl_s) && !field_only) {
        return bad_request("field 'ttl_s' must be at most " + std::to_string(config_.token_max_ttl_s) +
                           " unless the token is for deliver-field and query only");
    }
    if (device.has_value() == prefix.has_value()) return bad_request("give exactly one of 'device_id' and 'device_prefix'");
    for (Operation op : *ops) {
        if (!enrolled_for(p, op)) {
            return reject(c, "token.issue", "provisioner:" + p.id, 403, "operation-not-enrolled", "Forbidden",
                          "the provisioner is not enrolled for operation " + std::string(to_string(op)));
        }
    }
    if (device && !fits_prefix(p, *device)) {
        return reject(c, "token.issue", "device:" + device->to_string(), 403, "device-not-covered", "Forbidden",
                      "the device is outside the provisioner's enrolled device prefix");
    }
    if (prefix && !p.device_prefix.empty() &&
        (prefix->size() < p.device_prefix.size() || !std::equal(p.device_prefix.begin(), p.device_prefix.end(), prefix->begin()))) {
        return reject(c, "token.issue", "prefix:" + to_hex(*prefix), 403, "device-not-covered", "Forbidden",
                      "the prefix is wider than the provisioner's enrolled device prefix");
    }
    AuthorisationToken t;
    t.provisioner_key = p.key;
    t.device = device;
    if (prefix) t.device_prefix = *prefix;
    t.operations = *ops;
    // Valid from a minute before issue: a provisioner or device whose clock
    // runs a little behind the backend's (or reads it a second earlier) would
    // otherwise refuse a fresh token as "not valid yet".
    const std::uint64_t issued = now();
    t.not_before = issued - kTokenClockSkewS;
    t.not_after = issued + static_cast<std::uint64_t>(ttl.value_or(static_cast<std::int64_t>(config_.token_max_ttl_s)));
    const SignedObject token = credprov::issue_token(keys_.current.sign, t);
    const std::string target = device ? "device:" + device->to_string() : "prefix:" + to_hex(*prefix);
    auto record_token = [&](Connection& conn) {
        return audit(conn, c, "token.issue", target, "ok", "operations " + operations_text(*ops));
    };
    json j{{"token", base64_encode(token.encode())},
           {"not_before", t.not_before},
           {"not_after", t.not_after},
           {"operations", operations_json(*ops)}};
    j["operator_certificate"] =
        keys_.current.certificate ? json(base64_encode(keys_.current.certificate->encode())) : json(nullptr);
    if (with_bundle) {
        // The bundle with the token, one round trip and one transaction for
        // both (decision 0013); the device must already be recorded (the
        // inventory, or an earlier attestation). Any problem leaves the token
        // issued and the bundle to POST /v1/bundles after pairing.
        auto keys = new_subscriber_keys();
        if (!keys) return storage_failure(keys.error());
        // The device's recorded box key, read on a pooled connection in
        // parallel, for the sealing's X25519 ahead of the serial commit.
        std::optional<SealAhead> ahead;
        auto pre = db_.read([&](Connection& conn) -> Status {
            auto rows = conn.query("SELECT box_key FROM devices WHERE device_id = ?", {device->to_string()});
            if (!rows) return rows.error();
            crypto::BoxPublicKey box{};
            if (!rows->empty() && key_from_hex(rows->front().str(0), box)) {
                if (auto shared = seal_shared(keys_.current.box, box)) ahead = SealAhead{box, std::move(*shared)};
            }
            return {};
        });
        if (!pre) return storage_failure(pre.error());
        Minted minted;
        std::optional<Vouched> recorded;
        bool unknown = false;
        auto st = db_.transact([&](Connection& conn) -> Status {
            minted = Minted{};  // a retried transaction starts afresh
            recorded.reset();
            unknown = false;
            // The device's row before the audit chain's head, the order of
            // every other registration step (no deadlock between nodes); the
            // token's entry after the mint's, so that the head, which every
            // write of every node takes, is held only for the two entries.
            auto v = recorded_device(conn, *device);
            if (!v) return v.error();
            if (!*v) {
                unknown = true;  // nothing refused yet: its attestation may vouch for it
                return record_token(conn);
            }
            recorded = std::move(*v);
            if (auto m = mint_in(conn, c, *recorded, *keys, minted, ahead ? &*ahead : nullptr); !m) return m;
            return record_token(conn);
        });
        std::optional<Reply> problem = mint_refused(c, target, "", minted);
        if (problem) {
            if (auto a = db_.transact(record_token); !a) return storage_failure(a.error());
        } else if (st && unknown) {
            problem = Reply::problem(403, "device-not-vouched", "Forbidden",
                                     "the device is not in the inventory: pair with it, then send its keys and "
                                     "attestation to POST /v1/bundles");
        }
        if (problem) {
            j["bundle"] = nullptr;
            j["bundle_problem"] = problem->body;
            return Reply::success(j, 201);
        }
        if (!st) return storage_failure(st.error());
        if (minted.status == 201) metrics_.add("credprov_bundles_issued_total");
        // The box key the bundle is sealed to: a provisioner that paired
        // with a device showing another one asks POST /v1/bundles instead.
        minted.result["box_key"] = to_hex(recorded->box);
        j["bundle"] = std::move(minted.result);
        return Reply::success(j, 201);
    }
    if (auto st = db_.transact(record_token); !st) return storage_failure(st.error());
    return Reply::success(j, 201);
}

// ---- sealed bundles ------------------------------------------------------------------------

Reply Service::mint_bundle(const Caller& c, const json& body) {
    const Provisioner& p = *c.provisioner;
    if (!enrolled_for(p, Operation::deliver_sealed)) {
        return reject(c, "bundle.mint", "provisioner:" + p.id, 403, "operation-not-enrolled", "Forbidden",
                      "the provisioner is not enrolled for deliver-sealed");
    }
    Fields f(body);
    const json* device = f.get("device", true);
    if (!f.done()) return bad_request(f.error());
    auto claimed = claim_device(*device);
    if (!claimed) return bad_request("field 'device': " + claimed.error().message);
    // Fresh K and OPc before the transaction too (guarded memory costs
    // system calls); unused when the pending bundle is returned again.
    auto keys = new_subscriber_keys();
    if (!keys) return storage_failure(keys.error());
    std::optional<SealAhead> ahead;
    if (auto shared = seal_shared(keys_.current.box, claimed->box)) ahead = SealAhead{claimed->box, std::move(*shared)};
    std::string refusal, target;
    Minted minted;
    auto st = db_.transact([&](Connection& conn) -> Status {
        minted = Minted{};  // a retried transaction starts afresh
        refusal.clear();
        auto v = vouch_device(conn, c, *claimed, refusal);
        if (!v) return v.error();
        target = "device:" + v->id.to_string();
        if (!refusal.empty()) return make_error(ErrorCode::not_authorised, refusal);
        if (!fits_prefix(p, v->id)) {
            refusal = "the device is outside the provisioner's enrolled device prefix";
            return make_error(ErrorCode::not_authorised, refusal);
        }
        return mint_in(conn, c, *v, *keys, minted, ahead ? &*ahead : nullptr);
    });
    if (auto refused = mint_refused(c, target, refusal, minted)) return *refused;
    if (!st) return storage_failure(st.error());
    if (minted.status == 201) metrics_.add("credprov_bundles_issued_total");
    return Reply::success(minted.result, minted.status);
}

// A mint that ended in a refusal (the device not vouched for) or a conflict:
// the problem, with the attempt audited as bundle.mint.
std::optional<Reply> Service::mint_refused(const Caller& c, const std::string& target, const std::string& refusal,
                                           const Minted& minted) {
    if (!refusal.empty()) return reject(c, "bundle.mint", target, 403, "device-not-vouched", "Forbidden", refusal);
    if (minted.conflict.empty()) return std::nullopt;
    const bool exhausted = minted.conflict.find("IMSI range") != std::string::npos;
    return reject(c, "bundle.mint", target, 409, exhausted ? "imsi-range-exhausted" : "conflict", "Conflict", minted.conflict);
}

// ---- receipts --------------------------------------------------------------------------------

Reply Service::submit_receipt(const Caller& c, const json& body) {
    const Provisioner& p = *c.provisioner;
    Fields f(body);
    auto object_id = f.hex<16>("object_id");
    auto raw = f.base64("receipt", 512);
    const json* device = f.get("device", false);
    if (!f.done()) return bad_request(f.error());
    auto receipt = Receipt::decode(*raw);
    if (!receipt) return bad_request("field 'receipt' is not a credprov receipt");
    if (receipt->object_id.bytes != *object_id) return bad_request("the receipt is for another object");
    const std::string oid = to_hex(*object_id);
    const std::string receipt_b64 = base64_encode(*raw);
    const Digest pkh = digest(p.key);
    const auto t = static_cast<std::int64_t>(now());

    enum class Outcome { none, activated, same, rejected_by_device };
    Outcome outcome = Outcome::none;
    int fail_status = 0;
    std::string slug, detail, target = "object:" + oid, mode;
    bool alarm = false;
    json result;
    auto refuse = [&](int s, std::string sl, std::string d) -> Status {
        fail_status = s;
        slug = std::move(sl);
        detail = std::move(d);
        return make_error(ErrorCode::bad_state, detail);
    };
    // Sealed mode: the receipt's signature depends only on what never
    // changes for a bundle (its device's identity key, its hash), so it is
    // checked before the write transaction, in parallel with other requests;
    // the transaction uses the verdict only if those facts still match.
    struct SealedCheck {
        std::string device_id, object_hash, identity_key;
        bool valid{false};
    };
    std::optional<SealedCheck> checked;
    auto pre = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT s.device_id, s.object_hash, d.identity_key FROM subscribers s JOIN devices d ON "
                               "d.device_id = s.device_id WHERE s.object_id = ?",
                               {oid});
        if (!rows) return rows.error();
        if (!rows->empty()) checked = SealedCheck{rows->front().str(0), rows->front().str(1), rows->front().str(2), false};
        return {};
    });
    if (!pre) return storage_failure(pre.error());
    auto sealed_receipt_valid = [&](const std::string& device_text, const std::string& hash, const std::string& identity_hex) {
        crypto::SignPublicKey identity{};
        auto device_id = DeviceId::parse(device_text);
        Digest object_hash{};
        (void)key_from_hex(hash, object_hash);
        return key_from_hex(identity_hex, identity) && device_id &&
               verify_receipt(*receipt, identity, *device_id, object_hash, pkh).ok();
    };
    if (checked) checked->valid = sealed_receipt_valid(checked->device_id, checked->object_hash, checked->identity_key);
    auto st = db_.transact([&](Connection& conn) -> Status {
        // Rows are locked device first, then its subscriber, as the
        // deprovisioning takes them: the two never wait on each other in a
        // cycle (on PostgreSQL, a deadlock that costs a second). A bundle's
        // device never changes, so the device the read above found is it.
        if (checked) {
            auto lock = conn.query("SELECT device_id FROM devices WHERE device_id = ?" + std::string(conn.for_update()),
                                   {checked->device_id});
            if (!lock) return lock.error();
        }
        auto sub = conn.query("SELECT imsi, device_id, state, mode, object_hash, expires_at, receipt FROM subscribers "
                              "WHERE object_id = ?" + std::string(conn.for_update()),
                              {oid});
        if (!sub) return sub.error();
        auto fa = conn.query("SELECT imsi, state, provisioner_id, object_hash, not_after, signed_object FROM "
                             "field_authorisations WHERE id = ?" + std::string(conn.for_update()),
                             {oid});
        if (!fa) return fa.error();
        if (sub->empty() && fa->empty()) return refuse(404, "not-found", "no bundle or field authorisation has this id");

        if (!fa->empty()) {
            // ---- field mode ----
            mode = "field";
            const Row& a = fa->front();
            const std::string imsi = a.str(0);
            target = "imsi:" + imsi;
            if (a.str(2) != p.id) return refuse(403, "not-your-authorisation", "the field authorisation belongs to another provisioner");
            if (a.str(1) == "used") {
                if (!sub->empty() && sub->front().str(6) == receipt_b64) {
                    outcome = Outcome::same;
                    result = {{"imsi", imsi}, {"state", sub->front().str(2)}, {"mode", "field"}, {"device_id", sub->front().str(1)}};
                    return {};
                }
                alarm = true;
                return refuse(409, "field-authorisation-used",
                              "this field authorisation was already activated; a second receipt changes nothing and was reported");
            }
            if (a.str(1) == "expired" || (a.str(1) == "reserved" && a.i64(4) < t)) {
                return refuse(410, "expired", "the field authorisation has expired");
            }
            if (a.str(1) != "reserved") return refuse(409, "field-authorisation-" + a.str(1), "the field authorisation is " + a.str(1));
            if (device == nullptr) return refuse(400, "invalid-request", "field 'device' is required for a field-mode receipt");
            std::string refusal;
            auto v = vouch_device(conn, c, *device, refusal);
            if (!v) {
                if (v.error().code == ErrorCode::malformed) return refuse(400, "invalid-request", "field 'device': " + v.error().message);
                return v.error();
            }
            if (!refusal.empty()) return refuse(403, "device-not-vouched", refusal);
            Digest object_hash{};
            (void)key_from_hex(a.str(3), object_hash);
            if (!verify_receipt(*receipt, v->identity, v->id, object_hash, pkh)) {
                return refuse(422, "invalid-receipt", "the receipt does not verify for this device, authorisation and provisioner");
            }
            if (receipt->result != ReceiptResult::committed) {
                outcome = Outcome::rejected_by_device;
                return {};
            }
            if (!receipt->field_keys || !receipt->field_salt) {
                return refuse(422, "invalid-receipt", "a field-mode receipt must carry the sealed keys");
            }
            auto live = conn.query("SELECT imsi FROM subscribers WHERE device_id = ? AND state IN ('pending', 'active')",
                                   {v->id.to_string()});
            if (!live) return live.error();
            if (!live->empty()) return refuse(409, "conflict", "the device already holds a subscription; deprovision it first");
            ReceiptContent content;
            content.device = v->id;
            content.object_id = receipt->object_id;
            content.object_hash = object_hash;
            content.provisioner_key_hash = pkh;
            content.result = receipt->result;
            content.field_salt = receipt->field_salt;
            auto keys = open_keys(context::seal_field, keys_.current.box, keys_.current.box.public_key, v->box,
                                  content.encode_header(), *receipt->field_keys);
            if (!keys) return refuse(422, "invalid-receipt", "the sealed keys in the receipt do not open");
            auto ins = conn.exec(
                "INSERT INTO subscribers (imsi, device_id, state, mode, object_id, object_hash, signed_object, provisioner_id, "
                "keys_enc, amf, sqn, epoch, created_at, activated_at, receipt) VALUES (?, ?, 'active', 'field', ?, ?, ?, ?, ?, "
                "?, 0, 0, ?, ?, ?)",
                {imsi, v->id.to_string(), oid, a.str(3), a.str(5), p.id, data_key_.seal(imsi, *keys), config_.amf_hex, t, t,
                 receipt_b64});
            if (!ins) return ins.error();
            auto upd = conn.exec("UPDATE field_authorisations SET state = 'used' WHERE id = ? AND state = 'reserved'", {oid});
            if (!upd) return upd.error();
            auto own = conn.exec("UPDATE devices SET owner_key = ? WHERE device_id = ?",
                                 {to_hex(keys_.current.sign.public_key), v->id.to_string()});
            if (!own) return own.error();
            if (auto au = audit(conn, c, "subscriber.activate", target, "ok", "field receipt from device " + v->id.to_string()); !au) {
                return au;
            }
            if (auto q = enqueue_core(conn, imsi, "upsert", "activate"); !q) return q;
            outcome = Outcome::activated;
            result = {{"imsi", imsi}, {"state", "active"}, {"mode", "field"}, {"device_id", v->id.to_string()}};
            return {};
        }

        // ---- sealed mode ----
        mode = "sealed";
        const Row& s = sub->front();
        const std::string imsi = s.str(0);
        target = "imsi:" + imsi;
        const std::string state = s.str(2);
        auto dev = conn.query("SELECT identity_key FROM devices WHERE device_id = ?", {s.str(1)});
        if (!dev) return dev.error();
        crypto::SignPublicKey identity{};
        if (dev->empty() || !key_from_hex(dev->front().str(0), identity)) {
            return make_error(ErrorCode::storage, "the device row of a subscriber is missing");
        }
        const bool same_facts = checked && checked->device_id == s.str(1) && checked->object_hash == s.str(4) &&
                                checked->identity_key == dev->front().str(0);
        const bool valid = same_facts ? checked->valid : sealed_receipt_valid(s.str(1), s.str(4), dev->front().str(0));
        if (s.str(6) == receipt_b64) {
            // The same receipt again (a retry after a lost answer): the
            // subscriber's current state, whatever happened since.
            outcome = Outcome::same;
            result = {{"imsi", imsi}, {"state", state}, {"mode", "sealed"}, {"device_id", s.str(1)}};
            return {};
        }
        if (state == "active") {
            if (s.str(6) == receipt_b64 || (valid && receipt->result == ReceiptResult::committed)) {
                outcome = Outcome::same;
                result = {{"imsi", imsi}, {"state", "active"}, {"mode", "sealed"}, {"device_id", s.str(1)}};
                return {};
            }
            return refuse(422, "invalid-receipt", "the receipt does not verify for this device, bundle and provisioner");
        }
        if (state == "expired" || (state == "pending" && s.i64(5) < t)) {
            return refuse(410, "expired", "the pending subscriber expired before the receipt arrived");
        }
        if (state != "pending") return refuse(409, "subscriber-" + state, "the subscriber is " + state);
        if (!valid) return refuse(422, "invalid-receipt", "the receipt does not verify for this device, bundle and provisioner");
        if (receipt->result != ReceiptResult::committed) {
            outcome = Outcome::rejected_by_device;
            return {};
        }
        auto upd = conn.exec("UPDATE subscribers SET state = 'active', activated_at = ?, expires_at = NULL, receipt = ? "
                             "WHERE imsi = ? AND state = 'pending'",
                             {t, receipt_b64, imsi});
        if (!upd) return upd.error();
        auto own = conn.exec("UPDATE devices SET owner_key = ? WHERE device_id = ?",
                             {to_hex(keys_.current.sign.public_key), s.str(1)});
        if (!own) return own.error();
        if (auto au = audit(conn, c, "subscriber.activate", target, "ok", "sealed receipt for bundle " + oid); !au) return au;
        if (auto q = enqueue_core(conn, imsi, "upsert", "activate"); !q) return q;
        outcome = Outcome::activated;
        result = {{"imsi", imsi}, {"state", "active"}, {"mode", "sealed"}, {"device_id", s.str(1)}};
        return {};
    });
    if (fail_status != 0) {
        if (alarm) metrics_.add("credprov_field_alarms_total");
        if (fail_status == 400) return bad_request(detail);
        if (fail_status == 404) return not_found("bundle or field authorisation");
        return reject(c, alarm ? "field.second-receipt" : "receipt.submit", target, fail_status, slug,
                      fail_status == 403 ? "Forbidden" : fail_status == 410 ? "Gone" : "Receipt refused", detail);
    }
    if (!st) return storage_failure(st.error());
    if (outcome == Outcome::rejected_by_device) {
        return reject(c, "receipt.submit", target, 409, "device-rejected", "The device rejected the delivery",
                      "the device reports that it did not commit the credential; the subscriber stays as it was");
    }
    if (outcome == Outcome::activated) metrics_.add("credprov_registrations_total", labels({{"mode", mode}}));
    return Reply::success(result);
}

// ---- field pools -----------------------------------------------------------------------------

Reply Service::reserve_field_pool(const Caller& c, const json& body) {
    const Provisioner& p = *c.provisioner;
    if (!enrolled_for(p, Operation::deliver_field)) {
        return reject(c, "field.reserve", "provisioner:" + p.id, 403, "operation-not-enrolled", "Forbidden",
                      "the provisioner is not enrolled for deliver-field");
    }
    Fields f(body);
    auto request_id = f.text("request_id", 1, 64);
    auto count = f.integer("count", 1, static_cast<std::int64_t>(config_.field_pool_max));
    if (!f.done()) return bad_request(f.error());
    json result;
    int status = 201;
    std::string conflict;
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto pool = conn.query("SELECT id FROM field_pools WHERE provisioner_id = ? AND request_id = ?", {p.id, *request_id});
        if (!pool) return pool.error();
        std::string pool_id;
        if (!pool->empty()) {
            status = 200;  // the same request again: the same pool
            pool_id = pool->front().str(0);
        } else {
            pool_id = random_id("pool_").substr(0, 21);
            const auto t = static_cast<std::int64_t>(now());
            auto ins = conn.exec("INSERT INTO field_pools (id, provisioner_id, request_id, created_at) VALUES (?, ?, ?, ?)",
                                 {pool_id, p.id, *request_id, t});
            if (!ins) return ins.error();
            Bytes amf;
            (void)from_hex(config_.amf_hex, amf);
            for (std::int64_t i = 0; i < *count; ++i) {
                auto imsi = allocate_imsi(conn);
                if (!imsi) {
                    if (imsi.error().code == ErrorCode::oversized) conflict = imsi.error().message;
                    return imsi.error();
                }
                FieldAuthorisation a;
                a.id = BundleId::random();
                a.provisioner_key_hash = digest(p.key);
                a.profile.imsi = *Imsi::parse(*imsi);
                a.profile.amf = {amf[0], amf[1]};
                a.profile.plmn = *Plmn::parse(config_.plmn);
                a.profile.network_name = *NetworkName::parse(config_.network_name);
                a.issued_at = static_cast<std::uint64_t>(t);
                a.not_after = static_cast<std::uint64_t>(t) + config_.field_ttl_s;
                const SignedObject obj = issue_field_authorisation(keys_.current.sign, a);
                auto fa = conn.exec("INSERT INTO field_authorisations (id, pool_id, provisioner_id, imsi, state, "
                                    "signed_object, object_hash, not_after, created_at) VALUES (?, ?, ?, ?, 'reserved', ?, ?, ?, ?)",
                                    {a.id.to_string(), pool_id, p.id, *imsi, base64_encode(obj.encode()), to_hex(obj.hash()),
                                     static_cast<std::int64_t>(a.not_after), t});
                if (!fa) return fa.error();
            }
            if (auto au = audit(conn, c, "field.reserve", "pool:" + pool_id, "ok", std::to_string(*count) + " authorisations");
                !au) {
                return au;
            }
        }
        auto rows = conn.query("SELECT id, imsi, state, not_after, signed_object FROM field_authorisations WHERE pool_id = ? "
                               "ORDER BY imsi",
                               {pool_id});
        if (!rows) return rows.error();
        json list = json::array();
        for (const Row& r : *rows) {
            list.push_back({{"id", r.str(0)}, {"imsi", r.str(1)}, {"state", r.str(2)}, {"not_after", r.i64(3)},
                            {"authorisation", r.str(4)}});
        }
        result = {{"pool_id", pool_id}, {"authorisations", list}};
        return {};
    });
    if (!conflict.empty()) return reject(c, "field.reserve", "provisioner:" + p.id, 409, "imsi-range-exhausted", "Conflict", conflict);
    if (!st) return storage_failure(st.error());
    return Reply::success(result, status);
}

Reply Service::return_field_pool(const Caller& c, const std::string& pool_id, const json& body) {
    const Provisioner& p = *c.provisioner;
    Fields f(body);
    const json* ids = f.get("ids", false);
    if (!f.done()) return bad_request(f.error());
    std::vector<std::string> wanted;
    const bool all = ids == nullptr;  // an explicit empty list returns nothing
    if (ids) {
        if (!ids->is_array() || ids->size() > 10000) return bad_request("field 'ids' must be a list of authorisation ids");
        for (const auto& id : *ids) {
            Bytes b;
            if (!id.is_string() || !from_hex(id.get<std::string>(), b) || b.size() != BundleId::kBytes) {
                return bad_request("field 'ids' must hold authorisation ids (32 hex digits)");
            }
            wanted.push_back(to_hex(b));
        }
    }
    if (pool_id.size() > 64) return bad_request("the pool id is too long");
    bool found = false, foreign = false;
    std::int64_t returned = 0;
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto pool = conn.query("SELECT provisioner_id FROM field_pools WHERE id = ?", {pool_id});
        if (!pool) return pool.error();
        if (pool->empty()) return {};
        found = true;
        if (pool->front().str(0) != p.id) {
            foreign = true;
            return {};
        }
        returned = 0;
        if (all) {
            auto upd = conn.exec("UPDATE field_authorisations SET state = 'returned' WHERE pool_id = ? AND state = 'reserved'",
                                 {pool_id});
            if (!upd) return upd.error();
            returned = *upd;
        } else {
            for (const auto& id : wanted) {
                auto upd = conn.exec("UPDATE field_authorisations SET state = 'returned' WHERE pool_id = ? AND id = ? AND "
                                     "state = 'reserved'",
                                     {pool_id, id});
                if (!upd) return upd.error();
                returned += *upd;
            }
        }
        return audit(conn, c, "field.return", "pool:" + pool_id, "ok", std::to_string(returned) + " returned");
    });
    if (!st) return storage_failure(st.error());
    if (!found) return not_found("field pool");
    if (foreign) {
        return reject(c, "field.return", "pool:" + pool_id, 403, "not-your-pool", "Forbidden", "the pool belongs to another provisioner");
    }
    return Reply::success({{"pool_id", pool_id}, {"returned", returned}});
}

// ---- deprovisioning ---------------------------------------------------------------------------

Reply Service::deprovision_device(const Caller& c, const std::string& raw_id, const json& body) {
    Fields f(body);
    auto reason = f.text("reason", 1, 200);
    if (!f.done()) return bad_request(f.error());
    auto id = DeviceId::parse(raw_id);
    if (!id) return bad_request("the device id must be 26 base32 characters");
    const std::string device_id = id->to_string();  // canonical lower case
    if (c.kind == Caller::Kind::provisioner) {
        const Provisioner& p = *c.provisioner;
        if (!enrolled_for(p, Operation::deprovision) || !fits_prefix(p, *id)) {
            return reject(c, "device.deprovision", "device:" + device_id, 403, "not-authorised", "Forbidden",
                          "the provisioner is not enrolled to deprovision this device");
        }
    }
    json result;
    bool found = false;
    std::string conflict;
    std::int64_t changed = 0;
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto dev = conn.query("SELECT owner_counter, owner_key, notice FROM devices WHERE device_id = ?" +
                                  std::string(conn.for_update()),
                              {device_id});
        if (!dev) return dev.error();
        if (dev->empty()) return {};
        found = true;
        const Row& d = dev->front();
        auto live = conn.query("SELECT imsi FROM subscribers WHERE device_id = ? AND state IN ('pending', 'active') ORDER BY imsi",
                               {device_id});
        if (!live) return live.error();
        if (live->empty()) {
            if (d.is_null(2)) {
                conflict = "the device holds no subscription to deprovision";
                return {};
            }
            // Idempotent: already deprovisioned; the same notice again.
            result = {{"device_id", device_id}, {"deprovisioned", json::array()}, {"counter", d.i64(0)}, {"notice", d.str(2)}};
            return {};
        }
        crypto::SignPublicKey owner = keys_.current.sign.public_key;
        if (!d.is_null(1)) (void)key_from_hex(d.str(1), owner);
        const OperatorIdentity* signer = keys_.find(owner);
        if (signer == nullptr) return make_error(ErrorCode::internal, "the device's owner key is not in the keyring");
        const auto t = static_cast<std::int64_t>(now());
        OwnerCommand cmd;
        cmd.kind = OwnerCommandKind::deprovision;
        cmd.device = *id;
        cmd.counter = static_cast<std::uint64_t>(d.i64(0)) + 1;
        cmd.issued_at = static_cast<std::uint64_t>(t);
        const std::string notice = base64_encode(sign_owner_command(signer->sign, cmd).encode());
        json imsis = json::array();
        for (const Row& r : *live) {
            auto upd = conn.exec("UPDATE subscribers SET state = 'deprovisioned', deprovisioned_at = ?, deprovision_reason = ?, "
                                 "expires_at = NULL WHERE imsi = ?",
                                 {t, *reason, r.str(0)});
            if (!upd) return upd.error();
            imsis.push_back(r.str(0));
            if (auto au = audit(conn, c, "subscriber.deprovision", "imsi:" + r.str(0), "ok", *reason); !au) return au;
            if (auto q = enqueue_core(conn, r.str(0), "remove", "deprovision"); !q) return q;
        }
        auto upd = conn.exec("UPDATE devices SET owner_counter = ?, notice = ? WHERE device_id = ?",
                             {static_cast<std::int64_t>(cmd.counter), notice, device_id});
        if (!upd) return upd.error();
        changed = static_cast<std::int64_t>(imsis.size());
        result = {{"device_id", device_id}, {"deprovisioned", imsis}, {"counter", cmd.counter}, {"notice", notice}};
        return {};
    });
    if (!st) return storage_failure(st.error());
    if (!found) return not_found("device");
    if (!conflict.empty()) return reject(c, "device.deprovision", "device:" + device_id, 409, "not-provisioned", "Conflict", conflict);
    if (changed > 0) metrics_.add("credprov_deprovisionings_total", {}, static_cast<double>(changed));
    return Reply::success(result);
}

Reply Service::device_notice(const Caller&, const std::string& raw_id) {
    auto parsed = DeviceId::parse(raw_id);
    if (!parsed) return bad_request("the device id must be 26 base32 characters");
    const std::string device_id = parsed->to_string();
    std::optional<json> found;
    auto st = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT owner_counter, notice FROM devices WHERE device_id = ?", {device_id});
        if (!rows) return rows.error();
        if (!rows->empty() && !rows->front().is_null(1)) {
            found = json{{"device_id", device_id}, {"counter", rows->front().i64(0)}, {"notice", rows->front().str(1)}};
        }
        return {};
    });
    if (!st) return storage_failure(st.error());
    if (!found) return not_found("deprovisioning notice for this device");
    return Reply::success(*found);
}

}  // namespace credprov::backend
