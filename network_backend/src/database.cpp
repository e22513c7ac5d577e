// SQLite and PostgreSQL drivers behind backend::Connection, the connection
// pool and the migration runner. Parameters are bound, never spliced into
// SQL text; errors name the operation, never a value.
#include "credprov/backend/database.hpp"

#include <libpq-fe.h>
#include <sqlite3.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "embedded_migrations.hpp"

namespace credprov::backend {

std::int64_t Row::i64(std::size_t i) const {
    const Value& v = cols.at(i);
    if (const auto* n = std::get_if<std::int64_t>(&v)) return *n;
    if (const auto* s = std::get_if<std::string>(&v)) return std::strtoll(s->c_str(), nullptr, 10);
    return 0;
}

std::string Row::str(std::size_t i) const {
    const Value& v = cols.at(i);
    if (const auto* s = std::get_if<std::string>(&v)) return *s;
    if (const auto* n = std::get_if<std::int64_t>(&v)) return std::to_string(*n);
    return {};
}

namespace {

Error db_error(std::string_view what, std::string_view detail) {
    return make_error(ErrorCode::storage, std::string(what) + ": " + std::string(detail));
}

// ---- SQLite -------------------------------------------------------------------

class SqliteConnection final : public Connection {
public:
    explicit SqliteConnection(sqlite3* db) : db_(db) {}
    ~SqliteConnection() override {
        forget_statements();
        sqlite3_close_v2(db_);
    }

    Dialect dialect() const noexcept override { return Dialect::sqlite; }

    Result<std::int64_t> exec(std::string_view sql, const std::vector<Value>& params) override {
        std::int64_t changed = 0;
        auto st = run(sql, params, nullptr);
        if (!st) return st.error();
        changed = sqlite3_changes64(db_);
        return changed;
    }

    Result<std::vector<Row>> query(std::string_view sql, const std::vector<Value>& params) override {
        std::vector<Row> rows;
        auto st = run(sql, params, &rows);
        if (!st) return st.error();
        return rows;
    }

    Status script(std::string_view sql) override {
        char* err = nullptr;
        const std::string text(sql);
        const int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
        retryable_ = rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
        if (rc != SQLITE_OK) {
            std::string msg = err ? err : sqlite3_errstr(rc);
            sqlite3_free(err);
            return db_error("sqlite script", msg);
        }
        return {};
    }

    bool last_error_retryable() const noexcept override { return retryable_; }

private:
    // Statements are compiled once per connection and kept: the backend runs
    // the same few dozen SQL texts over and over, and compiling them cost
    // about a sixth of its CPU time. SQLite recompiles a kept statement by
    // itself when a migration changes the schema.
    static constexpr std::size_t kMaxStatements = 128;

    void forget_statements() {
        for (auto& [text, stmt] : statements_) sqlite3_finalize(stmt);
        statements_.clear();
    }

    sqlite3_stmt* statement(std::string_view sql, int& rc) {
        std::string text(sql);
        if (auto it = statements_.find(text); it != statements_.end()) {
            rc = SQLITE_OK;
            return it->second;
        }
        if (statements_.size() >= kMaxStatements) forget_statements();  // bounded; listings build their SQL
        sqlite3_stmt* stmt = nullptr;
        rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
        if (rc != SQLITE_OK) return nullptr;
        if (stmt == nullptr) {
            rc = SQLITE_MISUSE;  // no statement in the text
            return nullptr;
        }
        statements_.emplace(std::move(text), stmt);
        return stmt;
    }

    // Makes a kept statement ready for its next use, whatever happened to it.
    struct Rewind {
        sqlite3_stmt* stmt;
        ~Rewind() {
            sqlite3_reset(stmt);
            sqlite3_clear_bindings(stmt);
        }
    };

