// Hash-chained audit log (see audit.hpp).
#include "credprov/backend/audit.hpp"

#include "credprov/protocol/codec.hpp"
#include "credprov/protocol/signed_objects.hpp"

namespace credprov::backend {
namespace {

constexpr std::string_view kGenesis = "0000000000000000000000000000000000000000000000000000000000000000";

std::string entry_hash(const AuditEntry& e) {
    cbor::Writer w;
    w.array(9);
    w.uint(static_cast<std::uint64_t>(e.seq));
    w.uint(static_cast<std::uint64_t>(e.at));
    w.text(e.actor).text(e.action).text(e.target).text(e.outcome).text(e.detail).text(e.remote);
    w.text(e.prev_hash);
    Bytes input(as_bytes("credprov/v1 audit-entry").begin(), as_bytes("credprov/v1 audit-entry").end());
    input.push_back(0);
    append(input, w.data());
    return to_hex(digest(input));
}

constexpr std::string_view kColumns = "seq, at, actor, action, target, outcome, detail, remote, prev_hash, hash";

AuditEntry from_row(const Row& r) {
    AuditEntry e;
    e.seq = r.i64(0);
    e.at = r.i64(1);
    e.actor = r.str(2);
    e.action = r.str(3);
    e.target = r.str(4);
    e.outcome = r.str(5);
    e.detail = r.str(6);
    e.remote = r.str(7);
    e.prev_hash = r.str(8);
    e.hash = r.str(9);
    return e;
}

}  // namespace

Status append_audit(Connection& c, std::vector<AuditEntry>& entries) {
    if (entries.empty()) return {};
    auto head = c.query(std::string("SELECT seq, hash FROM audit_head WHERE id = 1") + std::string(c.for_update()));
    if (!head) return head.error();
    if (head->empty()) return make_error(ErrorCode::storage, "audit head row is missing");
    std::int64_t seq = head->front().i64(0);
    std::string prev = head->front().str(1);
    // One INSERT for all of them: three statements however many entries.
    std::string sql = std::string("INSERT INTO audit_log (") + std::string(kColumns) + ") VALUES ";
    std::vector<Value> params;
    params.reserve(entries.size() * 10);
    for (AuditEntry& e : entries) {
        e.seq = ++seq;
        e.prev_hash = prev;
        e.hash = entry_hash(e);
        prev = e.hash;
        sql += (params.empty() ? "(" : ", (") + placeholders(10) + ")";
        for (Value v : {Value(e.seq), Value(e.at), Value(e.actor), Value(e.action), Value(e.target), Value(e.outcome),
                        Value(e.detail), Value(e.remote), Value(e.prev_hash), Value(e.hash)}) {
            params.push_back(std::move(v));
        }
    }
    auto ins = c.exec(sql, params);
    if (!ins) return ins.error();
    auto upd = c.exec("UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1", {seq, prev});
    if (!upd) return upd.error();
    return {};
}

Status append_audit(Connection& c, AuditEntry& e) {
    std::vector<AuditEntry> one{std::move(e)};
    auto st = append_audit(c, one);
    e = std::move(one.front());
    return st;
}

Result<AuditVerdict> verify_audit(Connection& c) {
    AuditVerdict v;
    std::string prev(kGenesis);
    std::int64_t expected = 1;
    constexpr std::int64_t kPage = 1000;
    for (;;) {
        auto rows = c.query(std::string("SELECT ") + std::string(kColumns) +
                                " FROM audit_log WHERE seq >= ? ORDER BY seq LIMIT ?",
                            {expected, kPage});
        if (!rows) return rows.error();
        for (const Row& r : *rows) {
            const AuditEntry e = from_row(r);
            std::string problem;
            if (e.seq != expected) {
                problem = "entry " + std::to_string(expected) + " is missing";
            } else if (e.prev_hash != prev) {
                problem = "entry " + std::to_string(e.seq) + " does not link to its predecessor";
            } else if (e.hash != entry_hash(e)) {
                problem = "entry " + std::to_string(e.seq) + " was modified";
            }
            if (!problem.empty()) {
                v.ok = false;
                v.first_bad = expected;
                v.problem = problem;
                return v;
            }
            prev = e.hash;
            ++expected;
            ++v.entries;
        }
        if (static_cast<std::int64_t>(rows->size()) < kPage) break;
    }
    auto head = c.query("SELECT seq, hash FROM audit_head WHERE id = 1");
    if (!head) return head.error();
    if (head->empty() || head->front().i64(0) != v.entries || head->front().str(1) != prev) {
        v.ok = false;
        v.first_bad = v.entries + 1;
        v.problem = "the chain ends before the recorded head: entries were removed at the end";
    }
    v.head_hash = prev;
    return v;
}

Result<std::vector<AuditEntry>> list_audit(Connection& c, std::int64_t after, std::int64_t limit) {
    auto rows = c.query(std::string("SELECT ") + std::string(kColumns) + " FROM audit_log WHERE seq > ? ORDER BY seq LIMIT ?",
                        {after, limit});
    if (!rows) return rows.error();
    std::vector<AuditEntry> out;
    out.reserve(rows->size());
    for (const Row& r : *rows) out.push_back(from_row(r));
    return out;
}

}  // namespace credprov::backend
