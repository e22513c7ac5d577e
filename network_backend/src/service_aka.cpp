// Service: what an HSS gives the core network (authentication vectors, SQN
// resynchronisation) and the attach check on the device's network path.
// XRES, CK and IK leave only towards the core network, which needs them;
// the attach check keeps only a hash of XRES.
#include <map>
#include <memory>

#include "credprov/aka/network.hpp"
#include "credprov/aka/sqn_scheme.hpp"
#include "credprov/aka/text_input.hpp"
#include "credprov/backend/audit.hpp"
#include "credprov/backend/service.hpp"
#include "request_fields.hpp"
#include "service_internal.hpp"

namespace credprov::backend {

using namespace detail;

namespace {

struct ActiveSubscriber {
    std::string state;
    std::string keys_enc;
    std::string amf;
    std::int64_t sqn{0};
    std::string device_id;
};

Result<std::optional<ActiveSubscriber>> load_subscriber(Connection& conn, const std::string& imsi) {
    auto rows = conn.query("SELECT state, keys_enc, amf, sqn, device_id FROM subscribers WHERE imsi = ?" +
                               std::string(conn.for_update()),
                           {imsi});
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<ActiveSubscriber>{};
    const Row& r = rows->front();
    return std::optional<ActiveSubscriber>(ActiveSubscriber{r.str(0), r.str(1), r.str(2), r.i64(3), r.str(4)});
}

std::string hex_of(const std::uint8_t* p, std::size_t n) { return to_hex(ByteView(p, n)); }

// A subscriber's K and OPc, decrypted from rest into wiped memory.
Result<aka::SubscriberKeys> aka_keys_of(const DataKey& data_key, const std::string& imsi, const std::string& keys_enc) {
    return data_key.open_for_aka(imsi, keys_enc);
}

}  // namespace

// One subscriber's ask for vectors, and what it was granted: SQNs stepped
// and made durable, the keys and AMF to compute the vectors with after the
// commit; or why not (404: no such subscriber, 409: not active).
struct Service::VectorAsk {
    std::string imsi;
    std::int64_t count{1};
    unsigned ind{0};
};

struct Service::VectorGrant {
    int status{200};
    std::string refused;
    std::vector<aka::Sqn> sqns;
    std::shared_ptr<const aka::SubscriberKeys> keys;
    aka::Amf amf;
};

Result<std::vector<Service::VectorGrant>> Service::grant_vectors(const Caller& c, const std::vector<VectorAsk>& asks) {
    // Subscribers in IMSI order: rows are locked in that order (PostgreSQL),
    // so two batches never wait on each other in a cycle.
    std::map<std::string, std::vector<std::size_t>> by_imsi;
    for (std::size_t i = 0; i < asks.size(); ++i) by_imsi[asks[i].imsi].push_back(i);
    // K and OPc never change for an IMSI: open them before the write
    // transaction, in parallel with other requests, so that the serial part
    // (decision 0010) only steps the SQNs. The transaction checks that the
    // stored ciphertext is still the one opened.
    struct Opened {
        std::string enc;
        std::shared_ptr<const aka::SubscriberKeys> keys;
    };
    std::map<std::string, Opened> opened;
    // Every statement names all the batch's IMSIs at once: one round trip
    // each on PostgreSQL, however many subscribers.
    std::vector<Value> imsis;
    for (const auto& [imsi, _] : by_imsi) imsis.emplace_back(imsi);
    const std::string in_list = placeholders(imsis.size());
    auto pre = db_.read([&](Connection& conn) -> Status {
        // By IMSI alone: with "state = 'active'" too, SQLite's planner picks
        // the state index and walks every active subscriber.
        auto rows = conn.query("SELECT imsi, state, keys_enc FROM subscribers WHERE imsi IN (" + in_list + ")", imsis);
        if (!rows) return rows.error();
        for (const Row& r : *rows) {
            if (r.str(1) == "active") opened[r.str(0)].enc = r.str(2);
        }
        return {};
    });
    if (!pre) return pre.error();
    for (auto& [imsi, o] : opened) {
        auto k = data_key_.open_for_aka(imsi, o.enc);
        if (!k) return k.error();
        o.keys = std::make_shared<const aka::SubscriberKeys>(std::move(*k));
    }
    std::vector<VectorGrant> grants;
    auto st = db_.transact([&](Connection& conn) -> Status {
        grants.assign(asks.size(), VectorGrant{});
        // One audit entry per subscriber, appended together at the end: the
        // audit head (one lock for every writer) is held for one INSERT.
        std::vector<AuditEntry> audits;
        auto rows = conn.query("SELECT imsi, state, keys_enc, amf, sqn, device_id FROM subscribers WHERE imsi IN (" + in_list +
                                   ") ORDER BY imsi" + std::string(conn.for_update()),
                               imsis);
        if (!rows) return rows.error();
        std::map<std::string, ActiveSubscriber> found;
        for (const Row& r : *rows) found.emplace(r.str(0), ActiveSubscriber{r.str(1), r.str(2), r.str(3), r.i64(4), r.str(5)});
        std::string set_sqn;  // CASE imsi WHEN ? THEN ? ... for one UPDATE
        std::vector<Value> set_params, set_imsis;
        for (const auto& [imsi, indices] : by_imsi) {
            const auto at = found.find(imsi);
            const ActiveSubscriber* sub = at == found.end() ? nullptr : &at->second;
            if (!sub || sub->state != "active") {
                const bool missing = !sub;
                const std::string why = missing ? "" : "the subscriber is " + sub->state + "; only an active subscriber authenticates";
                for (const std::size_t i : indices) {
                    grants[i].status = missing ? 404 : 409;
                    grants[i].refused = why;
                }
                if (!missing) audits.push_back(audit_entry(c, "aka.vectors", "imsi:" + imsi, "rejected:subscriber-not-active", why));
                continue;
            }
            std::shared_ptr<const aka::SubscriberKeys> keys;
            if (auto o = opened.find(imsi); o != opened.end() && o->second.enc == sub->keys_enc) {
                keys = o->second.keys;
            } else {
                auto k = data_key_.open_for_aka(imsi, sub->keys_enc);
                if (!k) return k.error();
                keys = std::make_shared<const aka::SubscriberKeys>(std::move(*k));
            }
            auto amf = aka::parse_amf(sub->amf);
            if (!amf) return amf.error();
            aka::Sqn sqn(static_cast<std::uint64_t>(sub->sqn));
            std::size_t issued = 0;
            for (const std::size_t i : indices) {
                for (std::int64_t n = 0; n < asks[i].count; ++n) {
                    auto next = aka::next_sqn(sqn, asks[i].ind);
                    if (!next) return next.error();
                    sqn = *next;
                    grants[i].sqns.push_back(sqn);
                }
                grants[i].keys = keys;
                grants[i].amf = *amf;
                issued += grants[i].sqns.size();
            }
            set_sqn += " WHEN ? THEN CAST(? AS BIGINT)";
            set_params.emplace_back(imsi);
            set_params.emplace_back(static_cast<std::int64_t>(sqn.value()));
            set_imsis.emplace_back(imsi);
            audits.push_back(audit_entry(c, "aka.vectors", "imsi:" + imsi, "ok", std::to_string(issued) + " vectors"));
        }
        if (!set_imsis.empty()) {
            const std::string in_set = placeholders(set_imsis.size());
            set_params.insert(set_params.end(), set_imsis.begin(), set_imsis.end());
            auto upd = conn.exec("UPDATE subscribers SET sqn = CASE imsi" + set_sqn + " END WHERE imsi IN (" + in_set + ")",
                                 set_params);
            if (!upd) return upd.error();
            if (*upd != static_cast<std::int64_t>(set_imsis.size())) {
                return make_error(ErrorCode::storage, "the SQN update changed another number of subscribers than it locked");
            }
        }
        return append_audit(conn, audits);
    });
    if (!st) return st.error();
    return grants;
}

namespace {

// The vectors of a grant, computed after the commit that made its SQNs
// durable: Milenage and the answer's text run in the request's own thread.
json vectors_json(const aka::SubscriberKeys& keys, const aka::Amf& amf, const std::vector<aka::Sqn>& sqns) {
    json list = json::array();
    for (const aka::Sqn& sqn : sqns) {
        aka::Rand rand;
        crypto::random_bytes(rand.bytes);
        const aka::AuthVector v = aka::generate_vector(keys, sqn, amf, rand);
        list.push_back({{"rand", to_hex(v.rand.bytes)},
                        {"autn", to_hex(v.autn.bytes)},
                        {"xres", hex_of(v.xres.data(), v.xres.size())},
                        {"ck", hex_of(v.ck.data(), v.ck.size())},
                        {"ik", hex_of(v.ik.data(), v.ik.size())},
                        {"sqn", sqn.value()}});
    }
    return list;
}

}  // namespace

Reply Service::vectors(const Caller& c, const std::string& imsi, const json& body) {
    if (!Imsi::parse(imsi)) return bad_request("the IMSI must be 6 to 15 digits");
    Fields f(body);
    auto count = f.integer("count", 1, 5, false);
    auto ind = f.integer("ind", 0, static_cast<std::int64_t>(aka::kIndSlots - 1), false);
    if (!f.done()) return bad_request(f.error());
    auto grants = grant_vectors(c, {VectorAsk{imsi, count.value_or(1), static_cast<unsigned>(ind.value_or(0))}});
    if (!grants) return storage_failure(grants.error());
    const VectorGrant& g = grants->front();
    if (g.status == 404) return not_found("subscriber");
    if (g.status == 409) {
        metrics_.add("credprov_auth_failures_total", labels({{"kind", "aka-not-active"}}));
        return Reply::problem(409, "subscriber-not-active", "Conflict", g.refused);
    }
    metrics_.add("credprov_vectors_issued_total", {}, static_cast<double>(g.sqns.size()));
    return Reply::success({{"imsi", imsi}, {"vectors", vectors_json(*g.keys, g.amf, g.sqns)}});
}

Reply Service::vectors_batch(const Caller& c, const json& body) {
    Fields f(body);
    const json* list = f.get("requests", true);
    if (!f.done()) return bad_request(f.error());
    if (!list->is_array() || list->empty() || list->size() > kMaxVectorBatch) {
        return bad_request("field 'requests' must be a list of 1 to " + std::to_string(kMaxVectorBatch) + " requests");
    }
    std::vector<VectorAsk> asks;
    for (std::size_t i = 0; i < list->size(); ++i) {
        Fields r((*list)[i]);
        auto imsi = r.text("imsi", 6, 15);
        auto count = r.integer("count", 1, 5, false);
        auto ind = r.integer("ind", 0, static_cast<std::int64_t>(aka::kIndSlots - 1), false);
        if (!r.done()) return bad_request("requests[" + std::to_string(i) + "]: " + r.error());
        if (!Imsi::parse(*imsi)) return bad_request("requests[" + std::to_string(i) + "]: field 'imsi' must be 6 to 15 digits");
        asks.push_back(VectorAsk{*imsi, count.value_or(1), static_cast<unsigned>(ind.value_or(0))});
    }
    auto grants = grant_vectors(c, asks);
    if (!grants) return storage_failure(grants.error());
    json results = json::array();
    std::size_t issued = 0, refused = 0;
    for (std::size_t i = 0; i < asks.size(); ++i) {
        const VectorGrant& g = (*grants)[i];
        if (g.status == 200) {
            results.push_back({{"imsi", asks[i].imsi}, {"vectors", vectors_json(*g.keys, g.amf, g.sqns)}});
            issued += g.sqns.size();
            continue;
        }
        const Reply p = g.status == 404 ? not_found("subscriber")
                                        : Reply::problem(409, "subscriber-not-active", "Conflict", g.refused);
        results.push_back({{"imsi", asks[i].imsi}, {"problem", p.body}});
        if (g.status == 409) ++refused;
    }
    if (refused > 0) metrics_.add("credprov_auth_failures_total", labels({{"kind", "aka-not-active"}}), static_cast<double>(refused));
    if (issued > 0) metrics_.add("credprov_vectors_issued_total", {}, static_cast<double>(issued));
    return Reply::success({{"results", results}});
}

Reply Service::resync(const Caller& c, const std::string& imsi, const json& body) {
    if (!Imsi::parse(imsi)) return bad_request("the IMSI must be 6 to 15 digits");
    Fields f(body);
    auto rand = f.hex<16>("rand");
    auto auts = f.hex<14>("auts");
    if (!f.done()) return bad_request(f.error());
    bool found = true, bad_mac = false;
    std::string refused;
    std::uint64_t new_sqn = 0;
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto sub = load_subscriber(conn, imsi);
        if (!sub) return sub.error();
        if (!*sub) {
            found = false;
            return {};
        }
        if ((*sub)->state != "active") {
            refused = "the subscriber is " + (*sub)->state;
            return {};
        }
        auto aka_keys = aka_keys_of(data_key_, imsi, (*sub)->keys_enc);
        if (!aka_keys) return aka_keys.error();
        auto ms = aka::resync(*aka_keys, aka::Rand{*rand}, aka::Auts{*auts});
        if (!ms) {
            bad_mac = true;
            return {};
        }
        // Not simply SQN_MS: an AUTS can arrive after vectors issued since
        // (to other serving nodes, by other backend nodes); going back would
        // issue their SQNs again.
        new_sqn = aka::resynchronised_sqn(aka::Sqn(static_cast<std::uint64_t>((*sub)->sqn)), *ms).value();
        auto upd = conn.exec("UPDATE subscribers SET sqn = ? WHERE imsi = ?", {static_cast<std::int64_t>(new_sqn), imsi});
        if (!upd) return upd.error();
        return audit(conn, c, "aka.resync", "imsi:" + imsi, "ok");
    });
    if (!st) return storage_failure(st.error());
    if (!found) return not_found("subscriber");
    if (!refused.empty()) return reject(c, "aka.resync", "imsi:" + imsi, 409, "subscriber-not-active", "Conflict", refused);
    if (bad_mac) {
        metrics_.add("credprov_auth_failures_total", labels({{"kind", "aka-resync"}}));
        return reject(c, "aka.resync", "imsi:" + imsi, 422, "invalid-auts", "Resynchronisation refused",
                      "MAC-S in AUTS does not verify for this subscriber and RAND");
    }
    return Reply::success({{"imsi", imsi}, {"sqn", new_sqn}});
}

