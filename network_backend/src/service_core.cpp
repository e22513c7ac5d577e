// Service: the core-network outbox and reconciliation (decision 0011).
//
// Activation and deprovisioning queue a row in core_outbox in their own
// transaction (enqueue_core); a worker in `serve` (or `core reconcile
// --repair`) delivers rows through a CoreConnector at least once, in order per
// IMSI, under a lease so several backend nodes sharing PostgreSQL never work
// on the same IMSI at once. Rows name the subscriber only: K/OPc are read
// from keys_enc and decrypted into guarded memory at delivery, then wiped.
// Nothing here logs or reports key bytes; reconciliation compares keys in
// constant time and reports only that they differ.
#include <sodium.h>

#include <chrono>
#include <map>
#include <set>
#include <thread>

#include "credprov/backend/service.hpp"
#include "service_internal.hpp"

namespace credprov::backend {

using namespace detail;

namespace {

constexpr std::int64_t kKeepDoneRowsS = 86400;  // delivered rows are kept a day, for `core status` and forensics

std::string bounded(std::string s) {
    if (s.size() > 300) s.resize(300);
    return s;
}

}  // namespace

Status Service::enqueue_core(Connection& conn, const std::string& imsi, std::string_view op, std::string_view reason) {
    if (config_.core_kind.empty()) return {};
    auto seq = conn.query("SELECT next_seq FROM core_outbox_seq WHERE id = 1" + std::string(conn.for_update()));
    if (!seq) return seq.error();
    if (seq->empty()) return make_error(ErrorCode::storage, "the core outbox sequence row is missing (run 'credprov-backend migrate')");
    const std::int64_t n = seq->front().i64(0);
    if (auto upd = conn.exec("UPDATE core_outbox_seq SET next_seq = ? WHERE id = 1", {n + 1}); !upd) return upd.error();
    const auto t = static_cast<std::int64_t>(now());
    auto ins = conn.exec("INSERT INTO core_outbox (seq, imsi, op, reason, created_at, attempts, next_attempt_at) "
                         "VALUES (?, ?, ?, ?, ?, 0, ?)",
                         {n, imsi, std::string(op), std::string(reason), t, t});
    if (!ins) return ins.error();
    return {};
}

Result<Service::CoreDelivery> Service::deliver_core_outbox(CoreConnector& core, const std::string& node, std::size_t max_rows) {
    CoreDelivery out;
    const auto t = static_cast<std::int64_t>(now());
    const auto lease = static_cast<std::int64_t>(config_.core_lease_s);
    // A cheap read first: an idle worker polls often and should not take the write lock.
    bool due = false;
    auto peek = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT COUNT(*) FROM core_outbox WHERE done_at IS NULL AND next_attempt_at <= ? AND "
                               "(lease_until IS NULL OR lease_until < ?)",
                               {t, t});
        if (!rows) return rows.error();
        due = rows->front().i64(0) > 0;
        return {};
    });
    if (!peek) return peek.error();
    if (!due) return out;

    struct Claimed {
        std::int64_t seq, attempts;
        std::string imsi, op;
    };
    std::vector<Claimed> claimed;
    const auto claimed_at = std::chrono::steady_clock::now();
    auto claim = db_.transact([&](Connection& conn) -> Status {
        claimed.clear();
        // The oldest pending row of each IMSI only: a younger one waits until it is done.
        auto rows = conn.query("SELECT o.seq, o.imsi, o.op, o.attempts FROM core_outbox o WHERE o.done_at IS NULL AND "
                               "o.next_attempt_at <= ? AND (o.lease_until IS NULL OR o.lease_until < ?) AND NOT EXISTS "
                               "(SELECT 1 FROM core_outbox p WHERE p.imsi = o.imsi AND p.done_at IS NULL AND p.seq < o.seq) "
                               "ORDER BY o.seq LIMIT ?",
                               {t, t, static_cast<std::int64_t>(max_rows)});
        if (!rows) return rows.error();
        for (const Row& r : *rows) {
            // Conditional: on PostgreSQL a concurrent claimer waits for our
            // row lock, then sees the lease and changes nothing.
            auto upd = conn.exec("UPDATE core_outbox SET lease_owner = ?, lease_until = ? WHERE seq = ? AND done_at IS NULL "
                                 "AND (lease_until IS NULL OR lease_until < ?)",
                                 {node, t + lease, r.i64(0), t});
            if (!upd) return upd.error();
            if (*upd == 1) claimed.push_back(Claimed{r.i64(0), r.i64(3), r.str(1), r.str(2)});
        }
        // Delivered rows are kept a while for inspection, not forever.
        auto purge = conn.exec("DELETE FROM core_outbox WHERE done_at IS NOT NULL AND done_at < ?", {t - kKeepDoneRowsS});
        if (!purge) return purge.error();
        return {};
    });
    if (!claim) return claim.error();

    for (std::size_t i = 0; i < claimed.size(); ++i) {
        const Claimed& row = claimed[i];
        // A delivery starts only with at least five request timeouts of
        // lease left (one upsert is at most four requests); otherwise the
        // rest goes back, rather than risk another node taking a row over
        // while we still deliver it (which could reorder an IMSI's changes).
        const auto lease_left = std::chrono::seconds(lease) - (std::chrono::steady_clock::now() - claimed_at);
        if (lease_left < std::chrono::milliseconds(5 * config_.core_timeout_ms)) {
            (void)db_.transact([&](Connection& conn) -> Status {
                for (std::size_t j = i; j < claimed.size(); ++j) {
                    auto upd = conn.exec("UPDATE core_outbox SET lease_owner = NULL, lease_until = NULL WHERE seq = ? AND "
                                         "lease_owner = ?",
                                         {claimed[j].seq, node});
                    if (!upd) return upd.error();
                }
                return {};
            });
            break;
        }
        std::string state, keys_enc;
        auto sub = db_.read([&](Connection& conn) -> Status {
            auto rows = conn.query("SELECT state, keys_enc FROM subscribers WHERE imsi = ?", {row.imsi});
            if (!rows) return rows.error();
            if (!rows->empty()) {
                state = rows->front().str(0);
                keys_enc = rows->front().str(1);
            }
            return {};
        });
        Status delivered = sub;
        std::string outcome = "delivered";
        if (delivered && row.op == "upsert") {
            if (state != "active") {
                // Deprovisioned since: a younger 'remove' row follows; pushing keys now would resurrect it.
                outcome = "superseded";
            } else {
                auto keys = data_key_.open(row.imsi, keys_enc);
                if (!keys) {
                    delivered = make_error(ErrorCode::storage, "the subscriber's stored keys do not open with the data key");
                } else {
                    CoreSubscriber s;
                    s.imsi = row.imsi;
                    s.keys = &*keys;
                    Bytes amf;
                    if (from_hex(config_.amf_hex, amf) && amf.size() == 2) s.amf = std::array<std::uint8_t, 2>{amf[0], amf[1]};
                    delivered = core.upsert(s);
                }  // keys (Secret<16> each) are wiped here
            }
        } else if (delivered && row.op == "remove") {
            delivered = core.remove(row.imsi);
        } else if (delivered) {
            delivered = make_error(ErrorCode::malformed, "unknown outbox operation");
        }
        const auto done_t = static_cast<std::int64_t>(now());
        Status marked;
        if (delivered) {
            marked = db_.transact([&](Connection& conn) -> Status {
                auto upd = conn.exec("UPDATE core_outbox SET done_at = ?, outcome = ?, lease_owner = NULL, lease_until = NULL "
                                     "WHERE seq = ? AND lease_owner = ?",
                                     {done_t, outcome, row.seq, node});
                if (!upd) return upd.error();
                return {};
            });
            if (outcome == "superseded") ++out.superseded;
            else ++out.delivered;
            metrics_.add("credprov_core_deliveries_total", labels({{"outcome", outcome}}));
        } else {
            // 1 s, 2 s, 4 s ... capped at core.retry_max_s.
            const std::int64_t cap = static_cast<std::int64_t>(config_.core_retry_max_s);
            const std::int64_t backoff = row.attempts >= 20 ? cap : std::min<std::int64_t>(cap, std::int64_t{1} << row.attempts);
            out.last_error = bounded(delivered.error().message);
            marked = db_.transact([&](Connection& conn) -> Status {
                auto upd = conn.exec("UPDATE core_outbox SET attempts = attempts + 1, next_attempt_at = ?, last_error = ?, "
                                     "lease_owner = NULL, lease_until = NULL WHERE seq = ? AND lease_owner = ?",
                                     {done_t + backoff, out.last_error, row.seq, node});
                if (!upd) return upd.error();
                return {};
            });
            ++out.failed;
            metrics_.add("credprov_core_deliveries_total", labels({{"outcome", "failed"}}));
        }
        if (!marked) return marked.error();  // the lease runs out and the row is delivered again: at least once
    }
    return out;
}