    Status run(std::string_view sql, const std::vector<Value>& params, std::vector<Row>* rows) {
        int rc = SQLITE_OK;
        sqlite3_stmt* stmt = statement(sql, rc);
        if (stmt == nullptr) {
            retryable_ = rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
            return db_error("sqlite prepare", rc == SQLITE_MISUSE ? "no statement" : sqlite3_errmsg(db_));
        }
        const Rewind rewind{stmt};
        for (std::size_t i = 0; i < params.size(); ++i) {
            const int idx = static_cast<int>(i + 1);
            const Value& v = params[i];
            if (std::holds_alternative<std::nullptr_t>(v)) {
                rc = sqlite3_bind_null(stmt, idx);
            } else if (const auto* n = std::get_if<std::int64_t>(&v)) {
                rc = sqlite3_bind_int64(stmt, idx, *n);
            } else {
                const auto& s = std::get<std::string>(v);
                rc = sqlite3_bind_text(stmt, idx, s.data(), static_cast<int>(s.size()), SQLITE_TRANSIENT);
            }
            if (rc != SQLITE_OK) return db_error("sqlite bind", sqlite3_errstr(rc));
        }
        while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
            if (rows == nullptr) continue;
            Row row;
            const int n = sqlite3_column_count(stmt);
            row.cols.reserve(static_cast<std::size_t>(n));
            for (int c = 0; c < n; ++c) {
                switch (sqlite3_column_type(stmt, c)) {
                    case SQLITE_NULL: row.cols.emplace_back(nullptr); break;
                    case SQLITE_INTEGER: row.cols.emplace_back(static_cast<std::int64_t>(sqlite3_column_int64(stmt, c))); break;
                    default: {
                        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, c));
                        row.cols.emplace_back(std::string(text ? text : "", static_cast<std::size_t>(sqlite3_column_bytes(stmt, c))));
                    }
                }
            }
            rows->push_back(std::move(row));
        }
        retryable_ = rc == SQLITE_BUSY || rc == SQLITE_LOCKED;
        const bool ok = rc == SQLITE_DONE;
        if (!ok) return db_error("sqlite step", sqlite3_errmsg(db_));
        return {};
    }

    sqlite3* db_;
    bool retryable_{false};
    std::unordered_map<std::string, sqlite3_stmt*> statements_;
};

Result<std::unique_ptr<Connection>> connect_sqlite(const std::string& path) {
    sqlite3* db = nullptr;
    const int rc = sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                                   nullptr);
    if (rc != SQLITE_OK) {
        std::string msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
        sqlite3_close_v2(db);
        return db_error("cannot open SQLite database " + path, msg);
    }
    sqlite3_busy_timeout(db, 10000);
    auto conn = std::make_unique<SqliteConnection>(db);
    // WAL for concurrent readers; FULL sync so an acknowledged commit survives
    // a power cut, not only a crash of the process.
    if (auto st = conn->script("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;"); !st) {
        return st.error();
    }
    return std::unique_ptr<Connection>(std::move(conn));
}

// ---- PostgreSQL -----------------------------------------------------------------

// `?` placeholders become $1, $2, ... (outside quoted literals).
std::string to_postgres_placeholders(std::string_view sql) {
    std::string out;
    out.reserve(sql.size() + 16);
    int n = 0;
    bool quoted = false;
    for (const char c : sql) {
        if (c == '\'') quoted = !quoted;
        if (c == '?' && !quoted) {
            out += '$';
            out += std::to_string(++n);
        } else {
            out += c;
        }
    }
    return out;
}

class PostgresConnection final : public Connection {
public:
    explicit PostgresConnection(PGconn* c) : c_(c) {}
    ~PostgresConnection() override { PQfinish(c_); }

    Dialect dialect() const noexcept override { return Dialect::postgres; }

    Result<std::int64_t> exec(std::string_view sql, const std::vector<Value>& params) override {
        PGresult* res = nullptr;
        if (auto st = run(sql, params, res); !st) return st.error();
        const char* tuples = PQcmdTuples(res);
        const std::int64_t changed = (tuples && *tuples) ? std::strtoll(tuples, nullptr, 10) : 0;
        PQclear(res);
        return changed;
    }

    Result<std::vector<Row>> query(std::string_view sql, const std::vector<Value>& params) override {
        PGresult* res = nullptr;
        if (auto st = run(sql, params, res); !st) return st.error();
        std::vector<Row> rows;
        const int nrows = PQntuples(res);
        const int ncols = PQnfields(res);
        rows.reserve(static_cast<std::size_t>(nrows));
        for (int r = 0; r < nrows; ++r) {
            Row row;
            for (int c = 0; c < ncols; ++c) {
                if (PQgetisnull(res, r, c)) {
                    row.cols.emplace_back(nullptr);
                    continue;
                }
                const Oid type = PQftype(res, c);
                const char* text = PQgetvalue(res, r, c);
                if (type == 20 || type == 21 || type == 23) {  // int8, int2, int4
                    row.cols.emplace_back(static_cast<std::int64_t>(std::strtoll(text, nullptr, 10)));
                } else {
                    row.cols.emplace_back(std::string(text, static_cast<std::size_t>(PQgetlength(res, r, c))));
                }
            }
            rows.push_back(std::move(row));
        }
        PQclear(res);
        return rows;
    }

