// Backend throughput on the embedded default (SQLite), over real HTTP on
// loopback against a real credprov-backend process:
//   backend.registrations_per_s   sealed registrations (bundle + receipt) per second, 4 clients
//   backend.mint_ms_p50 / _p99    latency of minting a sealed bundle
//   backend.receipt_ms_p50        latency of activating on a receipt
//   backend.vectors_per_s         AKA quintets per second (one per request), 4 clients
// The device side (in-memory sessions that turn a bundle into a receipt)
// runs outside the timed HTTP calls. Prints "BENCH <name> <value> <unit>".
//
//   bench_backend [--short]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <string>
#include <thread>

#include "backend_flows.hpp"

using namespace credprov;
using namespace credprov::testing;
using Clock = std::chrono::steady_clock;

namespace {

void print(const char* name, double value, const char* unit) { std::printf("BENCH %s %.6g %s\n", name, value, unit); }

double ms(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) {
    int devices = 400;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--short") devices = 16;
        if (a == "--help" || a == "-h") {
            std::puts("usage: bench_backend [--short]\nPrints BENCH lines for credprov-backend's throughput on SQLite.");
            return 0;
        }
    }
    constexpr int kClients = 4;
    try {
        BackendLab lab(Storage::sqlite);
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
        std::mutex m;
        std::vector<double> mint_ms, receipt_ms;
        double http_seconds = 0;
        std::atomic<int> next{0}, failures{0};
        auto worker = [&] {
            for (int i = next++; i < devices; i = next++) {
                SimDevice& d = *sims[static_cast<std::size_t>(i)];
                auto tok = tech.token(d.identity.id);
                const auto t0 = Clock::now();
                auto minted = tech.mint(d);
                const auto t1 = Clock::now();
                if (minted.status != 201 || !tok) {
                    ++failures;
                    continue;
                }
                auto bundle = SignedObject::decode(*backend::base64_decode(minted.body["bundle"].get<std::string>())).value();
                auto resp = tech.deliver(d, *tok, Request{Operation::deliver_sealed, bundle});
                if (!resp || !resp->receipt) {
                    ++failures;
                    continue;
                }
                const auto t2 = Clock::now();
                auto r = tech.submit(minted.body["object_id"].get<std::string>(), *resp->receipt);
                const auto t3 = Clock::now();
                if (r.status != 200) ++failures;
                std::lock_guard lock(m);
                mint_ms.push_back(ms(t1 - t0));
                receipt_ms.push_back(ms(t3 - t2));
                http_seconds += std::chrono::duration<double>((t1 - t0) + (t3 - t2)).count();
            }
        };
        std::vector<std::thread> threads;
        for (int i = 0; i < kClients; ++i) threads.emplace_back(worker);
        for (auto& t : threads) t.join();
        if (failures > 0) throw std::runtime_error(std::to_string(failures.load()) + " registrations failed");
        // Throughput with kClients in parallel: registrations over the mean
        // HTTP time per client (device-side work excluded).
        print("backend.registrations_per_s", static_cast<double>(devices) / (http_seconds / kClients), "1/s");
        print("backend.mint_ms_p50", percentile(mint_ms, 0.5), "ms");
        print("backend.mint_ms_p99", percentile(mint_ms, 0.99), "ms");
        print("backend.receipt_ms_p50", percentile(receipt_ms, 0.5), "ms");

        const std::string core = lab.token_for("core-network");
        auto listing = lab.admin("GET", "/v1/subscribers?state=active&limit=500");
        std::vector<std::string> imsis;
        for (const auto& s : listing.body["items"]) imsis.push_back(s["imsi"].get<std::string>());
        const int per_client = devices / 2;
        std::atomic<int> vector_failures{0};
        const auto v0 = Clock::now();
        threads.clear();
        for (int c = 0; c < kClients; ++c) {
            threads.emplace_back([&, c] {
                for (int i = 0; i < per_client; ++i) {
                    const auto& imsi = imsis[static_cast<std::size_t>(c * per_client + i) % imsis.size()];
                    if (lab.admin("POST", "/v1/subscribers/" + imsi + "/vectors", json::object(), core).status != 200) {
                        ++vector_failures;
                    }
                }
            });
        }
        for (auto& t : threads) t.join();
        const double secs = std::chrono::duration<double>(Clock::now() - v0).count();
        if (vector_failures > 0) throw std::runtime_error("vector requests failed");
        print("backend.vectors_per_s", kClients * per_client / secs, "1/s");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_backend: %s\n", e.what());
        return 1;
    }
    return 0;
}
