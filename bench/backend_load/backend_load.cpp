// credprov-backend's throughput, over real HTTP on loopback against a real
// credprov-backend process started here (this process only drives it), on
// SQLite (the embedded default) or on PostgreSQL (--storage postgres, the
// server named by CREDPROV_TEST_POSTGRES_URL; bench/backend_load/run starts
// one). <storage> below is sqlite or postgres:
//   backend.register_per_s.<storage>  full sealed registrations per second,
//                                    a provisioner's devices 4 at a time: the
//                                    tokens with their sealed bundles in one
//                                    POST /v1/batch, later the receipts in
//                                    another (decision 0014), as 'credprov
//                                    pool fetch' and 'credprov queue flush'
//                                    send them; `--clients` provisioners at once
//   backend.register_*.interactive.<storage>  the same figures for one
//                                    device at a time, as 'credprov provision'
//                                    asks: the token with the bundle (one
//                                    request, decision 0013), then the receipt
//   backend.register_*.separate.<storage>  one at a time with the token and
//                                    the bundle asked for apart (three
//                                    requests); each flow has a third of the devices
//   backend.register_p99_ms.<storage> 99th percentile of one registration's
//                                    backend time (token + bundle + receipt; in
//                                    batches, the two batches' times)
//   backend.register_client_cpu_ms.<storage>  this load generator's CPU time
//                                    per registration (it shares the cores)
//   backend.register_cpu_ms.<storage> the backend's CPU time (user + system,
//                                    both cores) per registration
//   backend.token_bundle_ms_p50 / _p99  latency of the token with its bundle,
//                                    one device (SQLite)
//   backend.receipt_ms_p50          latency of activating on a receipt, one device (SQLite)
//   backend.aka_vectors_per_s       AKA quintets per second, asked for as a
//                                    core network's gateway does: 5 per
//                                    subscriber (GSUP's and S6a's maximum),
//                                    16 subscribers per POST /v1/vectors, on
//                                    kept-alive connections, `--clients` at
//                                    once (".postgres" appended on PostgreSQL)
//   backend.aka_vectors_per_s.single  the same, one subscriber per request
//                                    (POST /v1/subscribers/{imsi}/vectors)
//   backend.aka_cpu_us_per_vector[.single]  the backend's CPU time per quintet
//   backend.vectors_per_s           quintets per second, one per request
//
// A registration's requests run in two timed phases with the device's side
// in between, untimed: every client asks for the token and the bundle for its
// devices; the simulated devices (in-memory sessions) turn the bundles into
// receipts; every client hands the receipts back. The device-side crypto so
// never competes with the backend for the two cores, and the throughput is
// registrations over the wall-clock time of the two phases. Each provisioner
// keeps its connection for its requests, as the CLI's and the app's client
// does; so does the core network. Prints "BENCH <name> <value> <unit>".
//
//   backend_load [--short] [--devices N] [--clients N] [--storage sqlite|postgres]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <sys/resource.h>

#include "backend_flows.hpp"
#include "credprov/provisioner/backend_client.hpp"
#include "bench_figures.hpp"

using namespace credprov;
using namespace credprov::testing;
using namespace credprov::bench;
using Clock = std::chrono::steady_clock;

namespace {

// Runs `work(i)` for i in [0, n) on `clients` threads; returns the wall time.
template <typename F>
Clock::duration run_parallel(int clients, int n, F work) {
    std::atomic<int> next{0};
    const auto t0 = Clock::now();
    std::vector<std::thread> threads;
    for (int c = 0; c < clients; ++c) {
        threads.emplace_back([&, c] {
            for (int i = next++; i < n; i = next++) work(c, i);
        });
    }
    for (auto& t : threads) t.join();
    return Clock::now() - t0;
}

// CPU time (user + system, seconds) used so far by the backend process the
// lab started, found by its configuration file on /proc: the figures per
// operation that do not depend on what else the machine runs.
double backend_cpu_seconds(const BackendLab& lab) {
    const std::string config = lab.config.string();
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
        const std::string pid = entry.path().filename().string();
        if (pid.find_first_not_of("0123456789") != std::string::npos) continue;
        std::string cmdline = read_file(entry.path() / "cmdline");
        std::replace(cmdline.begin(), cmdline.end(), '\0', ' ');
        if (cmdline.find(config) == std::string::npos || cmdline.find(" serve") == std::string::npos) continue;
        const std::string stat = read_file(entry.path() / "stat");
        std::istringstream fields(stat.substr(stat.rfind(')') + 2));
        std::string skip;
        for (int i = 3; i < 14; ++i) fields >> skip;  // state .. cmajflt
        double utime = 0, stime = 0;
        fields >> utime >> stime;
        return (utime + stime) / static_cast<double>(::sysconf(_SC_CLK_TCK));
    }
    throw std::runtime_error("cannot find the backend process");
}

