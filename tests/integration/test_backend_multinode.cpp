// Several credprov-backend nodes on one PostgreSQL database (issue 10): two
// or three real `serve` processes with the same operator keys and
// configuration, driven at once by many threads over real HTTP, each step of
// a flow free to go to any node (as behind a load balancer). Afterwards the
// database itself and the API must agree: no IMSI handed out twice, no device
// with two live subscribers, every acknowledged activation still there, every
// subscriber's state the one its audit history says, the audit chain intact;
// and AKA sequence numbers stay distinct and increasing (SEQ/IND, TS 33.102
// Annex C) while vector requests and resynchronisations race on both nodes.
//
// PostgreSQL only (SQLite is one process's database). Threads start together
// on a latch; waiting for "enough has happened" polls state, never sleeps for
// a fixed time, and every wait has a generous deadline for a loaded machine.
#include <atomic>
#include <chrono>
#include <latch>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "backend_test.hpp"
#include "credprov/aka/sqn_scheme.hpp"
#include "credprov/aka/usim.hpp"

using namespace credprov;
using namespace credprov::testing;

namespace {

using Clock = std::chrono::steady_clock;

// Runs fn(0) .. fn(n - 1) on n threads that start together. An exception in
// a thread fails the test in the test's own thread, with its message.
template <class F>
void in_parallel(std::size_t n, F&& fn) {
    std::latch go(static_cast<std::ptrdiff_t>(n));
    std::mutex m;
    std::vector<std::string> errors;
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < n; ++i) {
        threads.emplace_back([&, i] {
            go.arrive_and_wait();
            try {
                fn(i);
            } catch (const std::exception& e) {
                std::lock_guard lock(m);
                errors.push_back("thread " + std::to_string(i) + ": " + e.what());
            }
        });
    }
    for (auto& t : threads) t.join();
    for (const auto& e : errors) FAIL_CHECK(e);
    REQUIRE(errors.empty());
}