    Status script(std::string_view sql) override {
        const std::string text(sql);
        PGresult* res = PQexec(c_, text.c_str());
        return finish(res, "postgresql script", nullptr);
    }

    bool last_error_retryable() const noexcept override { return retryable_; }

private:
    Status run(std::string_view sql, const std::vector<Value>& params, PGresult*& out) {
        const std::string text = to_postgres_placeholders(sql);
        std::vector<std::string> storage(params.size());
        std::vector<const char*> values(params.size(), nullptr);
        for (std::size_t i = 0; i < params.size(); ++i) {
            if (const auto* n = std::get_if<std::int64_t>(&params[i])) {
                storage[i] = std::to_string(*n);
                values[i] = storage[i].c_str();
            } else if (const auto* s = std::get_if<std::string>(&params[i])) {
                values[i] = s->c_str();
            }
        }
        PGresult* res = PQexecParams(c_, text.c_str(), static_cast<int>(params.size()), nullptr, values.data(),
                                     nullptr, nullptr, 0);
        return finish(res, "postgresql statement", &out);
    }

    Status finish(PGresult* res, std::string_view what, PGresult** keep) {
        const ExecStatusType s = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
        if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
            retryable_ = false;
            if (keep) {
                *keep = res;
            } else {
                PQclear(res);
            }
            return {};
        }
        const char* state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : nullptr;
        const std::string sqlstate = state ? state : "";
        // 23505 too: under READ COMMITTED a row that does not exist yet
        // cannot be locked, so two nodes may both decide to insert it (the
        // device row of a newly attested device, a field pool's request id);
        // the second waits for the first and gets a unique violation. Run
        // again, the transaction finds the row and takes its idempotent path.
        retryable_ = sqlstate == "40001" || sqlstate == "40P01" || sqlstate == "23505";
        const char* primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : nullptr;
        std::string msg = primary ? primary : PQerrorMessage(c_);
        if (res) PQclear(res);
        return db_error(what, msg + (sqlstate.empty() ? "" : " (SQLSTATE " + sqlstate + ")"));
    }

    PGconn* c_;
    bool retryable_{false};
};

Result<std::unique_ptr<Connection>> connect_postgres(const std::string& url) {
    PGconn* c = PQconnectdb(url.c_str());
    if (c == nullptr || PQstatus(c) != CONNECTION_OK) {
        // PQerrorMessage may quote the connection string, which can hold a
        // password: report only that the connection failed and the server's
        // first line.
        std::string msg = c ? PQerrorMessage(c) : "out of memory";
        if (auto nl = msg.find('\n'); nl != std::string::npos) msg.resize(nl);
        if (c) PQfinish(c);
        return db_error("cannot connect to PostgreSQL", msg);
    }
    auto conn = std::make_unique<PostgresConnection>(c);
    if (auto st = conn->script("SET client_min_messages = warning"); !st) return st.error();
    return std::unique_ptr<Connection>(std::move(conn));
}

bool is_postgres_url(std::string_view url) {
    return url.starts_with("postgresql://") || url.starts_with("postgres://") || url.starts_with("host=") ||
           url.starts_with("dbname=");
}

}  // namespace

Result<std::unique_ptr<Connection>> connect(const std::string& url) {
    if (is_postgres_url(url)) return connect_postgres(url);
    std::string path = url;
    if (path.starts_with("sqlite:")) path = path.substr(7);
    if (path.starts_with("//")) path = path.substr(2);
    if (path.empty()) return make_error(ErrorCode::storage, "empty SQLite path in the storage URL");
    return connect_sqlite(path);
}

// ---- pool --------------------------------------------------------------------------

struct Database::Pool {
    std::string url;
    std::size_t size{0};
    std::mutex m;
    std::condition_variable cv;
    std::vector<std::unique_ptr<Connection>> idle;
    std::size_t open{0};

    // Group commit (SQLite writes): one leader at a time runs every queued
    // write transaction inside one BEGIN IMMEDIATE ... COMMIT, each under its
    // own savepoint, and wakes their owners once COMMIT has returned.
    struct Job {
        const std::function<Status(Connection&)>* body{nullptr};
        Status result{make_error(ErrorCode::storage, "transaction not attempted")};
        bool retryable{false};
        bool own_failure{false};  // the body itself failed (rolled back to its savepoint)
        std::exception_ptr thrown;
        bool done{false};
        // Its owner sleeps here: woken when its group committed, or when it
        // is first in the queue and the leader stepped down.
        std::condition_variable wake;
    };
    std::mutex group_m;
    std::deque<Job*> queue;
    bool leading{false};

