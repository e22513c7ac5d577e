// Service: admin tokens, provisioner enrolment, manufacturers and inventory.
#include <sodium.h>

#include "credprov/backend/service.hpp"
#include "request_fields.hpp"
#include "service_internal.hpp"

namespace credprov::backend {

using namespace detail;

namespace {

constexpr std::string_view kTokenPrefix = "cpa_";

// Admin tokens are 256-bit random values; only their hash is stored. A fast
// hash is right for a high-entropy secret.
std::string token_hash(std::string_view token) {
    return to_hex(crypto::sha512({as_bytes("credprov/v1 admin-token"), ByteView(), as_bytes(token)}));
}

Provisioner provisioner_from_row(const Row& r) {
    Provisioner p;
    p.id = r.str(0);
    p.name = r.str(1);
    (void)key_from_hex(r.str(2), p.key);
    p.operations = operations_from_text(r.str(3));
    (void)from_hex(r.str(4), p.device_prefix);
    p.revoked = !r.is_null(5);
    return p;
}

constexpr std::string_view kProvisionerColumns =
    "id, name, public_key, operations, device_prefix, revoked_at, created_at, revoke_reason";

json provisioner_json(const Row& r) {
    const Provisioner p = provisioner_from_row(r);
    json j{{"id", p.id},
           {"name", p.name},
           {"public_key", to_hex(p.key)},
           {"operations", operations_json(p.operations)},
           {"device_prefix", to_hex(p.device_prefix)},
           {"created_at", r.i64(6)},
           {"revoked", p.revoked}};
    j["revoked_at"] = r.is_null(5) ? json(nullptr) : json(r.i64(5));
    j["revoke_reason"] = r.is_null(7) ? json(nullptr) : json(r.str(7));
    return j;
}

// The provisioner `id` as the API shows it (in the caller's transaction).
Result<json> provisioner_by_id(Connection& conn, const std::string& id) {
    auto rows = conn.query("SELECT " + std::string(kProvisionerColumns) + " FROM provisioners WHERE id = ?", {id});
    if (!rows) return rows.error();
    if (rows->empty()) return make_error(ErrorCode::storage, "the provisioner row vanished");
    return provisioner_json(rows->front());
}

}  // namespace

void Service::record_auth_failure(std::string_view kind, const std::string& remote, std::string_view detail) {
    metrics_.add("credprov_auth_failures_total", labels({{"kind", kind}}));
    Caller anon;
    anon.remote = remote;
    anon.id = "unauthenticated";
    (void)db_.transact([&](Connection& conn) {
        return audit(conn, anon, "auth." + std::string(kind), "-", "rejected:unauthenticated", std::string(detail));
    });
}

Result<Caller> Service::authenticate_admin(std::string_view bearer, const std::string& remote) {
    if (!bearer.starts_with(kTokenPrefix) || bearer.size() != kTokenPrefix.size() + 64) {
        return make_error(ErrorCode::auth_failed, "the bearer token is not a credprov admin token");
    }
    std::optional<Caller> caller;
    auto st = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT id, role FROM admin_tokens WHERE token_hash = ? AND revoked_at IS NULL",
                               {token_hash(bearer)});
        if (!rows) return rows.error();
        if (rows->empty()) return {};
        auto role = parse_role(rows->front().str(1));
        if (!role) return {};
        Caller c;
        c.kind = Caller::Kind::admin;
        c.id = rows->front().str(0);
        c.role = *role;
        c.remote = remote;
        caller = c;
        return {};
    });
    if (!st) return st.error();
    if (!caller) return make_error(ErrorCode::auth_failed, "unknown or revoked admin token");
    return *caller;
}

Result<Caller> Service::authenticate_provisioner(std::string_view header, std::string_view method,
                                                 std::string_view target, std::string_view body,
                                                 const std::string& remote) {
    auto sig = parse_signature_header(header);
    if (!sig) return sig.error();
    const std::uint64_t t = now();
    const std::uint64_t skew = config_.clock_skew_s;
    if (sig->timestamp + skew < t || sig->timestamp > t + skew) {
        return make_error(ErrorCode::expired, "the request timestamp is outside the accepted clock window");
    }
    if (auto v = verify_request(*sig, method, target, body); !v) {
        return make_error(ErrorCode::bad_signature, "the request signature does not verify");
    }
    std::optional<Provisioner> p;
    auto st = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT " + std::string(kProvisionerColumns) + " FROM provisioners WHERE public_key = ?",
                               {to_hex(sig->key)});
        if (!rows) return rows.error();
        if (!rows->empty()) p = provisioner_from_row(rows->front());
        return {};
    });
    if (!st) return st.error();
    if (!p) return make_error(ErrorCode::not_authorised, "the signing key is not an enrolled provisioner");
    if (p->revoked) return make_error(ErrorCode::not_authorised, "the provisioner was revoked");
    Caller c;
    c.kind = Caller::Kind::provisioner;
    c.id = p->id;
    c.provisioner = *p;
    c.remote = remote;
    return c;
}

