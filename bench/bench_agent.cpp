// Agent footprint benchmark: start-up time, idle and peak resident memory,
// stripped binary size of credprov-agentd. Prints "BENCH <name> <value> <unit>".
//
//   bench_agent [--short]
//
// Start-up is measured from fork to the listening socket's appearance (the
// daemon creates it last, just before it logs "ready"); the median of the
// runs is printed. Peak RSS is VmHWM after a complete provisioning session.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "agent_lab.hpp"
#include "bench_figures.hpp"

using credprov::bench::print;

using namespace credprov;
using namespace credprov::testing;

namespace {

long proc_status_kib(pid_t pid, const std::string& field) {
    std::ifstream in("/proc/" + std::to_string(pid) + "/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(field + ":", 0) == 0) return std::strtol(line.c_str() + field.size() + 1, nullptr, 10);
    }
    return -1;
}


}  // namespace

int main(int argc, char** argv) {
    int runs = 20;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--short") runs = 3;
        else if (a == "-h" || a == "--help") {
            std::puts("usage: bench_agent [--short]\nPrints BENCH lines for credprov-agentd's footprint.");
            return 0;
        } else {
            std::fprintf(stderr, "bench_agent: unknown argument '%s' (try --help)\n", a.c_str());
            return 2;
        }
    }
    try {
        AgentLab lab;
        std::vector<double> startup;
        long idle = 0;
        long peak = 0;
        for (int i = 0; i < runs; ++i) {
            std::filesystem::remove(lab.socket);
            const auto t0 = std::chrono::steady_clock::now();
            auto agent = lab.start();
            startup.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
            if (i == runs - 1) {
                idle = proc_status_kib(agent->pid(), "VmRSS");
                auto o = lab.session(Operation::deliver_sealed);
                if (!o.first) {
                    std::fprintf(stderr, "bench_agent: provisioning failed: %s\n", o.first.error().message.c_str());
                    return 1;
                }
                peak = proc_status_kib(agent->pid(), "VmHWM");
            }
            agent->signal(SIGTERM);
            agent->wait();
        }
        std::sort(startup.begin(), startup.end());
        const std::string stripped = (lab.dir / "agentd.stripped").string();
        auto strip = run_command({"/usr/bin/strip", "-o", stripped, CREDPROV_AGENTD});
        if (strip.exit_code != 0) {
            std::fprintf(stderr, "bench_agent: strip failed\n");
            return 1;
        }
        print("agent.startup_ms", startup[startup.size() / 2], "ms");
        print("agent.rss_kib.idle", static_cast<double>(idle), "KiB");
        print("agent.rss_kib.peak", static_cast<double>(peak), "KiB");
        print("agent.binary_kib", static_cast<double>(std::filesystem::file_size(stripped)) / 1024.0, "KiB");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_agent: %s\n", e.what());
        return 1;
    }
    return 0;
}