// Polls `done` every millisecond until it holds (without spinning a core
// the nodes need); false after the deadline (a loaded machine gets a minute).
template <class P>
bool eventually(P&& done, std::chrono::seconds deadline = std::chrono::seconds(60)) {
    const auto end = Clock::now() + deadline;
    while (!done()) {
        if (Clock::now() > end) return false;
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return true;
}

SignedObject bundle_of(const Resp& minted) {
    return SignedObject::decode(*backend::base64_decode(minted.body["bundle"].get<std::string>())).value();
}

// A sealed registration whose backend calls go to the nodes named: token on
// node `token`, bundle on `bundle`, receipt on `receipt`.
struct Route {
    std::size_t token, bundle, receipt;
};
struct Registration {
    std::string device_id, imsi, object_id;
    Resp minted, receipt;
    std::optional<Receipt> device_receipt;
    std::string problem;  // why it stopped before the receipt
};
Registration register_via(Technician& tech, SimDevice& d, Route r) {
    Registration out;
    out.device_id = d.identity.id.to_string();
    auto tok = tech.token_at(r.token, d.identity.id);
    if (!tok) {
        out.problem = "no token from node " + std::to_string(r.token);
        return out;
    }
    out.minted = tech.mint_at(r.bundle, d);
    if (out.minted.status != 201 && out.minted.status != 200) {
        out.problem = "bundle from node " + std::to_string(r.bundle) + ": " + std::to_string(out.minted.status) + " " +
                      out.minted.raw;
        return out;
    }
    out.imsi = out.minted.body["imsi"].get<std::string>();
    out.object_id = out.minted.body["object_id"].get<std::string>();
    auto resp = tech.deliver(d, *tok, Request{Operation::deliver_sealed, bundle_of(out.minted)});
    if (!resp || !resp->receipt) {
        out.problem = "the device did not commit the bundle";
        return out;
    }
    out.device_receipt = resp->receipt;
    out.receipt = tech.submit_at(r.receipt, out.object_id, *resp->receipt);
    return out;
}

std::vector<backend::Row> rows_of(BackendLab& lab, const std::string& sql) {
    auto c = lab.db();
    auto rows = c->query(sql);
    if (!rows) throw std::runtime_error(rows.error().message);
    return *rows;
}

// What the database and the API must say after any mix of concurrent
// registrations, receipts and deprovisionings (sealed mode, no field pools):
//  - no device has two live (pending or active) subscribers;
//  - the IMSI allocator handed out each IMSI once: the subscribers' IMSIs are
//    exactly the first next_msin of the range;
//  - every subscriber's audit history is mint, then at most an activation,
//    then at most a deprovisioning (or an expiry of a pending one), and its
//    state and timestamps are what that history says; no history without its
//    subscriber;
//  - `expected` (IMSI -> the states the API's answers allow) holds;
//  - the audit chain verifies through every node's API and the CLI.
void check_consistent(BackendLab& lab, const std::map<std::string, std::set<std::string>>& expected) {
    auto twice = rows_of(lab, "SELECT device_id, COUNT(*) FROM subscribers WHERE state IN ('pending', 'active') "
                              "GROUP BY device_id HAVING COUNT(*) > 1");
    for (const auto& r : twice) FAIL_CHECK("device " << r.str(0) << " has " << r.i64(1) << " live subscribers");

    auto subs = rows_of(lab, "SELECT imsi, state, activated_at, deprovisioned_at, device_id FROM subscribers ORDER BY imsi");
    auto alloc = rows_of(lab, "SELECT next_msin FROM imsi_allocator");
    REQUIRE(alloc.size() == 1);
    CHECK(alloc.front().i64(0) == static_cast<std::int64_t>(subs.size()));
    for (std::size_t i = 0; i < subs.size(); ++i) {
        const std::string msin = std::to_string(i + 1);
        CHECK(subs[i].str(0) == "00101" + std::string(10 - msin.size(), '0') + msin);
    }

    std::map<std::string, std::vector<std::string>> history;
    for (const auto& r : rows_of(lab, "SELECT action, target FROM audit_log WHERE outcome = 'ok' AND action IN "
                                      "('subscriber.mint', 'subscriber.activate', 'subscriber.deprovision', "
                                      "'subscriber.expire') ORDER BY seq")) {
        history[r.str(1).substr(5)].push_back(r.str(0).substr(11));  // "imsi:..." -> "mint", ...
    }
    const std::set<std::vector<std::string>> allowed{{"mint"},
                                                     {"mint", "activate"},
                                                     {"mint", "deprovision"},
                                                     {"mint", "activate", "deprovision"},
                                                     {"mint", "expire"}};
    std::set<std::string> present;
    for (const auto& s : subs) {
        const std::string imsi = s.str(0);
        present.insert(imsi);
        const auto& h = history[imsi];
        INFO("subscriber " << imsi << " (" << s.str(1) << ")");
        CHECK(allowed.contains(h));
        if (h.empty()) continue;
        const std::string& last = h.back();
        const std::string derived = last == "mint"       ? "pending"
                                    : last == "activate" ? "active"
                                    : last == "expire"   ? "expired"
                                                         : "deprovisioned";
        CHECK(s.str(1) == derived);
        CHECK(s.is_null(2) == (std::find(h.begin(), h.end(), "activate") == h.end()));
        CHECK(s.is_null(3) == (std::find(h.begin(), h.end(), "deprovision") == h.end()));
    }
    for (const auto& [imsi, h] : history) CHECK_MESSAGE(present.contains(imsi), "audit history for a lost subscriber " << imsi);

    std::map<std::string, std::string> state_of;
    for (const auto& s : subs) state_of[s.str(0)] = s.str(1);
    for (const auto& [imsi, states] : expected) {
        INFO("subscriber " << imsi);
        REQUIRE(state_of.contains(imsi));
        CHECK(states.contains(state_of[imsi]));
    }

    const auto entries = rows_of(lab, "SELECT COUNT(*) FROM audit_log").front().i64(0);
    for (std::size_t n = 0; n < lab.node_count(); ++n) {
        auto v = lab.admin_at(n, "GET", "/v1/audit/verify");
        if (v.status == 0) continue;  // a node killed on purpose
        REQUIRE(v.status == 200);
        CHECK(v.body["ok"] == true);
        CHECK(v.body["entries"].get<std::int64_t>() == entries);
    }
    auto cli = run_command({CREDPROV_BACKEND, "-c", lab.config.string(), "audit", "verify"});
    CHECK(cli.exit_code == 0);
}

bool registered(const Registration& r) {
    return (r.minted.status == 201 || r.minted.status == 200) && r.receipt.status == 200 && r.receipt.body["state"] == "active";
}

}  // namespace

namespace {
// A node's credprov_db_transaction_retries gauge from /metrics.
double retries_at(BackendLab& lab, std::size_t node) {
    const auto m = lab.request_at(node, "GET", "/metrics", std::nullopt, {});
    const std::string name = "\ncredprov_db_transaction_retries ";
    const auto at = m.raw.find(name);
    if (at == std::string::npos) throw std::runtime_error("no credprov_db_transaction_retries in /metrics");
    return std::stod(m.raw.substr(at + name.size()));
}
}  // namespace