Result<json> Service::core_status() {
    json out{{"kind", config_.core_kind.empty() ? json(nullptr) : json(config_.core_kind)}};
    const auto t = static_cast<std::int64_t>(now());
    auto st = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT COUNT(*), MIN(created_at), SUM(CASE WHEN attempts > 0 THEN 1 ELSE 0 END) FROM core_outbox "
                               "WHERE done_at IS NULL");
        if (!rows) return rows.error();
        const Row& r = rows->front();
        out["pending"] = r.i64(0);
        out["oldest_pending_age_s"] = r.is_null(1) ? json(nullptr) : json(std::max<std::int64_t>(0, t - r.i64(1)));
        out["retrying"] = r.is_null(2) ? 0 : r.i64(2);
        auto done = conn.query("SELECT COUNT(*) FROM core_outbox WHERE done_at IS NOT NULL");
        if (!done) return done.error();
        out["delivered_kept"] = done->front().i64(0);
        auto err = conn.query("SELECT seq, imsi, op, attempts, last_error, next_attempt_at FROM core_outbox WHERE done_at IS NULL "
                              "AND attempts > 0 ORDER BY seq LIMIT 1");
        if (!err) return err.error();
        if (!err->empty()) {
            const Row& e = err->front();
            out["oldest_failure"] = {{"seq", e.i64(0)}, {"imsi", e.str(1)},       {"op", e.str(2)},
                                     {"attempts", e.i64(3)}, {"error", e.str(4)}, {"next_attempt_at", e.i64(5)}};
        }
        return {};
    });
    if (!st) return st.error();
    return out;
}

