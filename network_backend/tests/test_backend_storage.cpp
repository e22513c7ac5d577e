// The storage layer on SQLite (PostgreSQL runs the same code in the
// integration tests): transactions, migrations, the audit chain, configuration.
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <stdexcept>
#include <thread>

#include "credprov/backend/audit.hpp"
#include "credprov/backend/config.hpp"
#include "credprov/backend/database.hpp"
#include "credprov/backend/metrics.hpp"

using namespace credprov;
using namespace credprov::backend;

namespace {

struct TempDb {
    std::filesystem::path dir;
    std::unique_ptr<Database> db;
    TempDb() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "credprov-db-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        dir = tmpl;
        auto opened = Database::open("sqlite:" + (dir / "t.db").string(), 2);
        REQUIRE(opened.ok());
        db = std::move(*opened);
        REQUIRE(db->migrate().ok());
    }
    ~TempDb() {
        db.reset();
        std::filesystem::remove_all(dir);
    }
};

// An audit entry of a test's own, numbered i.
AuditEntry test_entry(int i, const std::string& action) {
    AuditEntry e;
    e.at = 1000 + i;
    e.actor = "cli:test";
    e.action = action;
    e.target = "n:" + std::to_string(i);
    e.outcome = "ok";
    e.remote = "local";
    return e;
}

}  // namespace

TEST_CASE("database: migrations are versioned and idempotent") {
    TempDb t;
    auto v = t.db->schema_version();
    REQUIRE(v.ok());
    CHECK(*v >= 1);
    REQUIRE(t.db->migrate().ok());
    CHECK(*t.db->schema_version() == *v);
}

TEST_CASE("database: a failed transaction leaves nothing behind") {
    TempDb t;
    auto st = t.db->transact([](Connection& c) -> Status {
        auto a = c.exec("INSERT INTO manufacturers (name, public_key, created_at) VALUES (?, ?, ?)",
                        {std::string("Acme"), std::string("00"), std::int64_t{1}});
        if (!a) return a.error();
        return make_error(ErrorCode::bad_state, "changed my mind");
    });
    CHECK_FALSE(st.ok());
    std::int64_t n = -1;
    REQUIRE(t.db->read([&](Connection& c) -> Status {
                  auto rows = c.query("SELECT COUNT(*) FROM manufacturers");
                  if (!rows) return rows.error();
                  n = rows->front().i64(0);
                  return {};
              }).ok());
    CHECK(n == 0);
    // Parameters are bound, never spliced: metacharacters are data.
    const std::string odd = "x'); DROP TABLE manufacturers; --";
    REQUIRE(t.db->transact([&](Connection& c) -> Status {
                  auto a = c.exec("INSERT INTO manufacturers (name, public_key, created_at) VALUES (?, ?, ?)",
                                  {odd, std::string("00"), std::int64_t{1}});
                  return a ? Status{} : Status{a.error()};
              }).ok());
    REQUIRE(t.db->read([&](Connection& c) -> Status {
                  auto rows = c.query("SELECT name FROM manufacturers");
                  if (!rows) return rows.error();
                  CHECK(rows->size() == 1);
                  CHECK(rows->front().str(0) == odd);
                  return {};
              }).ok());
}