// This process's CPU time (user + system, seconds): the load generator's
// share of the two cores.
double own_cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// One registration's state between the timed phases.
struct Pending {
    std::optional<SignedObject> token;
    Resp minted;
    std::optional<Receipt> receipt;
    double front_ms{0};  // token + bundle
    double receipt_ms{0};
};

// The core network's vector requests: `count` quintets per subscriber on one
// kept-alive connection per client, `batch` subscribers per request (1: the
// per-subscriber operation; more: POST /v1/vectors, as a Diameter or GSUP
// gateway batches its serving nodes' asks); returns quintets per second.
double vectors_per_s(BackendLab& lab, const std::string& core, const std::vector<std::string>& imsis, int clients,
                     int asks, int count, int batch = 1) {
    std::vector<std::unique_ptr<httplib::Client>> conns;
    for (int c = 0; c < clients; ++c) {
        conns.push_back(std::make_unique<httplib::Client>("127.0.0.1", lab.port));
        conns.back()->set_keep_alive(true);
        conns.back()->set_tcp_nodelay(true);
        conns.back()->set_read_timeout(20);
    }
    const httplib::Headers auth{{"Authorization", "Bearer " + core}};
    const std::string single = json{{"count", count}}.dump();
    const int requests = asks / batch;
    std::atomic<int> failures{0};
    const auto wall = run_parallel(clients, requests, [&](int c, int i) {
        httplib::Client& conn = *conns[static_cast<std::size_t>(c)];
        std::string path = "/v1/vectors", body = single;
        if (batch == 1) {
            path = "/v1/subscribers/" + imsis[static_cast<std::size_t>(i) % imsis.size()] + "/vectors";
        } else {
            json list = json::array();
            for (int k = 0; k < batch; ++k) {
                list.push_back({{"imsi", imsis[static_cast<std::size_t>(i * batch + k) % imsis.size()]}, {"count", count}});
            }
            body = json{{"requests", list}}.dump();
        }
        auto r = conn.Post(path, auth, body, "application/json");
        if (!r || r->status != 200) ++failures;
    });
    if (failures > 0) throw std::runtime_error(std::to_string(failures.load()) + " vector requests failed");
    return static_cast<double>(requests) * batch * count / seconds(wall);
}

// How a provisioner asks for a registration's token and bundle.
enum class Flow {
    with_token,  // one call: POST /v1/tokens with "bundle": true (the CLI and the app, decision 0013)
    separate,    // POST /v1/tokens, then POST /v1/bundles (a device the backend learns of at pairing)
    batched,     // kBatch tokens with bundles in one POST /v1/batch, the receipts likewise (decision 0014)
};

// Registrations per POST /v1/batch in the batched flow: a staging bench's
// handful of devices at once. 'credprov queue flush' sends up to 64; larger
// batches trade latency for rate (8: 4,100-4,650/s but p99 19-25 ms here).
constexpr int kBatch = 4;

struct Registered {
    double per_s{0}, p99_ms{0}, cpu_ms{0}, client_cpu_ms{0}, front_p50{0}, front_p99{0}, receipt_p50{0};
};