TEST_CASE("backend/multinode: concurrent registrations of different devices, each step on any of three nodes") {
    if (!postgres_available_or_report()) return;
    BackendLab lab(Storage::postgres);
    lab.add_node();
    lab.add_node();
    REQUIRE(lab.node_count() == 3);
    Technician tech(lab);

    constexpr std::size_t kThreads = 10, kPerThread = 3;
    std::vector<std::unique_ptr<SimDevice>> devices;
    for (std::size_t i = 0; i < kThreads * kPerThread; ++i) devices.push_back(std::make_unique<SimDevice>(lab.trust()));
    std::vector<Registration> regs(devices.size());
    std::vector<Resp> again(devices.size()), deprovisioned(devices.size()), notices(devices.size());
    std::vector<int> imported(devices.size(), 0);

    const auto t0 = Clock::now();
    in_parallel(kThreads, [&](std::size_t t) {
        for (std::size_t k = 0; k < kPerThread; ++k) {
            const std::size_t i = t * kPerThread + k;
            SimDevice& d = *devices[i];
            // Inventory on one node, token on the next, bundle on the third,
            // receipt back on the first, and the receipt again elsewhere.
            imported[i] = lab.admin_at((i + 2) % 3, "POST", "/v1/inventory",
                                       json{{"devices", json::array({BackendLab::device_json(d.identity)})}})
                              .status;
            regs[i] = register_via(tech, d, Route{i % 3, (i + 1) % 3, (i + 2) % 3});
            if (regs[i].device_receipt) again[i] = tech.submit_at(i % 3, regs[i].object_id, *regs[i].device_receipt);
            // Every third device is deprovisioned through another node, and
            // its notice read from a third.
            if (i % 3 == 0 && registered(regs[i])) {
                deprovisioned[i] = tech.post_at((i + 1) % 3, "/v1/devices/" + regs[i].device_id + "/deprovision",
                                                json{{"reason", "returned"}});
                notices[i] = lab.request_at((i + 2) % 3, "GET", "/v1/devices/" + regs[i].device_id + "/notice", std::nullopt, {});
            }
        }
    });
    MESSAGE(devices.size(), " registrations through 3 nodes in ",
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count(), " ms");

    std::map<std::string, std::set<std::string>> expected;
    std::set<std::string> imsis;
    for (std::size_t i = 0; i < devices.size(); ++i) {
        INFO("device " << i << ": " << regs[i].problem);
        CHECK(imported[i] == 200);
        REQUIRE(registered(regs[i]));
        CHECK(regs[i].minted.status == 201);
        CHECK(imsis.insert(regs[i].imsi).second);
        // The duplicate receipt on another node answers the same.
        CHECK(again[i].status == 200);
        CHECK(again[i].body == regs[i].receipt.body);
        if (i % 3 == 0) {
            REQUIRE(deprovisioned[i].status == 200);
            CHECK(deprovisioned[i].body["deprovisioned"] == json::array({regs[i].imsi}));
            REQUIRE(notices[i].status == 200);
            CHECK(notices[i].body["notice"] == deprovisioned[i].body["notice"]);
            expected[regs[i].imsi] = {"deprovisioned"};
        } else {
            expected[regs[i].imsi] = {"active"};
        }
    }
    check_consistent(lab, expected);
    // Every node sees the same subscribers.
    const auto listed = lab.admin_at(0, "GET", "/v1/subscribers?limit=500");
    for (std::size_t n = 1; n < lab.node_count(); ++n) CHECK(lab.admin_at(n, "GET", "/v1/subscribers?limit=500").body == listed.body);
}