void Service::core_gauges(std::vector<Metrics::Gauge>& out) {
    if (config_.core_kind.empty()) return;
    auto s = core_status();
    if (!s) return;
    out.push_back({"credprov_core_outbox_pending", "Changes queued for the core network and not yet delivered.",
                   {{"", static_cast<double>((*s)["pending"].get<std::int64_t>())}}});
    out.push_back({"credprov_core_outbox_retrying", "Queued changes whose delivery failed at least once.",
                   {{"", static_cast<double>((*s)["retrying"].get<std::int64_t>())}}});
    const json& age = (*s)["oldest_pending_age_s"];
    out.push_back({"credprov_core_outbox_oldest_age_seconds", "Age of the oldest undelivered change (0 when none).",
                   {{"", age.is_null() ? 0.0 : static_cast<double>(age.get<std::int64_t>())}}});
}

// The drift between active subscribers and the core, as JSON (IMSIs only).
Result<json> Service::core_drift(CoreConnector& core) {
    auto listed = core.list();
    if (!listed) return listed.error();
    std::map<std::string, std::string> known;  // imsi -> state, every subscriber the backend has
    std::map<std::string, std::string> active_keys;  // imsi -> keys_enc
    std::set<std::string> in_flight;
    auto st = db_.read([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT imsi, state, keys_enc FROM subscribers ORDER BY imsi");
        if (!rows) return rows.error();
        for (const Row& r : *rows) {
            known[r.str(0)] = r.str(1);
            if (r.str(1) == "active") active_keys[r.str(0)] = r.str(2);
        }
        auto fa = conn.query("SELECT imsi FROM field_authorisations");
        if (!fa) return fa.error();
        for (const Row& r : *fa) known.emplace(r.str(0), "reserved");
        auto pending = conn.query("SELECT DISTINCT imsi FROM core_outbox WHERE done_at IS NULL");
        if (!pending) return pending.error();
        for (const Row& r : *pending) in_flight.insert(r.str(0));
        return {};
    });
    if (!st) return st.error();
    // The core may serve subscribers credprov does not manage: only IMSIs the
    // backend knows or that lie in its configured range count as "extra".
    const std::size_t width = 15 - config_.plmn.size();
    auto managed = [&](const std::string& imsi) {
        if (known.contains(imsi)) return true;
        if (imsi.size() != 15 || !imsi.starts_with(config_.plmn)) return false;
        const std::uint64_t msin = std::stoull(imsi.substr(config_.plmn.size(), width));
        return msin >= config_.msin_first && msin <= config_.msin_last;
    };
    json missing = json::array(), extra = json::array(), different = json::array(), flying = json::array();
    std::int64_t foreign = 0;
    const std::set<std::string> in_core(listed->begin(), listed->end());
    for (const auto& [imsi, sealed] : active_keys) {
        if (in_flight.contains(imsi)) {
            flying.push_back(imsi);
            continue;
        }
        if (!in_core.contains(imsi)) {
            missing.push_back(imsi);
            continue;
        }
        auto rec = core.get(imsi);
        if (!rec) return rec.error();
        if (!*rec) {
            missing.push_back(imsi);
            continue;
        }
        if (!(*rec)->milenage) {
            different.push_back({{"imsi", imsi}, {"what", "authentication is " + (*rec)->auth_summary + ", not milenage/opc"}});
            continue;
        }
        auto ours = data_key_.open(imsi, sealed);
        if (!ours) return make_error(ErrorCode::storage, "the stored keys of an active subscriber do not open with the data key");
        const SubscriberKeys& theirs = *(*rec)->milenage;
        const bool k_same = sodium_memcmp(ours->k.data(), theirs.k.data(), 16) == 0;
        const bool opc_same = sodium_memcmp(ours->opc.data(), theirs.opc.data(), 16) == 0;
        if (!k_same || !opc_same) {
            different.push_back({{"imsi", imsi}, {"what", !k_same && !opc_same ? "K and OPc differ" : !k_same ? "K differs" : "OPc differs"}});
        }
    }
    for (const std::string& imsi : *listed) {
        if (active_keys.contains(imsi)) continue;
        if (!managed(imsi)) {
            ++foreign;
            continue;
        }
        if (in_flight.contains(imsi)) {
            flying.push_back(imsi);
            continue;
        }
        extra.push_back(imsi);
    }
    const bool drift = !missing.empty() || !extra.empty() || !different.empty();
    return json{{"core", std::string(core.kind())},
                {"endpoint", core.endpoint()},
                {"active", active_keys.size()},
                {"core_subscribers", listed->size()},
                {"foreign", foreign},
                {"in_flight", flying},
                {"missing", missing},
                {"extra", extra},
                {"different", different},
                {"drift", drift}};
}

