// The core-network connector against a real osmo-hlr (decision 0011): what
// the backend activates appears in osmo-hlr with the device's K/OPc, what it
// deprovisions disappears; either side may die (SIGKILL) and both converge
// once it is back; reconciliation finds injected drift and --repair fixes it.
// Every test runs on SQLite and on PostgreSQL. Waits poll with generous
// deadlines (the machine may be loaded); no sleep stands in for a condition.
#include <regex>

#include "backend_test.hpp"
#include "osmo_hlr_lab.hpp"

using namespace credprov;
using namespace credprov::testing;

namespace {

// [core] for a lab whose osmo-hlr listens on a loopback address of its own.
// Short back-off so a restarted osmo-hlr is found again quickly.
LabOptions core_options(const std::string& more = {}) {
    const std::string address = random_loopback_address();
    LabOptions o;
    o.extra_toml = "[core]\nkind = \"osmo-hlr\"\nctrl = \"" + address + ":4259\"\nvty = \"" + address +
                   ":4258\"\ntimeout_ms = 1500\nretry_max_s = 1\nlease_s = 15\n" + more;
    return o;
}

// The address core_options() picked, read back from the lab's configuration.
std::string core_address(const BackendLab& lab) {
    const std::string text = read_file(lab.config);
    static const std::regex ctrl(R"re(ctrl = "([0-9.]+):4259")re");
    std::smatch m;
    if (!std::regex_search(text, m, ctrl)) throw std::runtime_error("no [core] in the lab configuration");
    return m[1].str();
}

std::string expected_aud3g(const SimDevice& d) {
    return "MILENAGE," + to_hex(ByteView(d.host.k.data(), 16)) + ",OPC," + to_hex(ByteView(d.host.opc.data(), 16)) + ",5";
}

// Polls until pred() holds or the deadline passes; returns pred()'s last value.
template <class Pred>
bool eventually(Pred pred, std::chrono::seconds within = std::chrono::seconds(40)) {
    const auto end = std::chrono::steady_clock::now() + within;
    for (;;) {
        if (pred()) return true;
        if (std::chrono::steady_clock::now() > end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
}

CommandResult backend_cli(BackendLab& lab, std::vector<std::string> args) {
    std::vector<std::string> argv{CREDPROV_BACKEND, "-c", lab.config.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_command(argv);
}

// True once every queued change is delivered (polls `core status`).
bool outbox_drained(BackendLab& lab) {
    return eventually([&] {
        auto s = backend_cli(lab, {"core", "status"});
        return s.exit_code == 0 && json::parse(s.out)["pending"] == 0;
    });
}

struct Provisioned {
    std::unique_ptr<SimDevice> device;
    std::string imsi;
};

Provisioned provision(BackendLab& lab, Technician& tech) {
    Provisioned p{std::make_unique<SimDevice>(lab.trust()), {}};
    lab.import_device(p.device->identity);
    auto reg = tech.register_sealed(*p.device);
    REQUIRE_MESSAGE(reg.receipt.status == 200, reg.receipt.raw);
    p.imsi = reg.imsi;
    return p;
}

}  // namespace

BACKEND_TEST_WITH(core_mirror, "core: an activation reaches osmo-hlr with the device's K/OPc, a deprovisioning removes it",
                  core_options()) {
    OsmoHlr hlr(core_address(lab));
    Technician tech(lab);
    auto a = provision(lab, tech);
    CHECK_MESSAGE(eventually([&] { return hlr.aud3g(a.imsi) == expected_aud3g(*a.device); }),
                  "osmo-hlr has no subscriber with the device's keys");

    // Field mode: the keys the device generated reach osmo-hlr too.
    auto pool = tech.post("/v1/field-pools", json{{"request_id", "core test"}, {"count", 1}});
    REQUIRE(pool.status == 201);
    SimDevice field_dev(lab.trust());
    lab.import_device(field_dev.identity);
    const json& fa = pool.body["authorisations"][0];
    auto auth = SignedObject::decode(*backend::base64_decode(fa["authorisation"].get<std::string>())).value();
    auto tok = tech.token(field_dev.identity.id, {"deliver-field"});
    REQUIRE(tok);
    auto resp = tech.deliver(field_dev, *tok, Request{Operation::deliver_field, auth}, kModeSealed | kModeField);
    REQUIRE(resp.ok());
    auto receipt = tech.submit(fa["id"].get<std::string>(), *resp->receipt, BackendLab::device_json(field_dev.identity));
    REQUIRE_MESSAGE(receipt.status == 200, receipt.raw);
    const std::string field_imsi = fa["imsi"].get<std::string>();
    CHECK(eventually([&] { return hlr.aud3g(field_imsi) == expected_aud3g(field_dev); }));

    auto d = lab.admin("POST", "/v1/devices/" + a.device->identity.id.to_string() + "/deprovision", json{{"reason", "core test"}});
    REQUIRE(d.status == 200);
    CHECK_MESSAGE(eventually([&] { return hlr.aud3g(a.imsi) == std::optional<std::string>("absent"); }),
                  "the deprovisioned subscriber is still in osmo-hlr");
    CHECK(hlr.aud3g(field_imsi) == expected_aud3g(field_dev));

    // Status and metrics: nothing left in the outbox.
    CHECK(outbox_drained(lab));
    auto metrics = lab.anon("GET", "/metrics");
    CHECK(metrics.raw.find("credprov_core_outbox_pending 0") != std::string::npos);
    CHECK(metrics.raw.find("credprov_core_deliveries_total{outcome=\"delivered\"} 3") != std::string::npos);
    auto r = backend_cli(lab, {"core", "reconcile", "--json"});
    CHECK_MESSAGE(r.exit_code == 0, r.out);
    // Nothing the backend prints carries a key.
    CHECK(r.out.find(to_hex(ByteView(field_dev.host.k.data(), 16))) == std::string::npos);
    CHECK(read_file(lab.log).find(to_hex(ByteView(field_dev.host.k.data(), 16))) == std::string::npos);
}

BACKEND_TEST_WITH(core_hlr_killed, "core: osmo-hlr killed during a stream of activations, both converge after its restart",
                  core_options()) {
    OsmoHlr hlr(core_address(lab));
    Technician tech(lab);
    std::vector<Provisioned> devices;
    for (int i = 0; i < 8; ++i) {
        if (i == 3) hlr.kill();  // registrations go on: the outbox holds the changes
        devices.push_back(provision(lab, tech));
    }
    auto status = json::parse(backend_cli(lab, {"core", "status"}).out);
    CHECK(status["pending"].get<int>() >= 1);
    hlr.start();
    for (const auto& p : devices) {
        CHECK_MESSAGE(eventually([&] { return hlr.aud3g(p.imsi) == expected_aud3g(*p.device); }), p.imsi);
    }

    REQUIRE(outbox_drained(lab));
    // Its database lost as well: what was delivered is gone; reconciliation
    // sees it and --repair brings it back.
    hlr.kill();
    hlr.wipe();
    hlr.start();
    auto drift = backend_cli(lab, {"core", "reconcile", "--json"});
    CHECK(drift.exit_code == 7);
    CHECK(json::parse(drift.out)["missing"].size() == devices.size());
    auto fixed = backend_cli(lab, {"core", "reconcile", "--repair", "--json"});
    CHECK_MESSAGE(fixed.exit_code == 0, fixed.out);
    for (const auto& p : devices) CHECK(hlr.aud3g(p.imsi) == expected_aud3g(*p.device));
}

BACKEND_TEST_WITH(core_backend_killed, "core: the backend killed with changes queued delivers them after its restart",
                  core_options()) {
    OsmoHlr hlr(core_address(lab));
    hlr.kill();
    Technician tech(lab);
    std::vector<Provisioned> devices;
    for (int i = 0; i < 3; ++i) devices.push_back(provision(lab, tech));
    lab.kill_server();
    hlr.start();
    // Nobody delivers while the backend is down.
    CHECK(hlr.aud3g(devices[0].imsi) == std::optional<std::string>("absent"));
    lab.start(true);
    for (const auto& p : devices) {
        CHECK_MESSAGE(eventually([&] { return hlr.aud3g(p.imsi) == expected_aud3g(*p.device); }), p.imsi);
    }
}

BACKEND_TEST_WITH(core_reconcile, "core: reconciliation reports missing, extra and different subscribers, --repair fixes them",
                  core_options()) {
    OsmoHlr hlr(core_address(lab));
    Technician tech(lab);
    auto a = provision(lab, tech);
    auto b = provision(lab, tech);
    REQUIRE(eventually([&] { return hlr.aud3g(a.imsi) == expected_aud3g(*a.device) && hlr.aud3g(b.imsi) == expected_aud3g(*b.device); }));
    REQUIRE(outbox_drained(lab));
    CHECK(backend_cli(lab, {"core", "reconcile"}).exit_code == 0);

    // Drift injected behind the backend's back.
    REQUIRE(hlr.set("subscriber.delete", a.imsi)->starts_with("SET_REPLY"));
    REQUIRE(hlr.set("subscriber.by-imsi-" + b.imsi + ".aud3g",
                    "milenage,000102030405060708090a0b0c0d0e0f,OPC,0f0e0d0c0b0a09080706050403020100")->starts_with("SET_REPLY"));
    const std::string extra = "001010999999999";     // inside the lab's range, unknown to the backend
    const std::string foreign = "262019999999999";   // another PLMN: not credprov's, left alone
    REQUIRE(hlr.set("subscriber.create", extra)->starts_with("SET_REPLY"));
    REQUIRE(hlr.set("subscriber.create", foreign)->starts_with("SET_REPLY"));

    auto report = backend_cli(lab, {"core", "reconcile", "--json"});
    CHECK(report.exit_code == 7);
    const json j = json::parse(report.out);
    CHECK(j["missing"] == json::array({a.imsi}));
    CHECK(j["extra"] == json::array({extra}));
    REQUIRE(j["different"].size() == 1);
    CHECK(j["different"][0]["imsi"] == b.imsi);
    CHECK(j["foreign"] == 1);
    CHECK(report.out.find("000102030405060708090a0b0c0d0e0f") == std::string::npos);  // keys are compared, never shown
    auto text = backend_cli(lab, {"core", "reconcile"});
    CHECK(text.exit_code == 7);
    CHECK(text.out.find("missing   " + a.imsi) != std::string::npos);

    auto repaired = backend_cli(lab, {"core", "reconcile", "--repair"});
    CHECK_MESSAGE(repaired.exit_code == 0, repaired.out);
    CHECK(hlr.aud3g(a.imsi) == expected_aud3g(*a.device));
    CHECK(hlr.aud3g(b.imsi) == expected_aud3g(*b.device));
    CHECK(hlr.aud3g(extra) == std::optional<std::string>("absent"));
    CHECK(hlr.aud3g(foreign) != std::optional<std::string>("absent"));
    CHECK(backend_cli(lab, {"core", "reconcile"}).exit_code == 0);
    // The repair is in the audit chain, which still verifies.
    CHECK(backend_cli(lab, {"audit", "verify"}).exit_code == 0);
}

BACKEND_TEST(core_absent, "core: without [core] no outbox rows are written and reconcile says there is nothing to do") {
    Technician tech(lab);
    auto a = provision(lab, tech);
    auto rows = lab.db()->query("SELECT COUNT(*) FROM core_outbox");
    REQUIRE(rows);
    CHECK(rows->front().i64(0) == 0);
    auto r = backend_cli(lab, {"core", "reconcile"});
    CHECK(r.exit_code == 2);
}

BACKEND_TEST_WITH(core_two_nodes, "core: two backend nodes share the outbox, each IMSI's activation and deprovisioning arrive in order",
                  core_options()) {
    OsmoHlr hlr(core_address(lab));
    // A second node on the same database and configuration.
    const auto second_log = lab.dir / "second.log";
    AgentProcess second(CREDPROV_BACKEND, {"-c", lab.config.string(), "serve", "--port", "0"}, second_log);
    REQUIRE(eventually([&] { return read_file(second_log).find("\"msg\":\"listening\"") != std::string::npos; },
                       std::chrono::seconds(20)));
    Technician tech(lab);
    std::vector<Provisioned> devices;
    // osmo-hlr down while the changes queue up, so both nodes find work at once when it is back.
    hlr.kill();
    for (int i = 0; i < 6; ++i) {
        devices.push_back(provision(lab, tech));
        if (i % 2 == 1) {
            auto d = lab.admin("POST", "/v1/devices/" + devices.back().device->identity.id.to_string() + "/deprovision",
                               json{{"reason", "two nodes"}});
            REQUIRE(d.status == 200);
        }
    }
    hlr.start();
    CHECK(outbox_drained(lab));
    for (std::size_t i = 0; i < devices.size(); ++i) {
        const auto want = i % 2 == 1 ? std::string("absent") : expected_aud3g(*devices[i].device);
        CHECK_MESSAGE(hlr.aud3g(devices[i].imsi) == want, devices[i].imsi);
    }
    CHECK(backend_cli(lab, {"core", "reconcile"}).exit_code == 0);
    // Both nodes took part (each logs what it delivered) — not required for
    // correctness, so only reported.
    if (read_file(second_log).find("core outbox delivered") == std::string::npos) {
        MESSAGE("the second node delivered nothing this time");
    }
}

BACKEND_TEST_WITH(core_auto_reconcile, "core: with reconcile_interval_s, serve restores a wiped osmo-hlr by itself",
                  core_options("reconcile_interval_s = 1\n")) {
    OsmoHlr hlr(core_address(lab));
    Technician tech(lab);
    auto a = provision(lab, tech);
    auto b = provision(lab, tech);
    REQUIRE(outbox_drained(lab));
    hlr.kill();
    hlr.wipe();
    hlr.start();
    REQUIRE(hlr.set("subscriber.create", "001010888888888")->starts_with("SET_REPLY"));  // an extra one in range
    CHECK(eventually([&] {
        return hlr.aud3g(a.imsi) == expected_aud3g(*a.device) && hlr.aud3g(b.imsi) == expected_aud3g(*b.device) &&
               hlr.aud3g("001010888888888") == std::optional<std::string>("absent");
    }));
    // The log line follows the repair it reports: wait for it too.
    CHECK(eventually([&] { return read_file(lab.log).find("core drift repaired") != std::string::npos; }));
}

BACKEND_TEST_WITH(core_lease_takeover,
                  "core: a change leased by a node that died mid-delivery waits for the lease to run out, then another node delivers it",
                  core_options()) {
    OsmoHlr hlr(core_address(lab));
    hlr.kill();
    Technician tech(lab);
    auto p = provision(lab, tech);
    lab.kill_server();
    // As a node leaves it when it dies between claiming the change and
    // marking it delivered: leased to that node for a few seconds more.
    const auto lease_until = static_cast<std::int64_t>(std::time(nullptr)) + 4;
    auto db = lab.db();
    auto leased = db->exec("UPDATE core_outbox SET lease_owner = 'crashed-node', lease_until = ?, next_attempt_at = 0 "
                           "WHERE done_at IS NULL",
                           {lease_until});
    REQUIRE(leased.ok());
    REQUIRE(*leased == 1);
    hlr.start();
    lab.start(true);
    // While the lease holds, the running node leaves the change alone...
    while (std::time(nullptr) < lease_until - 1) {
        CHECK(hlr.aud3g(p.imsi) == std::optional<std::string>("absent"));
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    // ...and once it has run out, takes it over and delivers it.
    CHECK_MESSAGE(eventually([&] { return hlr.aud3g(p.imsi) == expected_aud3g(*p.device); }), p.imsi);
    CHECK(std::time(nullptr) >= lease_until);
    REQUIRE(outbox_drained(lab));
    auto row = db->query("SELECT lease_owner, outcome FROM core_outbox WHERE imsi = ?", {p.imsi});
    REQUIRE(row.ok());
    REQUIRE(row->size() == 1);
    CHECK(row->front().is_null(0));
    CHECK(row->front().str(1) == "delivered");
}