TEST_CASE("database: concurrent writers share commits, and each stays all or nothing with its audit entry") {
    // Writers on SQLite are committed in groups (decision 0010): a failing
    // writer, or one that throws, must leave nothing while the others in its
    // group commit, and the audit chain must stay whole.
    TempDb t;
    constexpr int kThreads = 8, kEach = 40;
    std::atomic<int> committed{0}, refused{0}, thrown{0};
    std::vector<std::thread> threads;
    for (int th = 0; th < kThreads; ++th) {
        threads.emplace_back([&, th] {
            for (int i = 0; i < kEach; ++i) {
                const int n = th * kEach + i;
                try {
                    auto st = t.db->transact([&](Connection& c) -> Status {
                        auto a = c.exec("INSERT INTO manufacturers (name, public_key, created_at) VALUES (?, ?, ?)",
                                        {"m" + std::to_string(n), std::string("00"), std::int64_t{n}});
                        if (!a) return a.error();
                        AuditEntry e;
                        e.at = n;
                        e.actor = "cli:test";
                        e.action = "test.write";
                        e.target = "n:" + std::to_string(n);
                        e.outcome = "ok";
                        e.remote = "local";
                        if (auto au = append_audit(c, e); !au) return au;
                        if (n % 7 == 3) return make_error(ErrorCode::bad_state, "changed my mind");
                        if (n % 11 == 5) throw std::runtime_error("a body that throws");
                        return {};
                    });
                    (st.ok() ? committed : refused)++;
                } catch (const std::runtime_error&) {
                    ++thrown;
                }
            }
        });
    }
    for (auto& th : threads) th.join();
    int expect_refused = 0, expect_thrown = 0;
    for (int n = 0; n < kThreads * kEach; ++n) {
        if (n % 7 == 3) ++expect_refused;
        else if (n % 11 == 5) ++expect_thrown;
    }
    CHECK(refused == expect_refused);
    CHECK(thrown == expect_thrown);
    CHECK(committed == kThreads * kEach - expect_refused - expect_thrown);
    REQUIRE(t.db->read([&](Connection& c) -> Status {
                  auto rows = c.query("SELECT created_at FROM manufacturers");
                  if (!rows) return rows.error();
                  CHECK(rows->size() == static_cast<std::size_t>(committed.load()));
                  for (const Row& r : *rows) {
                      CHECK(r.i64(0) % 7 != 3);
                      CHECK(r.i64(0) % 11 != 5);
                  }
                  auto v = verify_audit(c);
                  if (!v) return v.error();
                  CHECK(v->ok);
                  CHECK(v->entries == committed.load());
                  return {};
              }).ok());
}

TEST_CASE("audit: the chain links every entry, an edit, a deletion or a reordering is found") {
    TempDb t;
    for (int i = 0; i < 5; ++i) {
        REQUIRE(t.db->transact([&](Connection& c) {
                      AuditEntry e = test_entry(i, "test.step");
                      return append_audit(c, e);
                  }).ok());
    }
    auto verdict = [&] {
        AuditVerdict v;
        REQUIRE(t.db->read([&](Connection& c) -> Status {
                      auto r = verify_audit(c);
                      if (!r) return r.error();
                      v = *r;
                      return {};
                  }).ok());
        return v;
    };
    auto ok = verdict();
    CHECK(ok.ok);
    CHECK(ok.entries == 5);
    auto c = connect("sqlite:" + (t.dir / "t.db").string());
    REQUIRE(c.ok());
    REQUIRE((*c)->exec("UPDATE audit_log SET actor = 'cli:someone-else' WHERE seq = 4").ok());
    auto edited = verdict();
    CHECK_FALSE(edited.ok);
    CHECK(edited.first_bad == 4);
    REQUIRE((*c)->exec("UPDATE audit_log SET actor = 'cli:test' WHERE seq = 4").ok());
    CHECK(verdict().ok);
    REQUIRE((*c)->exec("DELETE FROM audit_log WHERE seq = 2").ok());
    auto gap = verdict();
    CHECK_FALSE(gap.ok);
    CHECK(gap.first_bad == 2);
}

