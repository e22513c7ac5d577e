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
)sql";

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

}  // namespace credprov::provisioner