// ---- admin tokens --------------------------------------------------------------------

Reply Service::create_admin_token(const Caller& c, const json& body) {
    Fields f(body);
    auto name = f.text("name", 1, 64);
    auto role_text = f.text("role", 1, 32);
    if (!f.done()) return bad_request(f.error());
    auto role = parse_role(*role_text);
    if (!role) return bad_request("field 'role' must be admin, auditor, provisioner-manager or core-network");
    ByteArray<32> secret{};
    crypto::random_bytes(secret);
    std::string token = std::string(kTokenPrefix) + to_hex(secret);
    sodium_memzero(secret.data(), secret.size());
    const std::string id = random_id("tok_").substr(0, 20);
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto ins = conn.exec("INSERT INTO admin_tokens (id, name, role, token_hash, created_at) VALUES (?, ?, ?, ?, ?)",
                             {id, *name, std::string(to_string(*role)), token_hash(token),
                              static_cast<std::int64_t>(now())});
        if (!ins) return ins.error();
        return audit(conn, c, "admin-token.create", "token:" + id, "ok", "role " + std::string(to_string(*role)));
    });
    if (!st) {
        sodium_memzero(token.data(), token.size());
        return storage_failure(st.error());
    }
    Reply r = Reply::success({{"id", id}, {"name", *name}, {"role", to_string(*role)}, {"token", token}}, 201);
    sodium_memzero(token.data(), token.size());
    return r;
}

Reply Service::list_admin_tokens(const Caller&) {
    json items = json::array();
    auto st = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT id, name, role, created_at, revoked_at FROM admin_tokens ORDER BY created_at, id");
        if (!rows) return rows.error();
        for (const Row& r : *rows) {
            json j{{"id", r.str(0)}, {"name", r.str(1)}, {"role", r.str(2)}, {"created_at", r.i64(3)}};
            j["revoked_at"] = r.is_null(4) ? json(nullptr) : json(r.i64(4));
            items.push_back(j);
        }
        return {};
    });
    if (!st) return storage_failure(st.error());
    return Reply::success({{"items", items}});
}

Reply Service::revoke_admin_token(const Caller& c, const std::string& id) {
    if (id.size() > 64) return bad_request("the token id is too long");
    bool found = false;
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT revoked_at FROM admin_tokens WHERE id = ?", {id});
        if (!rows) return rows.error();
        if (rows->empty()) return {};
        found = true;
        if (!rows->front().is_null(0)) return {};  // already revoked: idempotent
        auto upd = conn.exec("UPDATE admin_tokens SET revoked_at = ? WHERE id = ?", {static_cast<std::int64_t>(now()), id});
        if (!upd) return upd.error();
        return audit(conn, c, "admin-token.revoke", "token:" + id, "ok");
    });
    if (!st) return storage_failure(st.error());
    if (!found) return not_found("admin token");
    return Reply::success({{"id", id}, {"revoked", true}});
}

// ---- provisioners --------------------------------------------------------------------

Reply Service::enrol_provisioner(const Caller& c, const json& body) {
    Fields f(body);
    auto name = f.text("name", 1, 64);
    auto key = f.hex<32>("public_key");
    auto ops = f.operations("operations");
    auto prefix = f.hex_bytes("device_prefix", 0, DeviceId::kBytes, false);
    if (!f.done()) return bad_request(f.error());
    const Bytes pre = prefix.value_or(Bytes{});
    const std::string key_hex = to_hex(*key);
    json result;
    int status = 201;
    std::string conflict;
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT " + std::string(kProvisionerColumns) + " FROM provisioners WHERE public_key = ?",
                               {key_hex});
        if (!rows) return rows.error();
        if (!rows->empty()) {
            // Enrolment is idempotent by public key: the same request again
            // answers with the existing enrolment; a different one conflicts.
            const Provisioner p = provisioner_from_row(rows->front());
            if (p.name == *name && p.operations == *ops && p.device_prefix == pre && !p.revoked) {
                result = provisioner_json(rows->front());
                status = 200;
            } else {
                conflict = p.revoked ? "this key belongs to a revoked provisioner; enrol a new key"
                                     : "this key is enrolled with other settings";
            }
            return {};
        }
        const std::string id = random_id("prv_").substr(0, 20);
        const auto t = static_cast<std::int64_t>(now());
        auto ins = conn.exec("INSERT INTO provisioners (id, name, public_key, key_hash, operations, device_prefix, "
                             "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             {id, *name, key_hex, to_hex(digest(*key)), operations_text(*ops), to_hex(pre), t});
        if (!ins) return ins.error();
        if (auto a = audit(conn, c, "provisioner.enrol", "provisioner:" + id, "ok",
                           "operations " + operations_text(*ops) + " prefix " + to_hex(pre));
            !a) {
            return a;
        }
        auto back = provisioner_by_id(conn, id);
        if (!back) return back.error();
        result = std::move(*back);
        return {};
    });
    if (!st) return storage_failure(st.error());
    if (!conflict.empty()) {
        return reject(c, "provisioner.enrol", "key:" + key_hex, 409, "conflict", "Conflict", conflict);
    }
    return Reply::success(result, status);
}