// Registers `sims` (all in the inventory) with `flow`, `backends.size()`
// provisioners at once: token and bundle (timed), the devices' side
// (untimed), the receipts (timed).
Registered register_all(BackendLab& lab, Technician& tech, std::vector<std::unique_ptr<provisioner::BackendClient>>& backends,
                    std::vector<SimDevice*>& sims, Flow flow) {
    const int devices = static_cast<int>(sims.size());
    const int clients = static_cast<int>(backends.size());
    std::vector<Pending> regs(static_cast<std::size_t>(devices));
    std::atomic<int> failures{0};
    std::mutex first_error_lock;
    std::string first_error;

    // The batched flow: kBatch devices per request, a registration waits for
    // its whole batch (its latency is the two batches' times).
    const int per = flow == Flow::batched ? kBatch : 1;
    const int units = (devices + per - 1) / per;
    auto batch = [&](int c, int unit, const std::function<json(int)>& request, const std::function<void(int, const json&)>& answer,
                     double Pending::*timing) {
        const int first = unit * per, last = std::min(devices, first + per);
        json list = json::array();
        for (int i = first; i < last; ++i) list.push_back(request(i));
        const auto t0 = Clock::now();
        auto r = backends[static_cast<std::size_t>(c)]->post("/v1/batch", json{{"requests", list}});
        const double took = ms(Clock::now() - t0);
        if (r.status != 200 || !r.body["responses"].is_array() || r.body["responses"].size() != list.size()) {
            failures += last - first;
            std::lock_guard lock(first_error_lock);
            if (first_error.empty()) first_error = r.describe();
            return;
        }
        for (int i = first; i < last; ++i) {
            regs[static_cast<std::size_t>(i)].*timing = took;
            answer(i, r.body["responses"][static_cast<std::size_t>(i - first)]);
        }
    };
    auto ask_for = [&](int i) {
        json ask{{"device_id", sims[static_cast<std::size_t>(i)]->identity.id.to_string()},
                 {"operations", {"deliver-sealed", "query"}},
                 {"ttl_s", 600}};
        if (flow != Flow::separate) ask["bundle"] = true;
        return ask;
    };
    auto receipt_for = [&](int i) {
        const Pending& p = regs[static_cast<std::size_t>(i)];
        return json{{"object_id", p.minted.body["object_id"]}, {"receipt", backend::base64_encode(p.receipt->encode())}};
    };

    // Phase 1 (timed): token and sealed bundle.
    double cpu_before = backend_cpu_seconds(lab);
    double own_before = own_cpu_seconds();
    const auto front_wall = run_parallel(clients, units, [&](int c, int i) {
        if (flow == Flow::batched) {
            return batch(
                c, i, [&](int k) { return json{{"path", "/v1/tokens"}, {"body", ask_for(k)}}; },
                [&](int k, const json& answer) {
                    Pending& p = regs[static_cast<std::size_t>(k)];
                    const json& body = answer["body"];
                    if (answer["status"] != 201 || !body["bundle"].is_object()) {
                        ++failures;
                        return;
                    }
                    p.token = SignedObject::decode(*backend::base64_decode(body["token"].get<std::string>())).value();
                    p.minted.status = 201;
                    p.minted.body = body["bundle"];
                },
                &Pending::front_ms);
        }
        SimDevice& d = *sims[static_cast<std::size_t>(i)];
        Pending& p = regs[static_cast<std::size_t>(i)];
        provisioner::BackendClient& backend = *backends[static_cast<std::size_t>(c)];
        const auto t0 = Clock::now();
        auto tok = backend.post("/v1/tokens", ask_for(i));
        provisioner::BackendReply minted{true, tok.status, tok.body.value("bundle", json()), {}};
        if (flow == Flow::separate) minted = backend.post("/v1/bundles", json{{"device", BackendLab::device_json(d.identity)}});
        const auto t2 = Clock::now();
        p.front_ms = ms(t2 - t0);
        if (tok.status != 201 || minted.status != 201 || !minted.body.is_object()) {
            ++failures;
            return;
        }
        p.token = SignedObject::decode(*backend::base64_decode(tok.body["token"].get<std::string>())).value();
        p.minted.status = minted.status;
        p.minted.body = minted.body;
    });
    if (failures > 0) throw std::runtime_error(std::to_string(failures.load()) + " tokens or bundles failed");
    double register_cpu = backend_cpu_seconds(lab) - cpu_before;
    double client_cpu = own_cpu_seconds() - own_before;

    // The devices' side (untimed): pair, deliver, sign a receipt.
    run_parallel(2, devices, [&](int, int i) {
        SimDevice& d = *sims[static_cast<std::size_t>(i)];
        Pending& p = regs[static_cast<std::size_t>(i)];
        auto bundle = SignedObject::decode(*backend::base64_decode(p.minted.body["bundle"].get<std::string>())).value();
        auto resp = tech.deliver(d, *p.token, Request{Operation::deliver_sealed, bundle});
        if (!resp || !resp->receipt) {
            ++failures;
            return;
        }
        p.receipt = resp->receipt;
    });
    if (failures > 0) throw std::runtime_error(std::to_string(failures.load()) + " deliveries failed");

    // Phase 2 (timed): receipts.
    cpu_before = backend_cpu_seconds(lab);
    own_before = own_cpu_seconds();
    const auto receipt_wall = run_parallel(clients, units, [&](int c, int i) {
        if (flow == Flow::batched) {
            return batch(
                c, i, [&](int k) { return json{{"path", "/v1/receipts"}, {"body", receipt_for(k)}}; },
                [&](int, const json& answer) {
                    if (answer["status"] != 200 && failures++ == 0) {
                        std::lock_guard lock(first_error_lock);
                        first_error = answer.dump();
                    }
                },
                &Pending::receipt_ms);
        }
        Pending& p = regs[static_cast<std::size_t>(i)];
        const auto t0 = Clock::now();
        auto r = backends[static_cast<std::size_t>(c)]->post("/v1/receipts", receipt_for(i));
        p.receipt_ms = ms(Clock::now() - t0);
        if (r.status != 200 && failures++ == 0) {
            std::lock_guard lock(first_error_lock);
            first_error = r.describe();
        }
    });
    if (failures > 0) throw std::runtime_error(std::to_string(failures.load()) + " receipts failed, the first: " + first_error);
    register_cpu += backend_cpu_seconds(lab) - cpu_before;
    client_cpu += own_cpu_seconds() - own_before;

    std::vector<double> registration_ms, front_ms, receipt_ms;
    for (const Pending& p : regs) {
        registration_ms.push_back(p.front_ms + p.receipt_ms);
        front_ms.push_back(p.front_ms);
        receipt_ms.push_back(p.receipt_ms);
    }
    Registered out;
    out.per_s = static_cast<double>(devices) / seconds(front_wall + receipt_wall);
    out.p99_ms = percentile(registration_ms, 0.99);
    out.cpu_ms = 1000.0 * register_cpu / devices;
    out.client_cpu_ms = 1000.0 * client_cpu / devices;
    out.front_p50 = percentile(front_ms, 0.5);
    out.front_p99 = percentile(front_ms, 0.99);
    out.receipt_p50 = percentile(receipt_ms, 0.5);
    return out;
}