Result<json> Service::core_reconcile(const Caller& c, CoreConnector& core, bool repair, const std::string& node) {
    auto report = core_drift(core);
    if (!report) return report;
    if (!repair || !(*report)["drift"].get<bool>()) return report;
    if (config_.core_kind.empty()) return make_error(ErrorCode::bad_state, "no [core] section is configured");
    // Queue the fixes in one transaction, each re-checked against the
    // subscriber's state now: an activation or deprovisioning that happened
    // since the comparison has queued its own row, and ours comes after or
    // is not written at all.
    std::int64_t queued = 0;
    auto st = db_.transact([&](Connection& conn) -> Status {
        queued = 0;
        auto state_of = [&](const std::string& imsi) -> Result<std::string> {
            auto rows = conn.query("SELECT state FROM subscribers WHERE imsi = ?" + std::string(conn.for_update()), {imsi});
            if (!rows) return rows.error();
            return rows->empty() ? std::string() : rows->front().str(0);
        };
        auto queue = [&](const std::string& imsi, bool want_active, std::string_view op) -> Status {
            auto s = state_of(imsi);
            if (!s) return s.error();
            if ((*s == "active") != want_active) return {};
            if (auto q = enqueue_core(conn, imsi, op, "repair"); !q) return q;
            ++queued;
            return {};
        };
        for (const auto& imsi : (*report)["missing"]) {
            if (auto q = queue(imsi.get<std::string>(), true, "upsert"); !q) return q;
        }
        for (const auto& d : (*report)["different"]) {
            if (auto q = queue(d["imsi"].get<std::string>(), true, "upsert"); !q) return q;
        }
        for (const auto& imsi : (*report)["extra"]) {
            if (auto q = queue(imsi.get<std::string>(), false, "remove"); !q) return q;
        }
        return audit(conn, c, "core.repair", "core:" + std::string(core.kind()), "ok",
                     std::to_string((*report)["missing"].size()) + " missing, " + std::to_string((*report)["extra"].size()) +
                         " extra, " + std::to_string((*report)["different"].size()) + " different; " + std::to_string(queued) +
                         " changes queued");
    });
    if (!st) return st.error();
    // Deliver now (a running server's worker may take some of them: both hold leases).
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    std::string last_error;
    for (;;) {
        auto d = deliver_core_outbox(core, node, 64);
        if (!d) return d.error();
        if (!d->last_error.empty()) last_error = d->last_error;
        auto status = core_status();
        if (!status) return status.error();
        if ((*status)["pending"].get<std::int64_t>() == 0) break;
        if (std::chrono::steady_clock::now() > deadline) break;
        if (d->delivered == 0 && d->superseded == 0) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    auto after = core_drift(core);
    if (!after) return after;
    json out = *report;
    out["repair"] = {{"queued", queued}, {"after", *after}};
    if (!last_error.empty()) out["repair"]["last_error"] = last_error;
    out["drift"] = (*after)["drift"];
    return out;
}

}  // namespace credprov::backend