TEST_CASE("backend/multinode: one device raced on both nodes: bundles, receipts and deprovisioning") {
    if (!postgres_available_or_report()) return;
    BackendLab lab(Storage::postgres);
    lab.add_node();
    Technician tech(lab);
    auto maker = crypto::generate_signing_key();
    REQUIRE(lab.admin("POST", "/v1/manufacturers", json{{"name", "Acme Modems"}, {"public_key", to_hex(maker.public_key)}}).status ==
            201);
    constexpr std::size_t kRacers = 6;  // half on each node
    std::map<std::string, std::set<std::string>> expected;

    // Concurrent bundle requests for one device: one pending subscriber, and
    // every answer is that same bundle, byte for byte. With `with_tokens`
    // (a device in the inventory) four of the racers ask for it with a
    // token instead (POST /v1/tokens "bundle": true), which takes the device's
    // row and the audit chain's head in the same order: no deadlock, no retry.
    auto race_bundles = [&](SimDevice& d, const json& request, bool with_tokens = false) {
        const double retries_before = retries_at(lab, 0) + retries_at(lab, 1);
        const json token_ask{{"device_id", d.identity.id.to_string()}, {"operations", {"deliver-sealed"}}, {"bundle", true}};
        std::vector<Resp> got(kRacers);
        in_parallel(kRacers, [&](std::size_t t) {
            const bool via_token = with_tokens && (t / 2) % 2 == 0;
            got[t] = tech.post_at(t % 2, via_token ? "/v1/tokens" : "/v1/bundles", via_token ? token_ask : request);
            if (via_token && got[t].status == 201) {
                got[t].body = got[t].body["bundle"];
                got[t].body.erase("box_key");
                got[t].status = got[t].body.is_object() ? 200 : 500;
            }
        });
        int created = 0;
        for (const auto& r : got) {
            INFO("bundle answer " << r.status << " " << r.raw);
            REQUIRE((r.status == 201 || r.status == 200));
            created += r.status == 201;
            CHECK(r.body == got.front().body);
        }
        CHECK(created <= 1);
        if (!with_tokens) CHECK(created == 1);
        auto live = rows_of(lab, "SELECT imsi FROM subscribers WHERE state = 'pending' AND device_id = '" +
                                     d.identity.id.to_string() + "'");
        CHECK(live.size() == 1);
        // (An attested device's row is inserted by the first racer: the others
        // meet its unique key and run again, by design.)
        if (with_tokens) CHECK(retries_at(lab, 0) + retries_at(lab, 1) == retries_before);
        return got.front();
    };
    // Concurrent deprovisionings of one device: all answer the same notice;
    // exactly one of them did the deprovisioning.
    auto race_deprovision = [&](const std::string& device_id, const std::string& imsi) {
        std::vector<Resp> got(4);
        in_parallel(got.size(), [&](std::size_t t) {
            const std::string path = "/v1/devices/" + device_id + "/deprovision";
            got[t] = t < 2 ? tech.post_at(t % 2, path, json{{"reason", "stolen"}})
                           : lab.admin_at(t % 2, "POST", path, json{{"reason", "stolen"}});
        });
        int did = 0;
        for (const auto& r : got) {
            INFO("deprovision answer " << r.status << " " << r.raw);
            REQUIRE(r.status == 200);
            CHECK(r.body["notice"] == got.front().body["notice"]);
            CHECK(r.body["counter"] == got.front().body["counter"]);
            if (!r.body["deprovisioned"].empty()) {
                ++did;
                CHECK(r.body["deprovisioned"] == json::array({imsi}));
            }
        }
        CHECK(did == 1);
        return got.front();
    };

    for (int round = 0; round < 4; ++round) {
        CAPTURE(round);
        SimDevice d(lab.trust());
        json request{{"device", BackendLab::device_json(d.identity)}};
        if (round % 2 == 0) {
            lab.import_device(d.identity);
        } else {
            // Vouched for by an attestation: the device row itself is created
            // by whichever request comes first.
            DeviceAttestation a{d.identity.identity.public_key, d.identity.box.public_key, "Acme Modems"};
            request["device"]["attestation"] = backend::base64_encode(attest_device(maker, a).encode());
        }
        const Resp minted = race_bundles(d, request, round % 2 == 0);
        const std::string imsi = minted.body["imsi"].get<std::string>();
        const std::string oid = minted.body["object_id"].get<std::string>();
        auto tok = tech.token_at(round % 2, d.identity.id);
        REQUIRE(tok);
        auto delivered = tech.deliver(d, *tok, Request{Operation::deliver_sealed, bundle_of(minted)});
        REQUIRE(delivered);
        REQUIRE(delivered->receipt);

        // Duplicate receipts on both nodes: one activation, the same answer.
        std::vector<Resp> receipts(kRacers);
        in_parallel(kRacers, [&](std::size_t t) { receipts[t] = tech.submit_at(t % 2, oid, *delivered->receipt); });
        for (const auto& r : receipts) {
            INFO("receipt answer " << r.status << " " << r.raw);
            REQUIRE(r.status == 200);
            CHECK(r.body["state"] == "active");
            CHECK(r.body == receipts.front().body);
        }
        CHECK(rows_of(lab, "SELECT seq FROM audit_log WHERE action = 'subscriber.activate' AND target = 'imsi:" + imsi + "'")
                  .size() == 1);

        // Deprovisioning on both nodes at once: the same notice.
        const Resp first = race_deprovision(d.identity.id.to_string(), imsi);
        CHECK(first.body["counter"] == 1);  // the device's first owner command
        expected[imsi] = {"deprovisioned"};

        // The device asks again (a new bundle after deprovisioning) on both
        // nodes at once: one new pending subscriber, at an epoch above the
        // notice's counter.
        const Resp renewed = race_bundles(d, request, round % 2 == 0);
        CHECK(renewed.body["imsi"] != imsi);
        CHECK(bundle_of(renewed).body != bundle_of(minted).body);
        expected[renewed.body["imsi"].get<std::string>()] = {"pending"};
    }

    // A deprovisioning racing the device's receipt, on both nodes: whichever
    // wins, the device ends deprovisioned, and the receipt's answers say what
    // happened (activated and then deprovisioned, or refused as deprovisioned).
    for (int round = 0; round < 4; ++round) {
        CAPTURE(round);
        SimDevice d(lab.trust());
        lab.import_device(d.identity);
        auto tok = tech.token_at(1, d.identity.id);
        REQUIRE(tok);
        const Resp minted = tech.mint_at(0, d);
        REQUIRE(minted.status == 201);
        const std::string imsi = minted.body["imsi"].get<std::string>();
        auto delivered = tech.deliver(d, *tok, Request{Operation::deliver_sealed, bundle_of(minted)});
        REQUIRE(delivered);
        REQUIRE(delivered->receipt);
        const double retries_before = retries_at(lab, 0) + retries_at(lab, 1);
        std::vector<Resp> got(4);
        in_parallel(got.size(), [&](std::size_t t) {
            got[t] = t < 2 ? tech.submit_at(t % 2, minted.body["object_id"].get<std::string>(), *delivered->receipt)
                           : tech.post_at(t % 2, "/v1/devices/" + d.identity.id.to_string() + "/deprovision",
                                          json{{"reason", "race"}});
        });
        const bool activated =
            !rows_of(lab, "SELECT seq FROM audit_log WHERE action = 'subscriber.activate' AND target = 'imsi:" + imsi + "'").empty();
        for (std::size_t t = 0; t < 2; ++t) {
            INFO("receipt answer " << got[t].status << " " << got[t].raw);
            if (got[t].status == 200) {
                CHECK(activated);
                CHECK((got[t].body["state"] == "active" || got[t].body["state"] == "deprovisioned"));
            } else {
                CHECK(got[t].status == 409);
                CHECK(got[t].body["type"] == "urn:credprov:problem:subscriber-deprovisioned");
            }
        }
        if (!activated) CHECK((got[0].status == 409 && got[1].status == 409));
        for (std::size_t t = 2; t < 4; ++t) {
            INFO("deprovision answer " << got[t].status << " " << got[t].raw);
            REQUIRE(got[t].status == 200);
            CHECK(got[t].body["notice"] == got[2].body["notice"]);
        }
        CHECK(lab.admin_at(1, "GET", "/v1/subscribers/" + imsi).body["state"] == "deprovisioned");
        // Both take the device's row before its subscribers': neither waits
        // for the other in a cycle (a deadlock costs PostgreSQL a second).
        CHECK(retries_at(lab, 0) + retries_at(lab, 1) == retries_before);
        expected[imsi] = {"deprovisioned"};
    }
    check_consistent(lab, expected);
}