// Subscribers per POST /v1/vectors in the headline figure: what a gateway
// serving many MMEs or SGSNs collects in about a millisecond at 10,000 asks/s.
constexpr int kGatewayBatch = 16;

}  // namespace

int main(int argc, char** argv) {
    int devices = 6000;  // a third registered each way
    int clients = 8;
    std::string storage = "sqlite";
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--short") devices = 32;
        else if (a == "--clients" && i + 1 < argc) clients = std::max(1, std::atoi(argv[++i]));
        else if (a == "--storage" && i + 1 < argc) storage = argv[++i];
        else if (a == "--devices" && i + 1 < argc) devices = std::max(1, std::atoi(argv[++i]));
        else if (a == "--help" || a == "-h") {
            std::puts("usage: backend_load [--short] [--devices N] [--clients N] [--storage sqlite|postgres]\n"
                      "Starts credprov-backend and prints BENCH lines for its registration and AKA throughput.\n"
                      "PostgreSQL: the server named by CREDPROV_TEST_POSTGRES_URL (a database is created on it).");
            return 0;
        } else {
            std::fprintf(stderr, "backend_load: unknown argument '%s' (see --help)\n", a.c_str());
            return 2;
        }
    }
    // Each simulated device keeps its keys in guarded memory (libsodium's
    // sodium_malloc: guard pages around each secret), about 8 memory
    // mappings a device; past vm.max_map_count a thread can no longer start.
    if (long limit = 0; std::ifstream("/proc/sys/vm/max_map_count") >> limit) {
        const long most = std::max(0L, (limit - 8192) / 8);
        if (devices > most) {
            std::fprintf(stderr,
                         "backend_load: --devices %d needs about %d memory mappings (8 per simulated device, its keys in "
                         "guarded memory); vm.max_map_count is %ld: use at most %ld\n",
                         devices, devices * 8, limit, most);
            return 2;
        }
    }
    if (storage != "sqlite" && storage != "postgres") {
        std::fprintf(stderr, "backend_load: --storage is sqlite or postgres, not '%s'\n", storage.c_str());
        return 2;
    }
    const bool sqlite = storage == "sqlite";
    const auto name = [&](const std::string& base) { return base + "." + storage; };
    try {
        BackendLab lab(sqlite ? Storage::sqlite : Storage::postgres);
        std::vector<std::unique_ptr<SimDevice>> sims;
        json inventory = json::array();
        for (int i = 0; i < devices; ++i) {
            sims.push_back(std::make_unique<SimDevice>(lab.trust()));
            inventory.push_back(BackendLab::device_json(sims.back()->identity));
        }
        for (std::size_t at = 0; at < inventory.size(); at += 100) {
            json part(inventory.begin() + static_cast<std::ptrdiff_t>(at),
                      inventory.begin() + static_cast<std::ptrdiff_t>(std::min(inventory.size(), at + 100)));
            if (lab.admin("POST", "/v1/inventory", json{{"devices", part}}).status != 200) throw std::runtime_error("inventory");
        }
        Technician tech(lab);
        // Each client is a provisioner's own HTTP client (the CLI's and the
        // app's), which keeps its connection between a session's requests.
        std::vector<std::unique_ptr<provisioner::BackendClient>> backends;
        for (int c = 0; c < clients; ++c) {
            backends.push_back(std::make_unique<provisioner::BackendClient>("http://127.0.0.1:" + std::to_string(lab.port), "",
                                                                             &tech.key, 20));
        }
        std::vector<SimDevice*> together, apart, batched;
        for (int i = 0; i < devices; ++i) {
            (i % 3 == 0 ? together : i % 3 == 1 ? apart : batched).push_back(sims[static_cast<std::size_t>(i)].get());
        }
        const Registered b = register_all(lab, tech, backends, batched, Flow::batched);
        print(name("backend.register_per_s").c_str(), b.per_s, "1/s");
        print(name("backend.register_p99_ms").c_str(), b.p99_ms, "ms");
        print(name("backend.register_cpu_ms").c_str(), b.cpu_ms, "ms");
        print(name("backend.register_client_cpu_ms").c_str(), b.client_cpu_ms, "ms");
        // One device at a time, as the technician's 'credprov provision'.
        const Registered r = register_all(lab, tech, backends, together, Flow::with_token);
        print(name("backend.register_per_s.interactive").c_str(), r.per_s, "1/s");
        print(name("backend.register_p99_ms.interactive").c_str(), r.p99_ms, "ms");
        print(name("backend.register_cpu_ms.interactive").c_str(), r.cpu_ms, "ms");
        print(name("backend.register_client_cpu_ms.interactive").c_str(), r.client_cpu_ms, "ms");
        if (sqlite) {
            print("backend.token_bundle_ms_p50", r.front_p50, "ms");
            print("backend.token_bundle_ms_p99", r.front_p99, "ms");
            print("backend.receipt_ms_p50", r.receipt_p50, "ms");
        }
        // The same with the token and the bundle asked for apart: three
        // requests per registration instead of two.
        const Registered three = register_all(lab, tech, backends, apart, Flow::separate);
        print(name("backend.register_per_s.separate").c_str(), three.per_s, "1/s");
        print(name("backend.register_p99_ms.separate").c_str(), three.p99_ms, "ms");
        print(name("backend.register_cpu_ms.separate").c_str(), three.cpu_ms, "ms");

        const std::string core = lab.token_for("core-network");
        std::vector<std::string> imsis;
        std::string cursor;
        do {
            auto page = lab.admin("GET", "/v1/subscribers?state=active&limit=500" + (cursor.empty() ? "" : "&cursor=" + cursor));
            for (const auto& s : page.body["items"]) imsis.push_back(s["imsi"].get<std::string>());
            cursor = page.body["next_cursor"].is_string() ? page.body["next_cursor"].get<std::string>() : "";
        } while (!cursor.empty());
        if (imsis.empty()) throw std::runtime_error("no active subscriber");
        const int requests = static_cast<int>(together.size()) * 2;
        double cpu_before = backend_cpu_seconds(lab);
        const std::string suffix = sqlite ? "" : ".postgres";
        // A gateway's batches (the headline), then one subscriber per request.
        print(("backend.aka_vectors_per_s" + suffix).c_str(),
              vectors_per_s(lab, core, imsis, clients, requests * 4, 5, kGatewayBatch), "1/s");
        print(("backend.aka_cpu_us_per_vector" + suffix).c_str(),
              1e6 * (backend_cpu_seconds(lab) - cpu_before) / (requests * 4 * 5.0), "us");
        cpu_before = backend_cpu_seconds(lab);
        print(("backend.aka_vectors_per_s.single" + suffix).c_str(), vectors_per_s(lab, core, imsis, clients, requests, 5), "1/s");
        print(("backend.aka_cpu_us_per_vector.single" + suffix).c_str(),
              1e6 * (backend_cpu_seconds(lab) - cpu_before) / (requests * 5.0), "us");
        if (sqlite) print("backend.vectors_per_s", vectors_per_s(lab, core, imsis, clients, requests, 1), "1/s");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "backend_load: %s\n", e.what());
        return 1;
    }
    return 0;
}