Reply Service::list_provisioners(const Caller&) {
    json items = json::array();
    auto st = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT " + std::string(kProvisionerColumns) + " FROM provisioners ORDER BY created_at, id");
        if (!rows) return rows.error();
        for (const Row& r : *rows) items.push_back(provisioner_json(r));
        return {};
    });
    if (!st) return storage_failure(st.error());
    return Reply::success({{"items", items}});
}

Reply Service::get_provisioner(const Caller&, const std::string& id) {
    if (id.size() > 64) return bad_request("the provisioner id is too long");
    std::optional<json> found;
    auto st = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT " + std::string(kProvisionerColumns) + " FROM provisioners WHERE id = ?", {id});
        if (!rows) return rows.error();
        if (!rows->empty()) found = provisioner_json(rows->front());
        return {};
    });
    if (!st) return storage_failure(st.error());
    if (!found) return not_found("provisioner");
    return Reply::success(*found);
}

Reply Service::revoke_provisioner(const Caller& c, const std::string& id, const json& body) {
    Fields f(body);
    auto reason = f.text("reason", 1, 200);
    if (!f.done()) return bad_request(f.error());
    if (id.size() > 64) return bad_request("the provisioner id is too long");
    std::optional<json> found;
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT revoked_at FROM provisioners WHERE id = ?", {id});
        if (!rows) return rows.error();
        if (rows->empty()) return {};
        if (rows->front().is_null(0)) {
            auto upd = conn.exec("UPDATE provisioners SET revoked_at = ?, revoke_reason = ? WHERE id = ?",
                                 {static_cast<std::int64_t>(now()), *reason, id});
            if (!upd) return upd.error();
            // Its unused field authorisations go back to the operator.
            auto ret = conn.exec("UPDATE field_authorisations SET state = 'returned' WHERE provisioner_id = ? AND "
                                 "state = 'reserved'",
                                 {id});
            if (!ret) return ret.error();
            if (auto a = audit(conn, c, "provisioner.revoke", "provisioner:" + id, "ok", *reason); !a) return a;
        }
        auto back = conn.query("SELECT " + std::string(kProvisionerColumns) + " FROM provisioners WHERE id = ?", {id});
        if (!back) return back.error();
        found = provisioner_json(back->front());
        return {};
    });
    if (!st) return storage_failure(st.error());
    if (!found) return not_found("provisioner");
    return Reply::success(*found);
}

// ---- enrolment tokens --------------------------------------------------------------------

namespace {
constexpr std::string_view kEnrolmentPrefix = "cpe_";
std::string enrolment_hash(std::string_view token) {
    return to_hex(crypto::sha512({as_bytes("credprov/v1 enrolment-token"), ByteView(), as_bytes(token)}));
}
}  // namespace

Reply Service::create_enrolment_token(const Caller& c, const json& body) {
    Fields f(body);
    auto name = f.text("name", 1, 64);
    auto ops = f.operations("operations");
    auto prefix = f.hex_bytes("device_prefix", 0, DeviceId::kBytes, false);
    auto ttl = f.integer("ttl_s", 60, 30 * 86400, false);
    if (!f.done()) return bad_request(f.error());
    ByteArray<32> secret{};
    crypto::random_bytes(secret);
    std::string token = std::string(kEnrolmentPrefix) + to_hex(secret);
    sodium_memzero(secret.data(), secret.size());
    const std::string id = random_id("enr_").substr(0, 20);
    const auto t = static_cast<std::int64_t>(now());
    const std::int64_t expires = t + ttl.value_or(86400);
    const Bytes pre = prefix.value_or(Bytes{});
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto ins = conn.exec("INSERT INTO enrolment_tokens (id, token_hash, name, operations, device_prefix, created_by, "
                             "created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                             {id, enrolment_hash(token), *name, operations_text(*ops), to_hex(pre), c.actor(), t, expires});
        if (!ins) return ins.error();
        return audit(conn, c, "enrolment-token.create", "enrolment:" + id, "ok",
                     "for " + *name + ", operations " + operations_text(*ops));
    });
    if (!st) {
        sodium_memzero(token.data(), token.size());
        return storage_failure(st.error());
    }
    Reply r = Reply::success({{"id", id},
                              {"name", *name},
                              {"token", token},
                              {"operations", operations_json(*ops)},
                              {"device_prefix", to_hex(pre)},
                              {"expires_at", expires}},
                             201);
    sodium_memzero(token.data(), token.size());
    return r;
}

