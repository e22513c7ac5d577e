// Service: shared plumbing, listings, the audit API and the sweeper.
#include "credprov/backend/service.hpp"

#include <sodium.h>

#include <chrono>

#include "credprov/backend/audit.hpp"
#include "request_fields.hpp"
#include "service_internal.hpp"

namespace credprov::backend {

using namespace detail;

std::string_view to_string(Role r) noexcept {
    switch (r) {
        case Role::admin: return "admin";
        case Role::auditor: return "auditor";
        case Role::provisioner_manager: return "provisioner-manager";
        case Role::core_network: return "core-network";
    }
    return "unknown";
}

std::optional<Role> parse_role(std::string_view s) noexcept {
    for (Role r : {Role::admin, Role::auditor, Role::provisioner_manager, Role::core_network}) {
        if (to_string(r) == s) return r;
    }
    return std::nullopt;
}

std::string Caller::actor() const {
    switch (kind) {
        case Kind::admin: return "admin:" + id;
        case Kind::provisioner: return "provisioner:" + id;
        case Kind::local: return "cli:" + id;
        case Kind::anonymous: return "anonymous";
    }
    return "unknown";
}

Reply Reply::success(json body, int status) {
    Reply r;
    r.status = status;
    r.body = std::move(body);
    return r;
}

Reply Reply::problem(int status, std::string_view slug, std::string_view title, std::string detail) {
    Reply r;
    r.status = status;
    r.body = json{{"type", "urn:credprov:problem:" + std::string(slug)},
                  {"title", std::string(title)},
                  {"status", status},
                  {"detail", std::move(detail)}};
    return r;
}

const OperatorIdentity* OperatorKeyring::find(const crypto::SignPublicKey& key) const {
    if (current.sign.public_key == key) return &current;
    for (const auto& k : retired) {
        if (k.sign.public_key == key) return &k;
    }
    return nullptr;
}

namespace detail {

std::string random_id(std::string_view prefix) {
    ByteArray<16> b{};
    crypto::random_bytes(b);
    return std::string(prefix) + to_hex(b);
}

json operations_json(const std::vector<Operation>& ops) {
    json a = json::array();
    for (Operation op : ops) a.push_back(std::string(to_string(op)));
    return a;
}

std::string operations_text(const std::vector<Operation>& ops) {
    std::string s;
    for (Operation op : ops) {
        if (!s.empty()) s += ',';
        s += std::to_string(static_cast<int>(op));
    }
    return s;
}

std::vector<Operation> operations_from_text(const std::string& s) {
    std::vector<Operation> ops;
    std::size_t i = 0;
    while (i < s.size()) {
        const auto j = s.find(',', i);
        const int v = std::atoi(s.substr(i, j - i).c_str());
        if (v >= 1 && v <= static_cast<int>(kMaxOperation)) ops.push_back(static_cast<Operation>(v));
        if (j == std::string::npos) break;
        i = j + 1;
    }
    return ops;
}

bool fits_prefix(const Provisioner& p, const DeviceId& d) {
    return p.device_prefix.empty() || has_prefix(d, p.device_prefix);
}

}  // namespace detail

std::string base64_encode(ByteView data) {
    std::string out(sodium_base64_ENCODED_LEN(data.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(out.data(), out.size(), data.data(), data.size(), sodium_base64_VARIANT_ORIGINAL);
    out.resize(out.size() - 1);  // the terminating NUL
    return out;
}

std::optional<Bytes> base64_decode(std::string_view text, std::size_t max_bytes) {
    std::string compact;
    for (const char ch : text) {
        if (ch != ' ' && ch != '\n' && ch != '\r' && ch != '\t') compact += ch;
    }
    if (compact.size() > (max_bytes / 3 + 1) * 4) return std::nullopt;
    Bytes out(compact.size());
    std::size_t len = 0;
    if (sodium_base642bin(out.data(), out.size(), compact.data(), compact.size(), nullptr, &len, nullptr,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        len > max_bytes) {
        return std::nullopt;
    }
    out.resize(len);
    return out;
}

std::optional<Bytes> Fields::base64(const std::string& key, std::size_t max_bytes, bool required) {
    const nlohmann::json* v = get(key, required);
    if (!v) return std::nullopt;
    std::optional<Bytes> out;
    if (v->is_string()) out = base64_decode(v->get_ref<const std::string&>(), max_bytes);
    if (!out) fail(key, "must be standard base64 of at most " + std::to_string(max_bytes) + " bytes");
    return out;
}

std::optional<std::vector<Operation>> Fields::operations(const std::string& key, bool required) {
    const nlohmann::json* v = get(key, required);
    if (!v) return std::nullopt;
    if (!v->is_array() || v->empty() || v->size() > kMaxOperation) {
        return fail(key, "must be a non-empty list of operation names"), std::nullopt;
    }
    std::vector<Operation> ops;
    for (const auto& item : *v) {
        bool found = false;
        for (std::uint64_t i = 1; i <= kMaxOperation && item.is_string(); ++i) {
            const auto op = static_cast<Operation>(i);
            if (to_string(op) == item.get_ref<const std::string&>()) {
                found = true;
                if (std::find(ops.begin(), ops.end(), op) == ops.end()) ops.push_back(op);
            }
        }
        if (!found) {
            return fail(key, "lists an unknown operation (known: query, deliver-sealed, deliver-field, reconfigure, "
                             "diagnose, deprovision, transfer)"),
                   std::nullopt;
        }
    }
    std::sort(ops.begin(), ops.end());
    return ops;
}

Service::Service(BackendConfig config, Database& db, OperatorKeyring keys, DataKey data_key, Metrics& metrics,
                 std::function<std::uint64_t()> clock)
    : config_(std::move(config)), db_(db), keys_(std::move(keys)), data_key_(std::move(data_key)), metrics_(metrics),
      clock_(clock ? std::move(clock) : [] {
          return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::seconds>(
                                                std::chrono::system_clock::now().time_since_epoch())
                                                .count());
      }) {}

AuditEntry Service::audit_entry(const Caller& c, std::string_view action, const std::string& target,
                                std::string_view outcome, const std::string& detail) {
    AuditEntry e;
    e.at = static_cast<std::int64_t>(now());
    e.actor = c.actor();
    e.action = std::string(action);
    e.target = target;
    e.outcome = std::string(outcome);
    e.detail = detail;
    e.remote = c.remote;
    return e;
}

Status Service::audit(Connection& conn, const Caller& c, std::string_view action, const std::string& target,
                      std::string_view outcome, const std::string& detail) {
    AuditEntry e = audit_entry(c, action, target, outcome, detail);
    return append_audit(conn, e);
}

Reply Service::reject(const Caller& c, std::string_view action, const std::string& target, int status,
                      std::string_view slug, std::string_view title, std::string detail) {
    // The rejected attempt is recorded in a transaction of its own: the
    // request itself changed nothing.
    (void)db_.transact([&](Connection& conn) {
        return audit(conn, c, action, target, "rejected:" + std::string(slug), detail);
    });
    return Reply::problem(status, slug, title, std::move(detail));
}

Reply Service::storage_failure(const Error& e) {
    (void)e;  // logged by the HTTP layer from the 503; messages carry no secrets
    return Reply::problem(503, "storage-unavailable", "Storage is unavailable",
                          "the database did not complete the request; nothing was changed; retry later");
}

// ---- listings ---------------------------------------------------------------------

namespace {

constexpr std::string_view kSubscriberColumns =
    "imsi, device_id, state, mode, object_id, provisioner_id, amf, epoch, created_at, expires_at, activated_at, "
    "deprovisioned_at, deprovision_reason";

json subscriber_json(const Row& r) {
    json j{{"imsi", r.str(0)},          {"device_id", r.str(1)},  {"state", r.str(2)},
           {"mode", r.str(3)},          {"object_id", r.str(4)},  {"provisioner_id", r.str(5)},
           {"amf", r.str(6)},           {"epoch", r.i64(7)},      {"created_at", r.i64(8)}};
    j["expires_at"] = r.is_null(9) ? json(nullptr) : json(r.i64(9));
    j["activated_at"] = r.is_null(10) ? json(nullptr) : json(r.i64(10));
    j["deprovisioned_at"] = r.is_null(11) ? json(nullptr) : json(r.i64(11));
    j["deprovision_reason"] = r.is_null(12) ? json(nullptr) : json(r.str(12));
    return j;
}

}  // namespace

Reply Service::list_subscribers(const Caller&, const SubscriberQuery& q) {
    if (!q.state.empty() && q.state != "pending" && q.state != "active" && q.state != "deprovisioned" &&
        q.state != "expired") {
        return bad_request("state must be pending, active, deprovisioned or expired");
    }
    std::string device;
    if (!q.device.empty()) {
        auto d = DeviceId::parse(q.device);
        if (!d) return bad_request("device must be a device id");
        device = d->to_string();  // canonical lower case
    }
    if (q.limit < 1 || q.limit > 500) return bad_request("limit must be from 1 to 500");
    if (!q.cursor.empty() && !Imsi::parse(q.cursor)) return bad_request("cursor must be an IMSI from a previous page");
    if (q.provisioner.size() > 64) return bad_request("provisioner must be a provisioner id");
    std::string sql = "SELECT " + std::string(kSubscriberColumns) + " FROM subscribers WHERE imsi > ?";
    std::vector<Value> params{q.cursor};
    if (!q.state.empty()) sql += " AND state = ?", params.emplace_back(q.state);
    if (!device.empty()) sql += " AND device_id = ?", params.emplace_back(device);
    if (!q.provisioner.empty()) sql += " AND provisioner_id = ?", params.emplace_back(q.provisioner);
    if (q.since > 0) sql += " AND created_at >= ?", params.emplace_back(q.since);
    if (q.until > 0) sql += " AND created_at < ?", params.emplace_back(q.until);
    sql += " ORDER BY imsi LIMIT ?";
    params.emplace_back(q.limit + 1);
    json items = json::array();
    std::string next;
    auto st = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query(sql, params);
        if (!rows) return rows.error();
        for (std::size_t i = 0; i < rows->size() && i < static_cast<std::size_t>(q.limit); ++i) {
            items.push_back(subscriber_json((*rows)[i]));
        }
        if (rows->size() > static_cast<std::size_t>(q.limit)) next = items.back()["imsi"].get<std::string>();
        return {};
    });
    if (!st) return storage_failure(st.error());
    return Reply::success({{"items", items}, {"next_cursor", next.empty() ? json(nullptr) : json(next)}});
}

Reply Service::get_subscriber(const Caller&, const std::string& imsi) {
    if (!Imsi::parse(imsi)) return bad_request("the IMSI must be 6 to 15 digits");
    std::optional<json> found;
    auto st = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT " + std::string(kSubscriberColumns) + " FROM subscribers WHERE imsi = ?", {imsi});
        if (!rows) return rows.error();
        if (!rows->empty()) found = subscriber_json(rows->front());
        return {};
    });
    if (!st) return storage_failure(st.error());
    if (!found) return not_found("subscriber");
    return Reply::success(*found);
}