    Result<std::unique_ptr<Connection>> take() {
        std::unique_lock lock(m);
        cv.wait(lock, [&] { return !idle.empty() || open < size; });
        if (!idle.empty()) {
            auto c = std::move(idle.back());
            idle.pop_back();
            return c;
        }
        ++open;
        lock.unlock();
        auto c = connect(url);
        if (!c) {
            std::lock_guard relock(m);
            --open;
            cv.notify_one();
        }
        return c;
    }
    void give(std::unique_ptr<Connection> c, bool healthy) {
        std::lock_guard lock(m);
        if (healthy) {
            idle.push_back(std::move(c));
        } else {
            --open;
        }
        cv.notify_one();
    }
};

Database::Database(Dialect d, std::unique_ptr<Pool> pool) : dialect_(d), pool_(std::move(pool)) {}
Database::~Database() = default;

Result<std::unique_ptr<Database>> Database::open(const std::string& url, std::size_t pool_size) {
    auto pool = std::make_unique<Pool>();
    pool->url = url;
    pool->size = pool_size == 0 ? 1 : pool_size;
    auto first = pool->take();
    if (!first) return first.error();
    const Dialect d = (*first)->dialect();
    pool->give(std::move(*first), true);
    return std::unique_ptr<Database>(new Database(d, std::move(pool)));
}

namespace {

using Job = Database::Pool::Job;

// One statement without parameters, through the connection's kept statements.
Status statement(Connection& conn, std::string_view sql) {
    auto r = conn.exec(sql);
    if (!r) return r.error();
    return {};
}

constexpr std::size_t kMaxGroup = 64;  // write transactions per group commit

// The group cannot commit: roll all of it back. Every job that had not
// failed on its own gets the error and is retried by its owner, alone or in
// the next group. Returns whether the connection is fit for the pool.
bool abandon_group(Connection& conn, const std::vector<Job*>& batch, const Status& why) {
    const bool rolled_back = statement(conn, "ROLLBACK").ok();
    for (Job* j : batch) {
        if (j->own_failure) continue;
        j->result = why;
        j->retryable = true;
    }
    return rolled_back;
}

// Runs a batch of write transactions in one SQLite transaction: each body
// under a savepoint (a body that fails is rolled back to it, as if it had
// never run), then one COMMIT for all, so one fsync makes all of them
// durable. Sets every job's result; returns whether the connection is fit
// for the pool.
bool commit_group(Connection& conn, const std::vector<Job*>& batch) {
    if (auto began = statement(conn, "BEGIN IMMEDIATE"); !began) {
        const bool retry = conn.last_error_retryable();
        for (Job* j : batch) {
            j->result = began;
            j->retryable = retry;
        }
        return false;
    }
    for (Job* j : batch) {
        if (auto sp = statement(conn, "SAVEPOINT grouped"); !sp) return abandon_group(conn, batch, sp);
        Status st;
        try {
            st = (*j->body)(conn);
        } catch (...) {
            // Thrown again in the owner's thread once the group is settled.
            j->thrown = std::current_exception();
            st = make_error(ErrorCode::storage, "the transaction body threw");
        }
        if (st) {
            if (auto rel = statement(conn, "RELEASE grouped"); !rel) return abandon_group(conn, batch, rel);
            j->result = {};
            continue;
        }
        j->own_failure = true;
        j->result = st;
        j->retryable = conn.last_error_retryable();
        // After some errors (I/O, full disk, out of memory) SQLite has already
        // rolled the whole transaction back, savepoint included: then the
        // others' work is gone too.
        if (auto undo = statement(conn, "ROLLBACK TO grouped"); !undo) return abandon_group(conn, batch, undo);
        if (auto rel = statement(conn, "RELEASE grouped"); !rel) return abandon_group(conn, batch, rel);
    }
    if (auto committed = statement(conn, "COMMIT"); !committed) return abandon_group(conn, batch, committed);
    return true;
}

}  // namespace