TEST_CASE("backend/multinode: AKA vectors for one subscriber on both nodes, with resynchronisations racing them") {
    if (!postgres_available_or_report()) return;
    BackendLab lab(Storage::postgres);
    lab.add_node();
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    auto reg = tech.register_sealed(dev);
    REQUIRE(reg.receipt.status == 200);
    const std::string core = lab.token_for("core-network");
    const std::string path = "/v1/subscribers/" + reg.imsi;
    const auto keys = usim_keys(dev);

    struct Vector {
        std::uint64_t sqn;
        std::string rand, autn;
    };
    struct Answer {
        int status{0};
        std::string raw;
        unsigned ind{0};
        Clock::time_point asked;
        std::vector<Vector> vectors;
    };
    constexpr std::size_t kThreads = 6;  // one serving node (IND) each, half on each backend node
    constexpr std::size_t kAttach = kThreads, kResync = kThreads + 1;  // the device's attach checks; the resyncs
    constexpr std::uint64_t kAheadSeq = 5000;
    std::vector<std::vector<Answer>> answers(kThreads + 1);  // the attach checks' SQNs last
    std::atomic<int> issued{0};
    std::atomic<bool> resyncs_done{false};
    struct Resync {
        int status{0};
        std::string raw;
        std::uint64_t sqn{0};
        Clock::time_point answered;
    };
    std::vector<Resync> resyncs;
    // The USIM of an old AUTS: it accepted only SEQ 2 (for IND 0), while the
    // network has issued many more since; and one that ran far ahead (its
    // vectors were used with another HSS, say).
    const auto stale_usim = aka::UsimSqnState{}.accepted(aka::make_sqn(2, 0));
    const auto ahead_usim = aka::UsimSqnState{}.accepted(aka::make_sqn(kAheadSeq, 7));
    auto resync = [&](std::size_t node, const aka::UsimSqnState& usim) {
        aka::Rand rand;
        crypto::random_bytes(rand.bytes);
        const aka::Auts auts = aka::make_auts(keys, usim, rand);
        auto r = lab.admin_at(node, "POST", path + "/resync", json{{"rand", to_hex(rand.bytes)}, {"auts", to_hex(auts.bytes)}}, core);
        Resync out{r.status, r.raw, 0, Clock::now()};
        if (r.status == 200) out.sqn = r.body["sqn"].get<std::uint64_t>();
        resyncs.push_back(out);
    };

    const auto t0 = Clock::now();
    in_parallel(kThreads + 2, [&](std::size_t t) {
        if (t == kAttach) {
            // The device's attach check at the same time: challenge from one
            // node, response to the other; its SQN comes from the same counter.
            for (int j = 0; j < 4 || !resyncs_done; ++j) {
                Answer a;
                a.asked = Clock::now();
                auto ch = lab.request_at(j % 2, "POST", "/v1/attach/challenge", json{{"imsi", reg.imsi}}, {});
                a.status = ch.status;
                a.raw = ch.raw;
                if (ch.status != 200 || ch.body["verdict"] != "challenge") {
                    answers[t].push_back(std::move(a));
                    break;
                }
                const auto rand = hex_array<16>(ch.body["rand"]);
                auto r = aka::usim_authenticate(keys, aka::UsimSqnState{}, aka::Rand{rand}, aka::Autn{hex_array<16>(ch.body["autn"])});
                const auto* ok = r.ok() ? std::get_if<aka::AkaSuccess>(&*r) : nullptr;
                if (ok == nullptr) throw std::runtime_error("the USIM refused an attach challenge");
                a.vectors.push_back({ok->sqn.value(), to_hex(rand), ch.body["autn"].get<std::string>()});
                auto resp = lab.request_at((j + 1) % 2, "POST", "/v1/attach/response",
                                           json{{"challenge_id", ch.body["challenge_id"]}, {"res", to_hex(ByteView(ok->res.data(), 8))}}, {});
                if (resp.status != 200 || resp.body["verdict"] != "attached") {
                    a.status = -1;  // not attached: reported with the answer
                    a.raw = "attach response " + std::to_string(resp.status) + " " + resp.raw;
                }
                issued += 1;
                const bool failed = a.status != 200;
                answers[t].push_back(std::move(a));
                if (failed) break;
            }
            return;
        }
        if (t == kResync) {
            // Resynchronisations while vectors are being issued on both nodes:
            // a stale AUTS, one from far ahead, a stale one again.
            const bool started = eventually([&] { return issued >= 12; });
            if (started) resync(1, stale_usim);
            const int before_ahead = issued;
            if (started && eventually([&] { return issued >= before_ahead + 6; })) resync(0, ahead_usim);
            const int after_ahead = issued;
            if (started && eventually([&] { return issued >= after_ahead + 6; })) resync(1, stale_usim);
            resyncs_done = true;
            return;
        }
        const auto ind = static_cast<unsigned>(t);
        const auto end = Clock::now() + std::chrono::seconds(60);
        for (int j = 0; (j < 6 || !resyncs_done) && Clock::now() < end; ++j) {
            const int count = 1 + static_cast<int>((j + t) % 5);
            Answer a;
            a.ind = ind;
            a.asked = Clock::now();
            auto r = lab.admin_at(t % 2, "POST", path + "/vectors", json{{"count", count}, {"ind", ind}}, core);
            a.status = r.status;
            a.raw = r.raw;
            if (r.status == 200) {
                for (const auto& v : r.body["vectors"]) {
                    a.vectors.push_back({v["sqn"].get<std::uint64_t>(), v["rand"].get<std::string>(), v["autn"].get<std::string>()});
                }
                issued += static_cast<int>(a.vectors.size());
            }
            answers[t].push_back(std::move(a));
            if (r.status != 200) break;
        }
    });
    MESSAGE(issued.load(), " vectors from 2 nodes in ",
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count(), " ms");

    REQUIRE(resyncs.size() == 3);
    for (const auto& r : resyncs) {
        INFO("resync answer " << r.status << " " << r.raw);
        REQUIRE(r.status == 200);
    }
    // A stale AUTS does not take the network back (TS 33.102 6.3.5: SQN_HE
    // is reset only if the USIM would not accept the next SQN_HE): SQNs the
    // network already issued are never issued again.
    CHECK(aka::seq_of(aka::Sqn(resyncs[0].sqn)) > 2);
    CHECK(resyncs[1].sqn == aka::make_sqn(kAheadSeq, 7).value());
    CHECK(aka::seq_of(aka::Sqn(resyncs[2].sqn)) >= kAheadSeq);

    std::set<std::uint64_t> seqs;
    std::uint64_t highest = 0;
    for (const auto& per_thread : answers) {
        for (const auto& a : per_thread) {
            INFO("vector answer " << a.status << " " << a.raw);
            REQUIRE(a.status == 200);
            std::uint64_t previous = 0;
            for (const auto& v : a.vectors) {
                const aka::Sqn sqn(v.sqn);
                CHECK(aka::ind_of(sqn) == a.ind);  // the attach check uses IND 0
                CHECK(aka::seq_of(sqn) > previous);  // increasing within an answer
                previous = aka::seq_of(sqn);
                CHECK_MESSAGE(seqs.insert(aka::seq_of(sqn)).second, "SEQ " << aka::seq_of(sqn) << " issued twice");
                highest = std::max(highest, aka::seq_of(sqn));
                // Asked after the jump ahead was answered: above the USIM's SEQ.
                if (a.asked > resyncs[1].answered) CHECK(aka::seq_of(sqn) > kAheadSeq);
                // The AUTN really carries that SQN: a USIM accepts it.
                auto r = aka::usim_authenticate(keys, aka::UsimSqnState{}, aka::Rand{hex_array<16>(json(v.rand))},
                                                aka::Autn{hex_array<16>(json(v.autn))});
                REQUIRE(r.ok());
                const auto* ok = std::get_if<aka::AkaSuccess>(&*r);
                REQUIRE(ok != nullptr);
                CHECK(ok->sqn.value() == v.sqn);
            }
        }
    }
    // No SEQ lost or skipped: 1..k before the jump, then kAheadSeq+1 onwards.
    std::uint64_t want = 1;
    for (const std::uint64_t s : seqs) {
        if (want <= kAheadSeq && s > kAheadSeq) want = kAheadSeq + 1;
        CHECK(s == want);
        want = s + 1;
    }

    // Afterwards: the next vector continues from the highest SQN issued, the
    // stored SQN_HE is exactly that vector's, and the USIM that ran ahead
    // accepts it.
    auto last = lab.admin_at(1, "POST", path + "/vectors", json{{"count", 1}, {"ind", 7}}, core);
    REQUIRE(last.status == 200);
    const aka::Sqn next(last.body["vectors"][0]["sqn"].get<std::uint64_t>());
    CHECK(aka::seq_of(next) == highest + 1);
    CHECK(rows_of(lab, "SELECT sqn FROM subscribers WHERE imsi = '" + reg.imsi + "'").front().i64(0) ==
          static_cast<std::int64_t>(next.value()));
    auto r = aka::usim_authenticate(keys, ahead_usim, aka::Rand{hex_array<16>(last.body["vectors"][0]["rand"])},
                                    aka::Autn{hex_array<16>(last.body["vectors"][0]["autn"])});
    REQUIRE(r.ok());
    CHECK(std::holds_alternative<aka::AkaSuccess>(*r));
    CHECK(lab.admin_at(0, "GET", "/v1/audit/verify").body["ok"] == true);
}

