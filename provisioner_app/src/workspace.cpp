// The provisioner's folder: key, settings, journal (see workspace.hpp).
#include "credprov/provisioner/workspace.hpp"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdlib>
#include <ctime>

#include "credprov/common/key_file.hpp"

namespace credprov::provisioner {
namespace {

using json = nlohmann::json;

Error db_error(sqlite3* db, std::string_view what) {
    return make_error(ErrorCode::storage, std::string(what) + ": " + sqlite3_errmsg(db));
}

// One statement with text/int parameters; rows come back as strings.
Result<std::vector<std::vector<std::string>>> run(sqlite3* db, const char* sql, const std::vector<std::string>& params) {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &st, nullptr) != SQLITE_OK) return db_error(db, "journal");
    for (std::size_t i = 0; i < params.size(); ++i) {
        sqlite3_bind_text(st, static_cast<int>(i + 1), params[i].data(), static_cast<int>(params[i].size()), SQLITE_TRANSIENT);
    }
    std::vector<std::vector<std::string>> rows;
    int rc = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        std::vector<std::string> row;
        for (int c = 0; c < sqlite3_column_count(st); ++c) {
            const auto* t = reinterpret_cast<const char*>(sqlite3_column_text(st, c));
            row.emplace_back(t ? t : "");
        }
        rows.push_back(std::move(row));
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) return db_error(db, "journal");
    return rows;
}

constexpr const char* kSchema = R"sql(
PRAGMA journal_mode=WAL;
PRAGMA synchronous=FULL;
CREATE TABLE IF NOT EXISTS operations (
    id TEXT PRIMARY KEY, started_at INTEGER NOT NULL, kind TEXT NOT NULL, device_id TEXT NOT NULL,
    state TEXT NOT NULL, imsi TEXT NOT NULL, object_id TEXT NOT NULL, detail TEXT NOT NULL, finished_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pending_receipts (
    object_id TEXT PRIMARY KEY, attempt_id TEXT NOT NULL, device_id TEXT NOT NULL, request TEXT NOT NULL,
    queued_at INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS field_authorisations (
    id TEXT PRIMARY KEY, pool_id TEXT NOT NULL, imsi TEXT NOT NULL, not_after INTEGER NOT NULL,
    authorisation TEXT NOT NULL, state TEXT NOT NULL, device_id TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS field_tokens (
    device_id TEXT PRIMARY KEY, token TEXT NOT NULL, operator_certificate TEXT NOT NULL, not_after INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS pool_requests (
    request_id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, pool_id TEXT NOT NULL);
)sql";

// BEGIN IMMEDIATE ... COMMIT around fn; rolled back when fn fails.
template <typename Fn>
Status in_transaction(sqlite3* db, Fn&& fn) {
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr) != SQLITE_OK) return db_error(db, "journal");
    Status st = fn();
    if (!st) {
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        return st;
    }
    if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr) != SQLITE_OK) {
        auto e = db_error(db, "journal");
        sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
        return e;
    }
    return {};
}

Workspace::FieldAuthorisation authorisation_from(const std::vector<std::string>& r) {
    return {r[0], r[1], r[2], std::atoll(r[3].c_str()), r[4], r[5], r[6]};
}
constexpr const char* kAuthorisationColumns = "id, pool_id, imsi, not_after, authorisation, state, device_id";

}  // namespace

std::filesystem::path default_home() {
    if (const char* h = std::getenv("CREDPROV_HOME"); h && *h) return h;
    if (const char* x = std::getenv("XDG_CONFIG_HOME"); x && *x) return std::filesystem::path(x) / "credprov";
    if (const char* home = std::getenv("HOME"); home && *home) return std::filesystem::path(home) / ".config" / "credprov";
    return ".credprov";
}