// SQLite has one writer at a time, and with synchronous=FULL each COMMIT
// waits for an fsync of the WAL (about a millisecond here): one transaction
// per commit would cap the writes at about a thousand per second, whatever
// the cores. Writers queue instead; whoever finds no leader becomes it and
// commits everything queued so far as one group, while newcomers queue for
// the next. A response is still sent only after the COMMIT that holds its
// writes returned, and each request is still all or nothing (its savepoint).
// See docs/decisions/0010-group-commit.md.
Status Database::run_grouped(const std::function<Status(Connection&)>& body) {
    Pool& p = *pool_;
    Status last = make_error(ErrorCode::storage, "transaction not attempted");
    for (int attempt = 0; attempt < 4; ++attempt) {
        Job job;
        job.body = &body;
        {
            std::unique_lock lock(p.group_m);
            p.queue.push_back(&job);
            for (;;) {
                job.wake.wait(lock, [&] { return job.done || !p.leading; });
                if (job.done) break;
                p.leading = true;
                const std::size_t n = std::min(p.queue.size(), kMaxGroup);
                std::vector<Job*> batch(p.queue.begin(), p.queue.begin() + static_cast<std::ptrdiff_t>(n));
                p.queue.erase(p.queue.begin(), p.queue.begin() + static_cast<std::ptrdiff_t>(n));
                lock.unlock();
                auto taken = p.take();
                if (!taken) {
                    for (Job* j : batch) j->result = taken.error();
                } else {
                    const bool healthy = commit_group(**taken, batch);
                    p.give(std::move(*taken), healthy);
                }
                lock.lock();
                p.leading = false;
                // Wake only the owners of this group and the next leader: the
                // rest of the queue sleeps on until its own group is done.
                for (Job* j : batch) {
                    j->done = true;
                    if (j != &job) j->wake.notify_one();
                }
                if (!p.queue.empty()) p.queue.front()->wake.notify_one();
            }
        }
        if (job.thrown) std::rethrow_exception(job.thrown);
        last = job.result;
        if (last || !job.retryable) return last;
        retried_.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(std::chrono::milliseconds(20 * (attempt + 1)));
    }
    return last;
}

Status Database::run(const std::function<Status(Connection&)>& body, bool write) {
    Status last = make_error(ErrorCode::storage, "transaction not attempted");
    if (write && dialect_ == Dialect::sqlite) return run_grouped(body);
    for (int attempt = 0; attempt < 4; ++attempt) {
        auto taken = pool_->take();
        if (!taken) return taken.error();
        auto conn = std::move(*taken);
        // SQLite: take the write lock up front so two writers never deadlock
        // on a lock upgrade. PostgreSQL: READ COMMITTED plus row locks and
        // conditional updates.
        auto began = statement(*conn, dialect_ == Dialect::sqlite && write ? "BEGIN IMMEDIATE" : "BEGIN");
        if (!began) {
            const bool retry = conn->last_error_retryable();
            pool_->give(std::move(conn), false);
            last = began;
            if (!retry) return last;
            retried_.fetch_add(1, std::memory_order_relaxed);
            std::this_thread::sleep_for(std::chrono::milliseconds(20 * (attempt + 1)));
            continue;
        }
        Status st = body(*conn);
        if (st) {
            st = statement(*conn, "COMMIT");
            if (st) {
                pool_->give(std::move(conn), true);
                return st;
            }
        }
        const bool retry = conn->last_error_retryable();
        const Status rb = statement(*conn, "ROLLBACK");
        pool_->give(std::move(conn), rb.ok());
        last = st;
        if (!retry) return last;
        retried_.fetch_add(1, std::memory_order_relaxed);
        std::this_thread::sleep_for(std::chrono::milliseconds(20 * (attempt + 1)));
    }
    return last;
}

Result<std::int64_t> Database::schema_version() {
    std::int64_t version = 0;
    auto st = read([&](Connection& c) -> Status {
        auto rows = c.query("SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
        if (!rows) return rows.error();
        version = rows->empty() ? 0 : rows->front().i64(0);
        return {};
    });
    if (!st) return st.error();
    return version;
}

Status Database::migrate() {
    // The migrations table itself is created idempotently; every migration
    // then runs in its own transaction together with its version row, so a
    // crash leaves either all of a migration or none of it.
    auto st = transact([](Connection& c) -> Status {
        return c.script("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)");
    });
    if (!st) return st;
    for (const auto& m : embedded::migrations()) {
        st = transact([&](Connection& c) -> Status {
            auto done = c.query(std::string("SELECT version FROM schema_migrations WHERE version = ?") +
                                    std::string(c.for_update()),
                                {static_cast<std::int64_t>(m.version)});
            if (!done) return done.error();
            if (!done->empty()) return {};
            if (auto s = c.script(m.sql); !s) {
                return make_error(ErrorCode::storage, "migration " + std::to_string(m.version) + " failed: " +
                                                          s.error().message);
            }
            const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                                 std::chrono::system_clock::now().time_since_epoch()).count();
            auto ins = c.exec("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                              {static_cast<std::int64_t>(m.version), static_cast<std::int64_t>(now)});
            if (!ins) return ins.error();
            return {};
        });
        if (!st) return st;
    }
    return {};
}

}  // namespace credprov::backend