// ---- attach check ------------------------------------------------------------------------

Reply Service::attach_challenge(const Caller& c, const json& body) {
    Fields f(body);
    auto imsi = f.text("imsi", 6, 15);
    if (!f.done()) return bad_request(f.error());
    if (!Imsi::parse(*imsi)) return bad_request("field 'imsi' must be 6 to 15 digits");
    json result;
    bool found = true;
    std::string refused;
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto sub = load_subscriber(conn, *imsi);
        if (!sub) return sub.error();
        if (!*sub) {
            found = false;
            return {};
        }
        if ((*sub)->state == "deprovisioned") {
            // The network path's answer for a deleted subscriber: the signed
            // notice the device applies without a working attach.
            auto dev = conn.query("SELECT notice, owner_counter FROM devices WHERE device_id = ?", {(*sub)->device_id});
            if (!dev) return dev.error();
            result = {{"verdict", "deprovisioned"}};
            if (!dev->empty() && !dev->front().is_null(0)) {
                result["notice"] = dev->front().str(0);
                result["counter"] = dev->front().i64(1);
            }
            return audit(conn, c, "attach.challenge", "imsi:" + *imsi, "rejected:deprovisioned");
        }
        if ((*sub)->state != "active") {
            refused = "the subscriber is " + (*sub)->state;
            return {};
        }
        auto aka_keys = aka_keys_of(data_key_, *imsi, (*sub)->keys_enc);
        if (!aka_keys) return aka_keys.error();
        auto amf = aka::parse_amf((*sub)->amf);
        if (!amf) return amf.error();
        auto next = aka::next_sqn(aka::Sqn(static_cast<std::uint64_t>((*sub)->sqn)), 0);
        if (!next) return next.error();
        aka::Rand rand;
        crypto::random_bytes(rand.bytes);
        const aka::AuthVector v = aka::generate_vector(*aka_keys, *next, *amf, rand);
        const std::string id = random_id("ch_");
        const auto t = static_cast<std::int64_t>(now());
        auto ins = conn.exec("INSERT INTO attach_challenges (id, imsi, rand, xres_hash, expires_at, used) VALUES (?, ?, ?, ?, ?, 0)",
                             {id, *imsi, to_hex(v.rand.bytes), to_hex(digest(ByteView(v.xres.data(), v.xres.size()))),
                              t + static_cast<std::int64_t>(config_.challenge_ttl_s)});
        if (!ins) return ins.error();
        auto upd = conn.exec("UPDATE subscribers SET sqn = ? WHERE imsi = ?", {static_cast<std::int64_t>(next->value()), *imsi});
        if (!upd) return upd.error();
        result = {{"verdict", "challenge"},
                  {"challenge_id", id},
                  {"rand", to_hex(v.rand.bytes)},
                  {"autn", to_hex(v.autn.bytes)},
                  {"expires_at", t + static_cast<std::int64_t>(config_.challenge_ttl_s)}};
        return {};
    });
    if (!st) return storage_failure(st.error());
    if (!found) return not_found("subscriber");
    if (!refused.empty()) return reject(c, "attach.challenge", "imsi:" + *imsi, 409, "subscriber-not-active", "Conflict", refused);
    if (result["verdict"] == "deprovisioned") metrics_.add("credprov_attach_total", labels({{"verdict", "deprovisioned"}}));
    return Reply::success(result);
}

