// osmo-hlr's figures, measured as bench/backend_load measures credprov's:
// a real osmo-hlr (Debian's package) on a fresh database of its own, driven
// from this separate process on loopback.
//
//   osmohlr.register_per_s      subscribers created with their Milenage K
//                               and OPc over osmo-hlr's control interface
//                               (CTRL: SET subscriber.create, then SET
//                               subscriber.by-imsi-<IMSI>.aud3g), `--clients`
//                               connections at once, one command each in
//                               flight: what an operator's provisioning
//                               system does to add a subscriber
//   osmohlr.register_p99_ms     99th percentile of one creation (both commands)
//   osmohlr.aka_vectors_per_s   authentication vectors per second over GSUP
//                               (libosmo-gsup-client, as an MSC or SGSN
//                               asks): Send Authentication Info with 5
//                               vectors per request (GSUP's maximum, as
//                               credprov's API), `--clients` connections,
//                               one request each in flight
//
// osmo-hlr is the tests' (tests/integration/osmo_hlr_lab.hpp), quiet, on a
// loopback address of its own (127.a.b.c: its ports are fixed in 1.5), so a
// test or another osmo-hlr on the machine does not collide. Prints "BENCH <name> <value> <unit>".
//
//   osmohlr_load [--short] [--clients N]
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench_figures.hpp"
#include "osmo_hlr_lab.hpp"

extern "C" {
#include <osmocom/core/application.h>
#include <osmocom/core/logging.h>
#include <osmocom/core/msgb.h>
#include <osmocom/core/select.h>
#include <osmocom/core/talloc.h>
#include <osmocom/core/timer.h>
#include <osmocom/gsm/gsup.h>
#include <osmocom/gsm/protocol/ipaccess.h>
#include <osmocom/gsupclient/gsup_client.h>
}

using namespace credprov::bench;
using credprov::testing::CtrlSession;
using credprov::testing::OsmoHlr;
using credprov::testing::OsmoLogging;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kGsupPort = 4222;  // fixed in osmo-hlr 1.5

// SET over one kept CTRL connection; throws on ERROR or a lost connection.
std::string ctrl_set(CtrlSession& ctrl, unsigned id, const std::string& variable, const std::string& value) {
    const std::string n = std::to_string(id);
    auto reply = ctrl.command("SET " + n + " " + variable + " " + value);
    if (!reply) throw std::runtime_error("CTRL connection to osmo-hlr lost");
    if (!reply->starts_with("SET_REPLY " + n + " ")) throw std::runtime_error("CTRL " + variable + ": " + *reply);
    return *reply;
}

std::string imsi_of(int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "00101%010d", i);
    return buf;
}

std::string random_hex(std::mt19937_64& rng, int bytes) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < bytes * 2; ++i) s.push_back(digits[rng() & 15]);
    return s;
}

// ---- GSUP: Send Authentication Info over libosmo-gsup-client -------------------------

struct AkaRun {
    std::vector<std::string> imsis;
    int requests{0};
    std::atomic<int> sent{0};
    int answered{0};
    long vectors{0};
    int errors{0};
    int connected{0};
};

struct AkaClient {
    AkaRun* run{nullptr};
    osmo_gsup_client* gsup{nullptr};
    bool up{false};
};

void send_next(AkaClient& c) {
    const int i = c.run->sent++;
    if (i >= c.run->requests) return;
    osmo_gsup_message m{};
    m.message_type = OSMO_GSUP_MSGT_SEND_AUTH_INFO_REQUEST;
    const std::string& imsi = c.run->imsis[static_cast<std::size_t>(i) % c.run->imsis.size()];
    std::snprintf(m.imsi, sizeof m.imsi, "%s", imsi.c_str());
    m.num_auth_vectors = 5;
    if (osmo_gsup_client_enc_send(c.gsup, &m) != 0) ++c.run->errors;
}

int on_gsup(osmo_gsup_client* g, msgb* msg) {
    auto* c = static_cast<AkaClient*>(g->data);
    osmo_gsup_message m{};
    const int rc = osmo_gsup_decode(static_cast<const std::uint8_t*>(msgb_l2(msg)), msgb_l2len(msg), &m);
    if (rc == 0 && m.message_type == OSMO_GSUP_MSGT_SEND_AUTH_INFO_RESULT) {
        c->run->vectors += m.num_auth_vectors;
    } else {
        ++c->run->errors;
    }
    msgb_free(msg);
    ++c->run->answered;
    send_next(*c);
    return 0;
}

bool on_up_down(osmo_gsup_client* g, bool up) {
    auto* c = static_cast<AkaClient*>(g->data);
    if (up && !c->up) ++c->run->connected;
    c->up = up;
    return true;
}

