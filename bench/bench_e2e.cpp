// End-to-end provisioning time, every part real: a credprov-backend on
// SQLite, credprov-agentd processes on Unix sockets, and the provisioner
// library (what the credprov CLI runs) in this process.
//   e2e.provision_ms   connect to active subscriber, one device at a time, median
//   e2e.batch100_s     100 devices provisioned in parallel (8 technicians' sessions at a time)
// Prints "BENCH <name> <value> <unit>".
//
//   bench_e2e [--short]
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <thread>

#include "backend_lab.hpp"
#include "credprov/provisioner/provisioning.hpp"
#include "bench_figures.hpp"

using credprov::bench::print;

using namespace credprov;
using namespace credprov::testing;
using namespace credprov::provisioner;
using Clock = std::chrono::steady_clock;

namespace {

struct Device {
    std::filesystem::path state, socket;
    std::string id, code;
    std::unique_ptr<AgentProcess> agentd;
};


std::vector<std::unique_ptr<Device>> make_devices(BackendLab& lab, int n, int offset) {
    std::vector<std::unique_ptr<Device>> out;
    json inventory = json::array();
    for (int i = 0; i < n; ++i) {
        auto d = std::make_unique<Device>();
        d->state = lab.dir / ("dev" + std::to_string(offset + i));
        d->socket = lab.dir / ("dev" + std::to_string(offset + i) + ".sock");
        if (run_command({CREDPROV_AGENTCTL, "--state-dir", d->state.string(), "factory-init", "--root", to_hex(lab.root_public())})
                .exit_code != 0) {
            throw std::runtime_error("factory-init failed");
        }
        const json s = json::parse(run_command({CREDPROV_AGENTCTL, "--state-dir", d->state.string(), "status", "--json"}).out);
        d->id = s["device_id"].get<std::string>();
        d->code = field_of(run_command({CREDPROV_AGENTCTL, "--state-dir", d->state.string(), "label"}).out, "setup code");
        inventory.push_back({{"device_id", d->id}, {"identity_key", s["identity_key"]}, {"box_key", s["box_key"]},
                             {"box_signature", s["box_signature"]}});
        d->agentd = std::make_unique<AgentProcess>(
            CREDPROV_AGENTD, std::vector<std::string>{"--state-dir", d->state.string(), "--listen", "unix:" + d->socket.string()},
            lab.dir / "agents.log");
        out.push_back(std::move(d));
        if (inventory.size() == 100 || i + 1 == n) {
            if (lab.admin("POST", "/v1/inventory", json{{"devices", inventory}}).status != 200) throw std::runtime_error("inventory");
            inventory = json::array();
        }
    }
    for (auto& d : out) {
        if (!d->agentd->wait_for_socket(d->socket, std::chrono::seconds(10))) throw std::runtime_error("agentd did not start");
    }
    return out;
}

}  // namespace

int main(int argc, char** argv) {
    int single = 50, batch = 100;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--short") single = 3, batch = 6;
        if (a == "--help" || a == "-h") {
            std::puts("usage: bench_e2e [--short]\nPrints BENCH lines for end-to-end provisioning time.");
            return 0;
        }
    }
    try {
        BackendLab lab(Storage::sqlite);
        const auto key = crypto::generate_signing_key();
        lab.enrol(key, {"query", "deliver-sealed"});
        auto ws = Workspace::open(lab.dir / "technician");
        if (!ws) throw std::runtime_error(ws.error().message);
        Settings settings;
        settings.backend = "http://127.0.0.1:" + std::to_string(lab.port);

        auto one = make_devices(lab, single, 0);
        std::vector<double> ms;
        for (auto& d : one) {
            Provisioner p(*ws, settings, key);
            const auto t0 = Clock::now();
            auto r = p.provision(Target{*DeviceId::parse(d->id), d->code, "unix:" + d->socket.string()});
            const auto t1 = Clock::now();
            if (r.outcome != Outcome::ok) throw std::runtime_error("provisioning failed: " + r.message);
            ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        }
        std::sort(ms.begin(), ms.end());
        print("e2e.provision_ms", ms[ms.size() / 2], "ms");
        one.clear();

        auto many = make_devices(lab, batch, single);
        std::atomic<int> next{0}, failures{0};
        const auto b0 = Clock::now();
        std::vector<std::thread> workers;
        for (int w = 0; w < 8; ++w) {
            workers.emplace_back([&] {
                for (int i = next++; i < batch; i = next++) {
                    auto& d = *many[static_cast<std::size_t>(i)];
                    auto wsp = Workspace::open(lab.dir / ("tech-" + std::to_string(i)));
                    Provisioner p(*wsp, settings, key);
                    auto r = p.provision(Target{*DeviceId::parse(d.id), d.code, "unix:" + d.socket.string()});
                    if (r.outcome != Outcome::ok) ++failures;
                }
            });
        }
        for (auto& t : workers) t.join();
        const double secs = std::chrono::duration<double>(Clock::now() - b0).count();
        if (failures > 0) throw std::runtime_error(std::to_string(failures.load()) + " batch provisionings failed");
        print(batch == 100 ? "e2e.batch100_s" : "e2e.batch_s", secs, "s");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_e2e: %s\n", e.what());
        return 1;
    }
    return 0;
}