TEST_CASE("audit: several entries appended at once chain in order, after and before single ones") {
    TempDb t;
    auto entry = [](int i) { return test_entry(i, "test.many"); };
    REQUIRE(t.db->transact([&](Connection& c) {
                  AuditEntry e = entry(0);
                  return append_audit(c, e);
              }).ok());
    std::vector<AuditEntry> many;
    for (int i = 1; i <= 40; ++i) many.push_back(entry(i));
    REQUIRE(t.db->transact([&](Connection& c) { return append_audit(c, many); }).ok());
    CHECK(many.front().seq == 2);
    CHECK(many.back().seq == 41);
    CHECK(many[1].prev_hash == many[0].hash);
    std::vector<AuditEntry> none;
    REQUIRE(t.db->transact([&](Connection& c) { return append_audit(c, none); }).ok());
    REQUIRE(t.db->transact([&](Connection& c) {
                  AuditEntry e = entry(41);
                  auto st = append_audit(c, e);
                  CHECK(e.seq == 42);
                  CHECK(e.prev_hash == many.back().hash);
                  return st;
              }).ok());
    REQUIRE(t.db->read([&](Connection& c) -> Status {
                  auto v = verify_audit(c);
                  if (!v) return v.error();
                  CHECK(v->ok);
                  CHECK(v->entries == 42);
                  auto listed = list_audit(c, 0, 100);
                  if (!listed) return listed.error();
                  REQUIRE(listed->size() == 42);
                  for (std::size_t i = 0; i < listed->size(); ++i) CHECK((*listed)[i].target == "n:" + std::to_string(i));
                  return {};
              }).ok());
}

TEST_CASE("configuration: defaults, relative paths, and errors with file and line") {
    auto ok = parse_backend_config("[server]\nallow_plain_http = true\n[storage]\ndatabase = \"sqlite:db/x.db\"\n", "b.toml", "/etc/cp");
    REQUIRE(ok.ok());
    CHECK(ok->port == 8443);
    CHECK(ok->database_url() == "sqlite:/etc/cp/db/x.db");
    CHECK(ok->resolve(ok->operator_key) == "/etc/cp/operator.key");
    auto pg = parse_backend_config("[server]\nallow_plain_http = true\n[storage]\ndatabase = \"postgresql://u@h/db\"\n", "b.toml", "/");
    REQUIRE(pg.ok());
    CHECK(pg->database_url() == "postgresql://u@h/db");
    struct Bad {
        const char* text;
        const char* expect;
    };
    for (const Bad& b : {Bad{"[server]\nallow_plain_http = true\nport = 70000\n", "b.toml:3"},
                         Bad{"[server]\nallow_plain_http = true\n[subscribers]\namf = \"80\"\n", "amf"},
                         Bad{"[server]\nallow_plain_http = true\n[subscribers]\nmsin_first = 10\nmsin_last = 5\n", "msin"},
                         Bad{"[server]\nallow_plain_http = true\n[log]\nformat = \"xml\"\n", "log.format"},
                         Bad{"[server]\ntls_certificate = \"c.pem\"\n", "go together"},
                         Bad{"[nonsense]\n", "nonsense"},
                         Bad{"[server\n", "b.toml:1"}}) {
        CAPTURE(b.text);
        auto r = parse_backend_config(b.text, "b.toml", "/");
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().message.find(b.expect) != std::string::npos);
    }
}

TEST_CASE("metrics: Prometheus text with every counter present, escaped labels, cumulative buckets") {
    Metrics m;
    m.add("credprov_registrations_total", labels({{"mode", "sealed"}}));
    m.add("credprov_registrations_total", labels({{"mode", "sealed"}}));
    m.observe_latency("/v1/x", 0.003);
    m.observe_latency("/v1/x", 0.3);
    const std::string text = m.render({{"credprov_subscribers", "Subscribers by state.", {{labels({{"state", "a\"b"}}), 3}}}});
    CHECK(text.find("credprov_registrations_total{mode=\"sealed\"} 2\n") != std::string::npos);
    CHECK(text.find("credprov_deprovisionings_total 0\n") != std::string::npos);
    CHECK(text.find("# TYPE credprov_http_request_duration_seconds histogram") != std::string::npos);
    CHECK(text.find("credprov_http_request_duration_seconds_bucket{route=\"/v1/x\",le=\"0.005\"} 1\n") != std::string::npos);
    CHECK(text.find("credprov_http_request_duration_seconds_bucket{route=\"/v1/x\",le=\"+Inf\"} 2\n") != std::string::npos);
    CHECK(text.find("credprov_subscribers{state=\"a\\\"b\"} 3\n") != std::string::npos);
    CHECK(m.value("credprov_registrations_total", labels({{"mode", "sealed"}})) == 2);
}