// Vectors per second with `clients` GSUP connections, one request each in flight.
double aka_vectors_per_s(const std::string& host, const std::vector<std::string>& imsis, int clients, int requests) {
    void* ctx = talloc_named_const(nullptr, 0, "osmohlr_load");
    msgb_talloc_ctx_init(ctx, 0);
    // libosmocore logs every IPA frame to stderr unless told otherwise.
    static const log_info no_categories{};
    osmo_init_logging2(ctx, &no_categories);
    log_target_destroy(osmo_stderr_target);
    osmo_stderr_target = nullptr;
    AkaRun run;
    run.imsis = imsis;
    run.requests = requests;
    std::vector<AkaClient> cs(static_cast<std::size_t>(clients));
    for (int i = 0; i < clients; ++i) {
        AkaClient& c = cs[static_cast<std::size_t>(i)];
        c.run = &run;
        auto* unit = talloc_zero(ctx, struct ipaccess_unit);
        unit->unit_name = talloc_asprintf(ctx, "credprov-bench-%d", i);  // one IND slot per client
        osmo_gsup_client_config cfg{};
        cfg.ipa_dev = unit;
        cfg.ip_addr = host.c_str();
        cfg.tcp_port = kGsupPort;
        cfg.read_cb = on_gsup;
        cfg.up_down_cb = on_up_down;
        cfg.data = &c;
        c.gsup = osmo_gsup_client_create3(ctx, &cfg);
        if (c.gsup == nullptr) throw std::runtime_error("cannot create a GSUP client");
    }
    const auto connect_end = Clock::now() + std::chrono::seconds(20);
    while (run.connected < clients && Clock::now() < connect_end) osmo_select_main(0);
    if (run.connected < clients) throw std::runtime_error("GSUP clients did not connect to osmo-hlr");
    // "Up" means TCP is connected; osmo-hlr learns a client's name (and so
    // where to send its answers) from the IPA identity exchange that follows.
    // A request before it is dropped ("GSUP client ... not found").
    // A timer wakes the (blocking) select loop every 100 ms, so that the
    // waits below end on time.
    osmo_timer_list tick{};
    osmo_timer_setup(
        &tick, [](void* t) { osmo_timer_schedule(static_cast<osmo_timer_list*>(t), 0, 100000); }, &tick);
    osmo_timer_schedule(&tick, 0, 100000);
    const auto settle = Clock::now() + std::chrono::seconds(1);
    while (Clock::now() < settle) osmo_select_main(0);
    const auto t0 = Clock::now();
    for (auto& c : cs) send_next(c);
    int seen = 0;
    auto progress = Clock::now();
    while (run.answered < requests && Clock::now() - progress < std::chrono::seconds(10)) {
        osmo_select_main(0);
        if (run.answered != seen) seen = run.answered, progress = Clock::now();
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    osmo_timer_del(&tick);
    for (auto& c : cs) osmo_gsup_client_destroy(c.gsup);
    talloc_free(ctx);
    if (run.answered < requests) {
        throw std::runtime_error("osmo-hlr stopped answering vector requests (" + std::to_string(run.answered) + " of " +
                                 std::to_string(requests) + " answered; nothing for 10 s)");
    }
    if (run.errors > 0) throw std::runtime_error(std::to_string(run.errors) + " vector requests failed");
    return static_cast<double>(run.vectors) / s;
}

}  // namespace

int main(int argc, char** argv) {
    int subscribers = 2000;
    int clients = 8;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--short") subscribers = 16;
        else if (a == "--clients" && i + 1 < argc) clients = std::max(1, std::atoi(argv[++i]));
        else if (a == "--help" || a == "-h") {
            std::puts("usage: osmohlr_load [--short] [--clients N]\n"
                      "Starts a real osmo-hlr on loopback and prints BENCH lines for its subscriber\n"
                      "creation rate (CTRL) and its authentication vector rate (GSUP).");
            return 0;
        } else {
            std::fprintf(stderr, "osmohlr_load: unknown argument '%s' (see --help)\n", a.c_str());
            return 2;
        }
    }
    try {
        if (!std::filesystem::exists(CREDPROV_OSMO_HLR)) throw std::runtime_error(CREDPROV_OSMO_HLR " not found; run scripts/setup");
        OsmoHlr hlr(credprov::testing::random_loopback_address(), OsmoLogging::quiet);
        std::vector<std::string> imsis;
        for (int i = 0; i < subscribers; ++i) imsis.push_back(imsi_of(i));

        // Keys made before the clock starts, as credprov's bench makes its devices first.
        std::mt19937_64 rng(42);
        std::vector<std::string> keys;
        for (int i = 0; i < subscribers; ++i) keys.push_back("milenage," + random_hex(rng, 16) + ",OPC," + random_hex(rng, 16));

        std::vector<double> latency(static_cast<std::size_t>(subscribers));
        std::atomic<int> next{0};
        std::atomic<int> failures{0};
        std::string first_error;
        std::mutex error_lock;
        const auto t0 = Clock::now();
        std::vector<std::thread> threads;
        for (int c = 0; c < clients; ++c) {
            threads.emplace_back([&] {
                try {
                    CtrlSession ctrl(hlr.address);
                    if (!ctrl.connected()) throw std::runtime_error("cannot connect to osmo-hlr's CTRL");
                    unsigned id = 0;
                    for (int i = next++; i < subscribers; i = next++) {
                        const auto s = Clock::now();
                        const std::string& imsi = imsis[static_cast<std::size_t>(i)];
                        ctrl_set(ctrl, ++id, "subscriber.create", imsi);
                        ctrl_set(ctrl, ++id, "subscriber.by-imsi-" + imsi + ".aud3g", keys[static_cast<std::size_t>(i)]);
                        latency[static_cast<std::size_t>(i)] = std::chrono::duration<double, std::milli>(Clock::now() - s).count();
                    }
                } catch (const std::exception& e) {
                    ++failures;
                    std::lock_guard lock(error_lock);
                    if (first_error.empty()) first_error = e.what();
                }
            });
        }
        for (auto& t : threads) t.join();
        const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
        if (failures > 0) throw std::runtime_error("subscriber creation failed: " + first_error);
        print("osmohlr.register_per_s", subscribers / wall, "1/s");
        print("osmohlr.register_p99_ms", percentile(latency, 0.99), "ms");
        print("osmohlr.aka_vectors_per_s", aka_vectors_per_s(hlr.address, imsis, clients, subscribers * 2), "1/s");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "osmohlr_load: %s\n", e.what());
        return 1;
    }
    return 0;
}