Reply Service::get_device(const Caller&, const std::string& raw_id) {
    auto parsed = DeviceId::parse(raw_id);
    if (!parsed) return bad_request("the device id must be 26 base32 characters");
    const std::string device_id = parsed->to_string();
    std::optional<json> found;
    auto st = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT device_id, identity_key, box_key, vouched_by, owner_counter, notice, created_at "
                               "FROM devices WHERE device_id = ?",
                               {device_id});
        if (!rows) return rows.error();
        if (rows->empty()) return {};
        const Row& r = rows->front();
        json d{{"device_id", r.str(0)},     {"identity_key", r.str(1)},   {"box_key", r.str(2)},
               {"vouched_by", r.str(3)},    {"owner_counter", r.i64(4)},  {"created_at", r.i64(6)},
               {"has_notice", !r.is_null(5)}};
        auto subs = conn.query("SELECT " + std::string(kSubscriberColumns) +
                                   " FROM subscribers WHERE device_id = ? ORDER BY created_at, imsi",
                               {device_id});
        if (!subs) return subs.error();
        json list = json::array();
        for (const Row& s : *subs) list.push_back(subscriber_json(s));
        d["subscribers"] = list;
        found = d;
        return {};
    });
    if (!st) return storage_failure(st.error());
    if (!found) return not_found("device");
    return Reply::success(*found);
}