Result<Workspace> Workspace::open(const std::filesystem::path& home) {
    std::error_code ec;
    std::filesystem::create_directories(home, ec);
    if (ec) return make_error(ErrorCode::storage, "cannot create " + home.string() + ": " + ec.message());
    ::chmod(home.c_str(), 0700);
    sqlite3* db = nullptr;
    if (sqlite3_open_v2((home / "journal.db").c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr) != SQLITE_OK) {
        auto e = make_error(ErrorCode::storage, "cannot open " + (home / "journal.db").string());
        sqlite3_close_v2(db);
        return e;
    }
    sqlite3_busy_timeout(db, 5000);
    char* err = nullptr;
    if (sqlite3_exec(db, kSchema, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : "unknown";
        sqlite3_free(err);
        sqlite3_close_v2(db);
        return make_error(ErrorCode::storage, "journal schema: " + msg);
    }
    return Workspace(home, db);
}

Workspace::~Workspace() {
    if (db_) sqlite3_close_v2(db_);
}

Workspace::Workspace(Workspace&& o) noexcept : home_(std::move(o.home_)), db_(o.db_) { o.db_ = nullptr; }

bool Workspace::has_key() const { return std::filesystem::exists(home_ / "provisioner.key"); }

Result<crypto::SigningKey> Workspace::load_key() const {
    auto seeds = read_key_file(home_ / "provisioner.key");
    if (!seeds) return seeds.error();
    return crypto::signing_key_from_seed(std::span<const std::uint8_t, 32>(seeds->sign.data(), 32));
}

Result<crypto::SigningKey> Workspace::load_or_create_key() {
    if (!has_key()) {
        if (auto st = write_key_file(home_ / "provisioner.key", KeySeeds::random()); !st) return st.error();
    }
    return load_key();
}

Result<Settings> Workspace::settings() const {
    Settings s;
    const auto path = home_ / "settings.json";
    if (!std::filesystem::exists(path)) return s;
    auto text = read_text_file(path);
    if (!text) return text.error();
    const json j = json::parse(*text, nullptr, false);
    if (!j.is_object()) return make_error(ErrorCode::malformed, path.string() + " is not a JSON object");
    s.backend = j.value("backend", "");
    s.ca_file = j.value("ca_file", "");
    s.provisioner_id = j.value("provisioner_id", "");
    s.name = j.value("name", "");
    s.operator_certificate = j.value("operator_certificate", "");
    return s;
}

Status Workspace::save(const Settings& s) {
    const json j{{"backend", s.backend},
                 {"ca_file", s.ca_file},
                 {"provisioner_id", s.provisioner_id},
                 {"name", s.name},
                 {"operator_certificate", s.operator_certificate}};
    return write_public_file(home_ / "settings.json", j.dump(2) + "\n");
}

Status Workspace::record(const Operation& op) {
    auto r = run(db_,
                 "INSERT OR REPLACE INTO operations (id, started_at, kind, device_id, state, imsi, object_id, detail, "
                 "finished_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                 {op.id, std::to_string(op.started_at), op.kind, op.device_id, op.state, op.imsi, op.object_id, op.detail,
                  std::to_string(op.finished_at)});
    if (!r) return r.error();
    return {};
}

Result<std::vector<Workspace::Operation>> Workspace::history(std::size_t limit) const {
    auto rows = run(db_,
                    "SELECT id, started_at, kind, device_id, state, imsi, object_id, detail, finished_at FROM operations "
                    "ORDER BY started_at DESC, rowid DESC LIMIT ?",
                    {std::to_string(limit)});
    if (!rows) return rows.error();
    std::vector<Operation> out;
    for (const auto& r : *rows) {
        out.push_back({r[0], std::atoll(r[1].c_str()), r[2], r[3], r[4], r[5], r[6], r[7], std::atoll(r[8].c_str())});
    }
    return out;
}

Status Workspace::queue_receipt(const PendingReceipt& p) {
    auto r = run(db_,
                 "INSERT OR REPLACE INTO pending_receipts (object_id, attempt_id, device_id, request, queued_at) VALUES "
                 "(?, ?, ?, ?, ?)",
                 {p.object_id, p.attempt_id, p.device_id, p.request.dump(), std::to_string(p.queued_at)});
    if (!r) return r.error();
    return {};
}

Status Workspace::drop_receipt(const std::string& object_id) {
    auto r = run(db_, "DELETE FROM pending_receipts WHERE object_id = ?", {object_id});
    if (!r) return r.error();
    return {};
}

Result<std::vector<Workspace::PendingReceipt>> Workspace::pending_receipts() const {
    auto rows = run(db_, "SELECT object_id, attempt_id, device_id, request, queued_at FROM pending_receipts ORDER BY queued_at", {});
    if (!rows) return rows.error();
    std::vector<PendingReceipt> out;
    for (const auto& r : *rows) {
        out.push_back({r[0], r[1], r[2], json::parse(r[3], nullptr, false), std::atoll(r[4].c_str())});
    }
    return out;
}

Status Workspace::store_pool(const std::vector<FieldAuthorisation>& list) {
    return in_transaction(db_, [&]() -> Status {
        for (const auto& a : list) {
            auto r = run(db_,
                         "INSERT OR IGNORE INTO field_authorisations (id, pool_id, imsi, not_after, authorisation, state, "
                         "device_id) VALUES (?, ?, ?, ?, ?, 'available', '')",
                         {a.id, a.pool_id, a.imsi, std::to_string(a.not_after), a.authorisation});
            if (!r) return r.error();
        }
        return {};
    });
}

