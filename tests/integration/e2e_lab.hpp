// The end-to-end fixture shared by the e2e test files: separate processes
// (credprov-backend, credprov-agentd, the credprov CLI) on loopback.
#pragma once

#include <doctest/doctest.h>

#include <csignal>
#include <memory>
#include <string>
#include <vector>

#include "backend_lab.hpp"
#include "scratch.hpp"

namespace credprov::testing {

using namespace std::chrono_literals;

inline int free_port() { return free_loopback_port(); }
inline bool port_open(int port) { return loopback_accepts(port); }

// One backend on SQLite, one factory-initialised agent on TCP loopback listed
// in the inventory, and one technician enrolled with the CLI. Test support.
struct E2ELab {
    BackendLab lab{Storage::sqlite};
    std::filesystem::path home = lab.dir / "technician";
    std::filesystem::path state = lab.dir / "device";
    std::string device;
    std::string code;
    int agent_port = free_port();
    std::unique_ptr<AgentProcess> agentd;
    // Set before start_agent(): the agent listens there instead of on TCP
    // (e.g. nfc:pn532_uart:<simulated chip>); started means "ready" in its log.
    std::vector<std::string> agent_listen;

    // operations: what the technician is enrolled for; factory_flags: extra
    // credprov-agentctl factory-init options (e.g. --field-mode).
    // inventory: false leaves the device out of the backend's inventory
    // (import_device() adds it later).
    explicit E2ELab(std::vector<std::string> operations = {"query", "deliver-sealed", "deprovision"},
                    std::vector<std::string> factory_flags = {}, std::vector<std::string> listen = {}, bool inventory = true)
        : agent_listen(std::move(listen)) {
        std::vector<std::string> init{CREDPROV_AGENTCTL, "--state-dir", state.string(), "factory-init", "--root",
                                      to_hex(lab.root_public())};
        init.insert(init.end(), factory_flags.begin(), factory_flags.end());
        REQUIRE(run_command(init).exit_code == 0);
        const json status = this->status();
        device = status["device_id"].get<std::string>();
        code = field_of(run_command({CREDPROV_AGENTCTL, "--state-dir", state.string(), "label"}).out, "setup code");
        if (inventory) import_device();
        auto enr = lab.admin("POST", "/v1/enrolment-tokens",
                             json{{"name", "e2e technician"}, {"operations", operations}});
        REQUIRE(enr.status == 201);
        auto enrolled = credprov({"enroll", "--backend", url(), "--token", enr.body["token"].get<std::string>()});
        REQUIRE(enrolled.exit_code == 0);
        start_agent();
    }
    void import_device() {
        const json status = this->status();
        json entry{{"device_id", device},
                   {"identity_key", status["identity_key"]},
                   {"box_key", status["box_key"]},
                   {"box_signature", status["box_signature"]}};
        REQUIRE(lab.admin("POST", "/v1/inventory", json{{"devices", json::array({entry})}}).status == 200);
    }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(lab.port); }
    json status() const {
        auto s = run_command({CREDPROV_AGENTCTL, "--state-dir", state.string(), "status", "--json"});
        REQUIRE(s.exit_code == 0);
        return json::parse(s.out);
    }
    void start_agent() {
        const auto log = lab.dir / "agentd.log";
        std::vector<std::string> args{"--state-dir", state.string()};
        if (agent_listen.empty()) agent_listen_tcp(args);
        for (const auto& a : agent_listen) {
            args.push_back("--listen");
            args.push_back(a);
        }
        std::error_code ec;
        const auto log_before = std::filesystem::exists(log) ? std::filesystem::file_size(log, ec) : 0;
        agentd = std::make_unique<AgentProcess>(CREDPROV_AGENTD, args, log);
        for (int i = 0; i < 500; ++i) {
            if (agent_listen.empty() ? port_open(agent_port)
                                     : read_file(log).find("ready in", log_before) != std::string::npos) {
                return;
            }
            std::this_thread::sleep_for(10ms);
        }
        FAIL("credprov-agentd did not start: " << read_file(log));
    }
    void agent_listen_tcp(std::vector<std::string>& args) const {
        args.push_back("--listen");
        args.push_back("tcp://127.0.0.1:" + std::to_string(agent_port));
    }
    void stop_agent() {
        agentd->signal(SIGTERM);
        CHECK(agentd->wait() == 0);
        agentd.reset();
    }
    CommandResult credprov(std::vector<std::string> args) const {
        std::vector<std::string> argv{CREDPROV_CLI, "--home", home.string(), "--json"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_command(argv);
    }
    std::vector<std::string> target(int port) const {
        return {"--address", "tcp://127.0.0.1:" + std::to_string(port), "--device", device, "--code", code};
    }
    // credprov <command> <target on the agent's port> <extra...>
    CommandResult on_device(const std::string& command, std::vector<std::string> extra = {}) const {
        std::vector<std::string> args{command};
        for (auto& a : target(agent_port)) args.push_back(a);
        args.insert(args.end(), extra.begin(), extra.end());
        return credprov(args);
    }
    CommandResult provision(int port) const {
        return credprov({"provision", "--address", "tcp://127.0.0.1:" + std::to_string(port), "--device", device, "--code", code});
    }
    // Exactly one active subscriber at the backend, and the device holds it.
    void check_agreement() {
        auto subs = lab.admin("GET", "/v1/subscribers?state=active&device=" + device);
        REQUIRE(subs.status == 200);
        REQUIRE(subs.body["items"].size() == 1);
        stop_agent();
        const json s = status();
        CHECK(s["provisioned"] == true);
        CHECK(s["imsi"] == subs.body["items"][0]["imsi"]);
        start_agent();
    }
};

}  // namespace credprov::testing