TEST_CASE("backend/multinode: batched vectors for the same subscribers on both nodes, in opposite orders") {
    if (!postgres_available_or_report()) return;
    BackendLab lab(Storage::postgres);
    lab.add_node();
    Technician tech(lab);
    constexpr std::size_t kSubscribers = 5, kThreads = 6, kRounds = 15;
    std::vector<std::unique_ptr<SimDevice>> devices;
    std::vector<std::string> imsis;
    for (std::size_t i = 0; i < kSubscribers; ++i) {
        devices.push_back(std::make_unique<SimDevice>(lab.trust()));
        lab.import_device(devices.back()->identity);
        auto reg = tech.register_sealed(*devices.back());
        REQUIRE(reg.receipt.status == 200);
        imsis.push_back(reg.imsi);
    }
    const std::string core = lab.token_for("core-network");
    const double retries_before = retries_at(lab, 0) + retries_at(lab, 1);
    // Every batch names every subscriber, some twice; half the threads ask
    // in one order, half in the other, on alternating nodes: without one
    // lock order the two nodes' transactions would wait on each other.
    std::vector<std::vector<std::pair<std::string, std::uint64_t>>> got(kThreads);
    std::vector<std::string> failures(kThreads);
    in_parallel(kThreads, [&](std::size_t t) {
        for (std::size_t round = 0; round < kRounds; ++round) {
            json asks = json::array();
            for (std::size_t k = 0; k < kSubscribers + 2; ++k) {
                const std::size_t i = (t % 2 == 0 ? k : kSubscribers + 1 - k) % kSubscribers;
                asks.push_back({{"imsi", imsis[i]}, {"count", 1 + (k + round) % 5}, {"ind", t}});
            }
            auto r = lab.admin_at((t + round) % 2, "POST", "/v1/vectors", json{{"requests", asks}}, core);
            if (r.status != 200) {
                failures[t] = std::to_string(r.status) + " " + r.raw;
                return;
            }
            for (const auto& e : r.body["results"]) {
                for (const auto& v : e["vectors"]) got[t].emplace_back(e["imsi"].get<std::string>(), v["sqn"].get<std::uint64_t>());
            }
        }
    });
    for (const auto& f : failures) CHECK_MESSAGE(f.empty(), f);
    // Per subscriber, every SEQ from 1 up was issued exactly once, and the
    // stored SQN is the highest issued.
    std::map<std::string, std::set<std::uint64_t>> seqs;
    std::size_t total = 0;
    for (std::size_t t = 0; t < kThreads; ++t) {
        for (const auto& [imsi, sqn] : got[t]) {
            CHECK(aka::ind_of(aka::Sqn(sqn)) == t);
            CHECK_MESSAGE(seqs[imsi].insert(aka::seq_of(aka::Sqn(sqn))).second, "SEQ issued twice for " << imsi);
            ++total;
        }
    }
    REQUIRE(seqs.size() == kSubscribers);
    for (const auto& [imsi, s] : seqs) {
        CHECK(*s.begin() == 1);
        CHECK(*s.rbegin() == s.size());
        const auto stored = rows_of(lab, "SELECT sqn FROM subscribers WHERE imsi = '" + imsi + "'").front().i64(0);
        CHECK(aka::seq_of(aka::Sqn(static_cast<std::uint64_t>(stored))) == *s.rbegin());
    }
    MESSAGE(total, " vectors in ", kThreads * kRounds, " batches");
    // One lock order: no transaction had to be run again.
    CHECK(retries_at(lab, 0) + retries_at(lab, 1) == retries_before);
    CHECK(lab.admin_at(1, "GET", "/v1/audit/verify").body["ok"] == true);
}