// ---- audit --------------------------------------------------------------------------

Reply Service::audit_list(const Caller&, std::int64_t after, std::int64_t limit) {
    if (after < 0) return bad_request("after must be a sequence number (0 or more)");
    if (limit < 1 || limit > 1000) return bad_request("limit must be from 1 to 1000");
    json items = json::array();
    auto st = db_.read([&](Connection& conn) -> Status {
        auto entries = list_audit(conn, after, limit);
        if (!entries) return entries.error();
        for (const auto& e : *entries) {
            items.push_back({{"seq", e.seq},         {"at", e.at},         {"actor", e.actor},
                             {"action", e.action},   {"target", e.target}, {"outcome", e.outcome},
                             {"detail", e.detail},   {"remote", e.remote}, {"prev_hash", e.prev_hash},
                             {"hash", e.hash}});
        }
        return {};
    });
    if (!st) return storage_failure(st.error());
    return Reply::success({{"items", items}});
}

Reply Service::audit_verify(const Caller&) {
    AuditVerdict v;
    auto st = db_.read([&](Connection& conn) -> Status {
        auto r = verify_audit(conn);
        if (!r) return r.error();
        v = *r;
        return {};
    });
    if (!st) return storage_failure(st.error());
    json j{{"ok", v.ok}, {"entries", v.entries}, {"head_hash", v.head_hash}};
    j["first_bad"] = v.first_bad ? json(*v.first_bad) : json(nullptr);
    j["problem"] = v.problem.empty() ? json(nullptr) : json(v.problem);
    return Reply::success(j);
}

