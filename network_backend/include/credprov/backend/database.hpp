// One storage interface over SQLite (the embedded default) and PostgreSQL
// (many backend nodes sharing one database).
//
// SQL is written once, with `?` placeholders and portable types (BIGINT,
// TEXT); binary values are stored as lower-case hex TEXT so the same
// migrations and queries run on both engines. Every write happens inside
// Database::transact, which commits or rolls back as a whole and retries
// when the engine reports a serialisation conflict. Error messages name the
// failing operation, never a parameter value (parameters may be secrets).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "credprov/protocol/result.hpp"

namespace credprov::backend {

enum class Dialect : std::uint8_t { sqlite, postgres };

using Value = std::variant<std::nullptr_t, std::int64_t, std::string>;

// "?, ?, ?" for n bound parameters (an IN list, a row of a multi-row INSERT).
[[nodiscard]] inline std::string placeholders(std::size_t n) {
    std::string out;
    for (std::size_t i = 0; i < n; ++i) out += i == 0 ? "?" : ", ?";
    return out;
}

struct Row {
    std::vector<Value> cols;
    [[nodiscard]] bool is_null(std::size_t i) const { return std::holds_alternative<std::nullptr_t>(cols.at(i)); }
    [[nodiscard]] std::int64_t i64(std::size_t i) const;
    [[nodiscard]] std::string str(std::size_t i) const;  // "" for NULL
};

// One open connection. Not thread-safe; Database hands each transaction its own.
class Connection {
public:
    virtual ~Connection() = default;
    [[nodiscard]] virtual Dialect dialect() const noexcept = 0;
    // Runs a statement; returns the number of rows it changed.
    [[nodiscard]] virtual Result<std::int64_t> exec(std::string_view sql, const std::vector<Value>& params = {}) = 0;
    [[nodiscard]] virtual Result<std::vector<Row>> query(std::string_view sql,
                                                         const std::vector<Value>& params = {}) = 0;
    // Runs a script of several statements without parameters (migrations).
    [[nodiscard]] virtual Status script(std::string_view sql) = 0;
    // True when the last failure was a conflict worth retrying the whole
    // transaction for (SQLITE_BUSY, PostgreSQL 40001/40P01).
    [[nodiscard]] virtual bool last_error_retryable() const noexcept = 0;

    // " FOR UPDATE" on PostgreSQL (row lock), "" on SQLite (the transaction
    // already holds the database's write lock).
    [[nodiscard]] std::string_view for_update() const noexcept {
        return dialect() == Dialect::postgres ? " FOR UPDATE" : "";
    }
};

class Database {
public:
    // url: "sqlite:PATH" (or a plain path) or "postgresql://..." / "postgres://...".
    [[nodiscard]] static Result<std::unique_ptr<Database>> open(const std::string& url, std::size_t pool_size = 4);
    ~Database();
    Database(const Database&) = delete;
    Database& operator=(const Database&) = delete;

    [[nodiscard]] Dialect dialect() const noexcept { return dialect_; }
    [[nodiscard]] std::string_view engine() const noexcept {
        return dialect_ == Dialect::sqlite ? "sqlite" : "postgresql";
    }

    // Runs `body` in one transaction: commit when it returns ok, roll back
    // otherwise. Retries up to three times on a serialisation conflict.
    [[nodiscard]] Status transact(const std::function<Status(Connection&)>& body) { return run(body, true); }
    // Read-only work on a pooled connection (still one transaction, for a
    // consistent snapshot; on SQLite it does not take the write lock).
    [[nodiscard]] Status read(const std::function<Status(Connection&)>& body) { return run(body, false); }

    // Applies the versioned migrations that are not applied yet.
    [[nodiscard]] Status migrate();
    // Transactions run again since start because the database asked for it
    // (PostgreSQL deadlock, serialisation failure or unique-key race; SQLite
    // busy): a gauge in /metrics, and what the multi-node tests watch.
    [[nodiscard]] std::uint64_t retried() const noexcept { return retried_.load(std::memory_order_relaxed); }
    [[nodiscard]] Result<std::int64_t> schema_version();

    struct Pool;

private:
    Database(Dialect d, std::unique_ptr<Pool> pool);
    Status run(const std::function<Status(Connection&)>& body, bool write);
    Status run_grouped(const std::function<Status(Connection&)>& body);
    Dialect dialect_;
    std::unique_ptr<Pool> pool_;
    std::atomic<std::uint64_t> retried_{0};
};

// Opens one connection (used by the pool and by tests that poke the database
// directly, such as the audit tamper test).
[[nodiscard]] Result<std::unique_ptr<Connection>> connect(const std::string& url);

}  // namespace credprov::backend