Reply Service::enrol_with_token(const Caller& c, const json& body) {
    Fields f(body);
    auto token = f.text("enrolment_token", 1, 80);
    auto key = f.hex<32>("public_key");
    auto proof = f.hex<64>("proof");
    auto name = f.text("name", 1, 64, false);
    if (!f.done()) return bad_request(f.error());
    if (!token->starts_with(kEnrolmentPrefix) || token->size() != kEnrolmentPrefix.size() + 64) {
        record_auth_failure("enrolment-token", c.remote, "malformed enrolment token");
        return Reply::problem(401, "unauthenticated", "Authentication required", "the enrolment token is not valid");
    }
    if (!crypto::verify(*key, kEnrolmentContext, as_bytes(*token), *proof)) {
        record_auth_failure("enrolment-proof", c.remote, "proof of key possession does not verify");
        return Reply::problem(422, "invalid-proof", "Proof refused",
                              "the proof is not a signature by this key over the enrolment token");
    }
    const std::string key_hex = to_hex(*key);
    json result;
    int status = 201;
    std::string refusal;
    int refusal_status = 401;
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT id, name, operations, device_prefix, expires_at, used_at, provisioner_id FROM "
                               "enrolment_tokens WHERE token_hash = ?" + std::string(conn.for_update()),
                               {enrolment_hash(*token)});
        if (!rows) return rows.error();
        if (rows->empty()) {
            refusal = "the enrolment token is not valid";
            return {};
        }
        const Row& e = rows->front();
        const std::string enrolment_id = e.str(0);
        if (!e.is_null(5)) {
            // Spent: the same key again is a retry and gets the same answer.
            auto p = conn.query("SELECT " + std::string(kProvisionerColumns) + " FROM provisioners WHERE id = ?", {e.str(6)});
            if (!p) return p.error();
            if (!p->empty() && p->front().str(2) == key_hex) {
                status = 200;
                result = provisioner_json(p->front());
            } else {
                refusal = "the enrolment token was already used";
                refusal_status = 409;
            }
            return {};
        }
        const auto t = static_cast<std::int64_t>(now());
        if (e.i64(4) < t) {
            refusal = "the enrolment token expired";
            refusal_status = 410;
            return {};
        }
        auto taken = conn.query("SELECT id FROM provisioners WHERE public_key = ?", {key_hex});
        if (!taken) return taken.error();
        if (!taken->empty()) {
            refusal = "this key is already enrolled";
            refusal_status = 409;
            return {};
        }
        const std::string id = random_id("prv_").substr(0, 20);
        const std::string pname = name.value_or(e.str(1));
        auto ins = conn.exec("INSERT INTO provisioners (id, name, public_key, key_hash, operations, device_prefix, created_at) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)",
                             {id, pname, key_hex, to_hex(digest(*key)), e.str(2), e.str(3), t});
        if (!ins) return ins.error();
        auto used = conn.exec("UPDATE enrolment_tokens SET used_at = ?, provisioner_id = ? WHERE id = ?", {t, id, enrolment_id});
        if (!used) return used.error();
        Caller self = c;
        self.kind = Caller::Kind::provisioner;
        self.id = id;
        if (auto a = audit(conn, self, "provisioner.enrol", "provisioner:" + id, "ok", "with enrolment token " + enrolment_id); !a) {
            return a;
        }
        auto back = provisioner_by_id(conn, id);
        if (!back) return back.error();
        result = std::move(*back);
        return {};
    });
    if (!st) return storage_failure(st.error());
    if (!refusal.empty()) {
        if (refusal_status == 401) {
            record_auth_failure("enrolment-token", c.remote, refusal);
            return Reply::problem(401, "unauthenticated", "Authentication required", refusal);
        }
        return reject(c, "provisioner.enrol", "key:" + key_hex, refusal_status, refusal_status == 410 ? "expired" : "conflict",
                      refusal_status == 410 ? "Gone" : "Conflict", refusal);
    }
    return Reply::success(result, status);
}