// ---- status ------------------------------------------------------------------------

Reply Service::operator_info() const {
    const OperatorKeys pub = keys_.current.public_keys();
    json j{{"name", pub.name}, {"sign_key", to_hex(pub.sign_key)}, {"box_key", to_hex(pub.box_key)}};
    j["certificate"] = keys_.current.certificate ? json(base64_encode(keys_.current.certificate->encode())) : json(nullptr);
    return Reply::success(j);
}

Reply Service::health() {
    auto version = db_.schema_version();
    if (!version) {
        return Reply::problem(503, "storage-unavailable", "Storage is unavailable", "the database does not answer");
    }
    return Reply::success({{"status", "ok"}, {"storage", std::string(db_.engine())}, {"schema_version", *version}});
}

Status Service::claim_deployment_keys() {
    constexpr std::int64_t kSchema = 5;  // deployment_keys
    auto version = db_.schema_version();
    if (!version) return version.error();
    if (*version < kSchema) {
        return make_error(ErrorCode::bad_state, "the database schema is version " + std::to_string(*version) +
                                                    "; this program needs " + std::to_string(kSchema) +
                                                    ": stop every node and run 'credprov-backend migrate' first");
    }
    const std::string mine = to_hex(keys_.current.sign.public_key);
    const std::string data_id = data_key_.id();
    std::string problem;
    Caller node;
    node.kind = Caller::Kind::local;
    node.id = "node";
    node.remote = "local";
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT operator_sign_key, data_key_id FROM deployment_keys WHERE id = 1" +
                               std::string(conn.for_update()));
        if (!rows) return rows.error();
        if (rows->empty()) {
            auto ins = conn.exec("INSERT INTO deployment_keys (id, operator_sign_key, data_key_id, recorded_at) VALUES "
                                 "(1, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                                 {mine, data_id, static_cast<std::int64_t>(now())});
            if (!ins) return ins.error();
            if (*ins == 1) return audit(conn, node, "deployment.keys", "operator:" + mine.substr(0, 16), "ok",
                                        "recorded the operator key and the data key id");
            // Another node recorded them first: compare with those.
            rows = conn.query("SELECT operator_sign_key, data_key_id FROM deployment_keys WHERE id = 1");
            if (!rows) return rows.error();
        }
        const std::string recorded_op = rows->front().str(0), recorded_data = rows->front().str(1);
        if (recorded_data != data_id) {
            problem = "the data key is not the one this database's subscriber keys are encrypted with (its id is " +
                      data_id.substr(0, 16) + "…, the database's " + recorded_data.substr(0, 16) +
                      "…): copy data.key from a node that serves this database";
            return {};
        }
        if (recorded_op == mine) return {};
        const bool rotated_here = std::any_of(keys_.retired.begin(), keys_.retired.end(), [&](const OperatorIdentity& r) {
            return to_hex(r.sign.public_key) == recorded_op;
        });
        if (!rotated_here) {
            problem = "the operator key " + mine.substr(0, 16) + "… is not this deployment's (" + recorded_op.substr(0, 16) +
                      "…): copy operator.key, operator.cert and operator-keys.d/ from a node that serves this database "
                      "(after an 'operator rotate', from the node that rotated)";
            return {};
        }
        auto upd = conn.exec("UPDATE deployment_keys SET operator_sign_key = ?, recorded_at = ? WHERE id = 1",
                             {mine, static_cast<std::int64_t>(now())});
        if (!upd) return upd.error();
        return audit(conn, node, "deployment.keys", "operator:" + mine.substr(0, 16), "ok",
                     "the operator key rotated from " + recorded_op.substr(0, 16));
    });
    if (!st) return st.error();
    if (!problem.empty()) return make_error(ErrorCode::not_owner, problem);
    return {};
}