Result<std::vector<Workspace::FieldAuthorisation>> Workspace::field_authorisations() const {
    auto rows = run(db_, (std::string("SELECT ") + kAuthorisationColumns + " FROM field_authorisations ORDER BY imsi").c_str(), {});
    if (!rows) return rows.error();
    std::vector<FieldAuthorisation> out;
    for (const auto& r : *rows) out.push_back(authorisation_from(r));
    return out;
}

Result<std::optional<Workspace::FieldAuthorisation>> Workspace::claim_authorisation(const std::string& device_id,
                                                                                     std::int64_t now) {
    std::optional<FieldAuthorisation> found;
    auto st = in_transaction(db_, [&]() -> Status {
        auto mine = run(db_,
                        (std::string("SELECT ") + kAuthorisationColumns +
                         " FROM field_authorisations WHERE device_id = ? AND state IN ('claimed', 'delivered')")
                            .c_str(),
                        {device_id});
        if (!mine) return mine.error();
        if (!mine->empty()) {
            found = authorisation_from(mine->front());
            return {};
        }
        auto free = run(db_,
                        (std::string("SELECT ") + kAuthorisationColumns +
                         " FROM field_authorisations WHERE state = 'available' AND not_after > ? ORDER BY not_after, imsi "
                         "LIMIT 1")
                            .c_str(),
                        {std::to_string(now)});
        if (!free) return free.error();
        if (free->empty()) return {};
        found = authorisation_from(free->front());
        found->state = "claimed";
        found->device_id = device_id;
        auto upd = run(db_, "UPDATE field_authorisations SET state = 'claimed', device_id = ? WHERE id = ?", {device_id, found->id});
        if (!upd) return upd.error();
        return {};
    });
    if (!st) return st.error();
    return found;
}

Status Workspace::set_authorisation_state(const std::string& id, const std::string& state) {
    // Back to available releases the device binding too.
    auto r = state == "available"
                 ? run(db_, "UPDATE field_authorisations SET state = 'available', device_id = '' WHERE id = ?", {id})
                 : run(db_, "UPDATE field_authorisations SET state = ? WHERE id = ?", {state, id});
    if (!r) return r.error();
    return {};
}

Status Workspace::store_field_token(const FieldToken& t) {
    auto r = run(db_,
                 "INSERT OR REPLACE INTO field_tokens (device_id, token, operator_certificate, not_after) VALUES (?, ?, ?, ?)",
                 {t.device_id, t.token, t.operator_certificate, std::to_string(t.not_after)});
    if (!r) return r.error();
    return {};
}

Result<std::optional<Workspace::FieldToken>> Workspace::field_token(const std::string& device_id, std::int64_t now) const {
    auto rows = run(db_,
                    "SELECT device_id, token, operator_certificate, not_after FROM field_tokens WHERE device_id = ? AND "
                    "not_after > ?",
                    {device_id, std::to_string(now)});
    if (!rows) return rows.error();
    if (rows->empty()) return std::optional<FieldToken>{};
    const auto& r = rows->front();
    return std::optional<FieldToken>(FieldToken{r[0], r[1], r[2], std::atoll(r[3].c_str())});
}

Result<std::vector<Workspace::FieldToken>> Workspace::field_tokens() const {
    auto rows = run(db_, "SELECT device_id, token, operator_certificate, not_after FROM field_tokens ORDER BY device_id", {});
    if (!rows) return rows.error();
    std::vector<FieldToken> out;
    for (const auto& r : *rows) out.push_back({r[0], r[1], r[2], std::atoll(r[3].c_str())});
    return out;
}

Result<std::string> Workspace::open_pool_request(const std::string& fresh_id, std::int64_t now) {
    auto open = run(db_, "SELECT request_id FROM pool_requests WHERE pool_id = '' ORDER BY created_at LIMIT 1", {});
    if (!open) return open.error();
    if (!open->empty()) return open->front()[0];
    auto ins = run(db_, "INSERT INTO pool_requests (request_id, created_at, pool_id) VALUES (?, ?, '')",
                   {fresh_id, std::to_string(now)});
    if (!ins) return ins.error();
    return fresh_id;
}

Status Workspace::close_pool_request(const std::string& request_id, const std::string& pool_id) {
    auto r = run(db_, "UPDATE pool_requests SET pool_id = ? WHERE request_id = ?", {pool_id, request_id});
    if (!r) return r.error();
    return {};
}

}  // namespace credprov::provisioner