TEST_CASE("backend/multinode: a node killed mid-stream, the other carries on and nothing acknowledged is lost") {
    if (!postgres_available_or_report()) return;
    BackendLab lab(Storage::postgres);
    const std::size_t doomed = lab.add_node();
    Technician tech(lab);
    constexpr std::size_t kThreads = 8, kPerThread = 5;
    std::vector<std::unique_ptr<SimDevice>> devices;
    for (std::size_t i = 0; i < kThreads * kPerThread; ++i) {
        devices.push_back(std::make_unique<SimDevice>(lab.trust()));
        lab.import_device(devices.back()->identity);
    }
    struct Outcome {
        std::string imsi, problem;
        bool acknowledged{false};
        int failovers{0};
    };
    std::vector<Outcome> outcomes(devices.size());
    std::atomic<int> acks{0};
    std::atomic<bool> killed{false};

    // Each step goes to the doomed node first (alternating with node 0) and,
    // without an answer, to node 0: what a load balancer does when a node dies.
    auto with_failover = [&](std::size_t preferred, Outcome& o, auto&& call) {
        Resp r = call(preferred);
        if (r.status == 0 && preferred != 0) {
            ++o.failovers;
            r = call(0);
        }
        return r;
    };
    in_parallel(kThreads + 1, [&](std::size_t t) {
        if (t == kThreads) {
            if (eventually([&] { return acks >= 10; })) lab.kill_node(doomed);
            killed = true;
            return;
        }
        for (std::size_t k = 0; k < kPerThread; ++k) {
            const std::size_t i = t * kPerThread + k;
            SimDevice& d = *devices[i];
            Outcome& o = outcomes[i];
            std::optional<SignedObject> tok = tech.token_at(doomed, d.identity.id);
            if (!tok) {
                ++o.failovers;
                tok = tech.token_at(0, d.identity.id);
            }
            if (!tok) {
                o.problem = "no token";
                continue;
            }
            const Resp minted = with_failover(i % 2 == 0 ? doomed : 0, o, [&](std::size_t n) { return tech.mint_at(n, d); });
            if (minted.status != 201 && minted.status != 200) {
                o.problem = "bundle: " + std::to_string(minted.status) + " " + minted.raw;
                continue;
            }
            o.imsi = minted.body["imsi"].get<std::string>();
            auto delivered = tech.deliver(d, *tok, Request{Operation::deliver_sealed, bundle_of(minted)});
            if (!delivered || !delivered->receipt) {
                o.problem = "the device did not commit";
                continue;
            }
            const std::string oid = minted.body["object_id"].get<std::string>();
            const Resp receipt = with_failover(doomed, o, [&](std::size_t n) { return tech.submit_at(n, oid, *delivered->receipt); });
            if (receipt.status == 200 && receipt.body["state"] == "active") {
                o.acknowledged = true;
                ++acks;
            } else {
                o.problem = "receipt: " + std::to_string(receipt.status) + " " + receipt.raw;
            }
        }
    });
    REQUIRE(killed);
    int failovers = 0;
    std::map<std::string, std::set<std::string>> expected;
    for (const auto& o : outcomes) {
        INFO(o.problem);
        CHECK(o.acknowledged);
        failovers += o.failovers;
        if (o.acknowledged) expected[o.imsi] = {"active"};
    }
    MESSAGE(acks.load(), " registrations acknowledged; ", failovers, " requests failed over to the surviving node");
    CHECK(failovers > 0);
    // Retried registrations converged: one subscriber per device, all active.
    CHECK(rows_of(lab, "SELECT imsi FROM subscribers").size() == devices.size());
    check_consistent(lab, expected);
}