std::vector<Metrics::Gauge> Service::gauges() {
    Metrics::Gauge subs{"credprov_subscribers", "Subscribers by state.", {}};
    Metrics::Gauge field{"credprov_field_authorisations", "Field authorisations by state.", {}};
    (void)db_.read([&](Connection& conn) -> Status {
        for (const char* s : {"pending", "active", "deprovisioned", "expired"}) {
            auto rows = conn.query("SELECT COUNT(*) FROM subscribers WHERE state = ?", {std::string(s)});
            if (!rows) return rows.error();
            subs.samples.emplace_back(labels({{"state", s}}), static_cast<double>(rows->front().i64(0)));
        }
        for (const char* s : {"reserved", "used", "returned", "expired"}) {
            auto rows = conn.query("SELECT COUNT(*) FROM field_authorisations WHERE state = ?", {std::string(s)});
            if (!rows) return rows.error();
            field.samples.emplace_back(labels({{"state", s}}), static_cast<double>(rows->front().i64(0)));
        }
        return {};
    });
    Metrics::Gauge retried{"credprov_db_transaction_retries",
                           "Transactions run again since start because the database asked for it "
                           "(deadlock, serialisation failure, unique-key race, busy).",
                           {{"", static_cast<double>(db_.retried())}}};
    std::vector<Metrics::Gauge> out{subs, field, retried};
    core_gauges(out);
    return out;
}

Result<std::int64_t> Service::sweep() {
    std::int64_t expired = 0;
    const auto t = static_cast<std::int64_t>(now());
    Caller system;
    system.kind = Caller::Kind::local;
    system.id = "sweeper";
    auto st = db_.transact([&](Connection& conn) -> Status {
        expired = 0;
        auto rows = conn.query("SELECT imsi FROM subscribers WHERE state = 'pending' AND expires_at < ?", {t});
        if (!rows) return rows.error();
        for (const Row& r : *rows) {
            auto upd = conn.exec("UPDATE subscribers SET state = 'expired' WHERE imsi = ? AND state = 'pending'",
                                 {r.str(0)});
            if (!upd) return upd.error();
            if (*upd == 0) continue;
            ++expired;
            if (auto a = audit(conn, system, "subscriber.expire", "imsi:" + r.str(0), "ok",
                               "no receipt before the pending deadline");
                !a) {
                return a;
            }
        }
        auto fa = conn.query("SELECT id FROM field_authorisations WHERE state = 'reserved' AND not_after < ?", {t});
        if (!fa) return fa.error();
        for (const Row& r : *fa) {
            auto upd = conn.exec("UPDATE field_authorisations SET state = 'expired' WHERE id = ? AND state = 'reserved'",
                                 {r.str(0)});
            if (!upd) return upd.error();
            if (*upd == 0) continue;
            if (auto a = audit(conn, system, "field.expire", "field:" + r.str(0), "ok"); !a) return a;
        }
        auto ch = conn.exec("DELETE FROM attach_challenges WHERE expires_at < ?", {t});
        if (!ch) return ch.error();
        return {};
    });
    if (!st) return st.error();
    if (expired > 0) metrics_.add("credprov_expired_total", labels({{"kind", "subscriber"}}), static_cast<double>(expired));
    return expired;
}

}  // namespace credprov::backend