Reply Service::attach_response(const Caller& c, const json& body) {
    Fields f(body);
    auto id = f.text("challenge_id", 1, 64);
    auto res = f.hex_bytes("res", 4, 16, false);
    auto auts = f.hex<14>("auts", false);
    if (!f.done()) return bad_request(f.error());
    if (res.has_value() == auts.has_value()) return bad_request("give exactly one of 'res' and 'auts'");
    std::string verdict, refused, imsi;
    std::uint64_t resynced = 0;
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto rows = conn.query("SELECT imsi, rand, xres_hash, expires_at, used FROM attach_challenges WHERE id = ?" +
                                   std::string(conn.for_update()),
                               {*id});
        if (!rows) return rows.error();
        if (rows->empty()) {
            refused = "unknown challenge";
            return {};
        }
        const Row& r = rows->front();
        imsi = r.str(0);
        if (r.i64(4) != 0) {
            refused = "the challenge was already answered";
            return {};
        }
        if (r.i64(3) < static_cast<std::int64_t>(now())) {
            refused = "the challenge expired";
            return {};
        }
        auto used = conn.exec("UPDATE attach_challenges SET used = 1 WHERE id = ?", {*id});
        if (!used) return used.error();
        auto sub = load_subscriber(conn, imsi);
        if (!sub) return sub.error();
        if (!*sub || (*sub)->state != "active") {
            verdict = "deprovisioned";
        } else if (res) {
            Bytes stored;
            (void)from_hex(r.str(2), stored);
            const Digest got = digest(*res);
            verdict = ct_equal(got, stored) ? "attached" : "rejected";
        } else {
            auto aka_keys = aka_keys_of(data_key_, imsi, (*sub)->keys_enc);
            if (!aka_keys) return aka_keys.error();
            aka::Rand rand;
            Bytes rb;
            (void)from_hex(r.str(1), rb);
            std::copy(rb.begin(), rb.end(), rand.bytes.begin());
            auto ms = aka::resync(*aka_keys, rand, aka::Auts{*auts});
            if (!ms) {
                verdict = "rejected";
            } else {
                resynced = aka::resynchronised_sqn(aka::Sqn(static_cast<std::uint64_t>((*sub)->sqn)), *ms).value();
                verdict = "resynchronised";
                auto upd = conn.exec("UPDATE subscribers SET sqn = ? WHERE imsi = ?", {static_cast<std::int64_t>(resynced), imsi});
                if (!upd) return upd.error();
            }
        }
        return audit(conn, c, "attach.response", "imsi:" + imsi, verdict == "attached" || verdict == "resynchronised"
                                                                     ? "ok"
                                                                     : "rejected:" + verdict);
    });
    if (!st) return storage_failure(st.error());
    if (!refused.empty()) {
        return reject(c, "attach.response", imsi.empty() ? "-" : "imsi:" + imsi, 409, "challenge-unusable", "Conflict", refused);
    }
    metrics_.add("credprov_attach_total", labels({{"verdict", verdict}}));
    if (verdict == "rejected") metrics_.add("credprov_auth_failures_total", labels({{"kind", "aka-attach"}}));
    json j{{"verdict", verdict}, {"imsi", imsi}};
    if (verdict == "resynchronised") j["sqn"] = resynced;
    return Reply::success(j);
}

}  // namespace credprov::backend