// ---- manufacturers and inventory -------------------------------------------------------

Reply Service::add_manufacturer(const Caller& c, const json& body) {
    Fields f(body);
    auto name = f.text("name", 1, 32);
    auto key = f.hex<32>("public_key");
    if (!f.done()) return bad_request(f.error());
    std::string conflict;
    int status = 201;
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT public_key FROM manufacturers WHERE name = ?", {*name});
        if (!rows) return rows.error();
        if (!rows->empty()) {
            if (rows->front().str(0) == to_hex(*key)) {
                status = 200;
            } else {
                conflict = "a manufacturer of this name exists with another key";
            }
            return {};
        }
        auto ins = conn.exec("INSERT INTO manufacturers (name, public_key, created_at) VALUES (?, ?, ?)",
                             {*name, to_hex(*key), static_cast<std::int64_t>(now())});
        if (!ins) return ins.error();
        return audit(conn, c, "manufacturer.add", "manufacturer:" + *name, "ok");
    });
    if (!st) return storage_failure(st.error());
    if (!conflict.empty()) return reject(c, "manufacturer.add", "manufacturer:" + *name, 409, "conflict", "Conflict", conflict);
    return Reply::success({{"name", *name}, {"public_key", to_hex(*key)}}, status);
}

Reply Service::list_manufacturers(const Caller&) {
    json items = json::array();
    auto st = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT name, public_key, created_at FROM manufacturers ORDER BY name");
        if (!rows) return rows.error();
        for (const Row& r : *rows) items.push_back({{"name", r.str(0)}, {"public_key", r.str(1)}, {"created_at", r.i64(2)}});
        return {};
    });
    if (!st) return storage_failure(st.error());
    return Reply::success({{"items", items}});
}

Reply Service::import_inventory(const Caller& c, const json& body) {
    Fields f(body);
    const json* list = f.get("devices", true);
    if (!f.done()) return bad_request(f.error());
    if (!list->is_array() || list->empty() || list->size() > 1000) {
        return bad_request("field 'devices' must be a list of 1 to 1000 devices");
    }
    struct Entry {
        DeviceId id;
        crypto::SignPublicKey identity;
        crypto::BoxPublicKey box;
    };
    std::vector<Entry> entries;
    for (std::size_t i = 0; i < list->size(); ++i) {
        Fields d((*list)[i]);
        auto id = d.device_id("device_id");
        auto identity = d.hex<32>("identity_key");
        auto box = d.hex<32>("box_key");
        auto box_sig = d.hex<64>("box_signature");
        if (!d.done()) return bad_request("devices[" + std::to_string(i) + "]: " + d.error());
        if (DeviceId::from_public_key(*identity) != *id) {
            return bad_request("devices[" + std::to_string(i) + "]: the device id is not the hash of its identity key");
        }
        if (!box_key_signed(*identity, *box, *box_sig)) {
            return bad_request("devices[" + std::to_string(i) + "]: the box key is not signed by the identity key");
        }
        entries.push_back({*id, *identity, *box});
    }
    std::int64_t imported = 0, existing = 0;
    std::string conflict;
    auto st = db_.transact([&](Connection& conn) -> Status {
        imported = existing = 0;
        for (const Entry& e : entries) {
            auto rows = conn.query("SELECT identity_key, box_key FROM devices WHERE device_id = ?", {e.id.to_string()});
            if (!rows) return rows.error();
            if (!rows->empty()) {
                if (rows->front().str(0) != to_hex(e.identity) || rows->front().str(1) != to_hex(e.box)) {
                    conflict = "device " + e.id.to_string() + " is known with other keys";
                    return make_error(ErrorCode::bad_state, conflict);
                }
                ++existing;
                continue;
            }
            auto ins = conn.exec("INSERT INTO devices (device_id, identity_key, box_key, vouched_by, owner_counter, "
                                 "created_at) VALUES (?, ?, ?, 'inventory', 0, ?)",
                                 {e.id.to_string(), to_hex(e.identity), to_hex(e.box), static_cast<std::int64_t>(now())});
            if (!ins) return ins.error();
            ++imported;
        }
        return audit(conn, c, "inventory.import", "devices", "ok",
                     std::to_string(imported) + " imported, " + std::to_string(existing) + " already known");
    });
    if (!conflict.empty()) return reject(c, "inventory.import", "devices", 409, "conflict", "Conflict", conflict);
    if (!st) return storage_failure(st.error());
    return Reply::success({{"imported", imported}, {"existing", existing}});
}

}  // namespace credprov::backend
