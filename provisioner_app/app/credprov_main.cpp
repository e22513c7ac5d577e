// credprov: the technician's command-line provisioner.
//
//   credprov enroll --backend URL --token cpe_...     register this tool's key
//   credprov provision --address ADDR (--label CP1:... | --device ID --code DIGITS)
//   credprov query     --address ADDR (--label ... | --device ID --code DIGITS)
//   credprov deprovision --device ID --reason TEXT     through the network only
//   credprov queue flush | queue status                receipts waiting for the backend
//   credprov history [--limit N]
//   credprov discover                                  (TCP/Unix devices are addressed directly)
//
// Addresses: tcp://host:port, unix:/path (ble: and nfc: arrive with their
// transports). --json prints one JSON object for scripts; otherwise plain
// sentences, and progress lines on a terminal. Exit codes: 0 done, 1 usage,
// 2 not enrolled or refused as provisioner, 3 backend unreachable or
// refused, 4 device unreachable or pairing failed, 5 device refused,
// 6 provisioned but the receipt is queued, 7 local storage.
// Never prints the setup code, keys, K or OPc.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include <CLI/CLI.hpp>

#include "credprov/provisioner/provisioning.hpp"

using namespace credprov;
using namespace credprov::provisioner;

namespace {

int finish(const FlowResult& r, bool json_out) {
    if (json_out) {
        json j{{"ok", r.outcome == Outcome::ok}, {"outcome", static_cast<int>(r.outcome)}, {"message", r.message}};
        j["details"] = r.details;
        std::cout << j.dump() << std::endl;
    } else if (r.outcome == Outcome::ok) {
        std::cout << r.message << std::endl;
    } else {
        std::cerr << "credprov: " << r.message << std::endl;
    }
    return static_cast<int>(r.outcome);
}

}  // namespace

int main(int argc, char** argv) {
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);  // the session keys live in memory
    CLI::App app{"credprov: provision cellular credentials into devices (technician's tool)."};
    app.require_subcommand(1);
    std::string home = default_home().string();
    bool json_out = false;
    app.add_option("--home", home, "folder of this provisioner's key, settings and journal (or CREDPROV_HOME)")->capture_default_str();
    app.add_flag("--json", json_out, "one JSON object on standard output, for scripts");

    auto* enroll_cmd = app.add_subcommand("enroll", "create this tool's key and enrol it with an admin-issued enrolment token");
    std::string backend_url, ca_file, token, name;
    enroll_cmd->add_option("--backend", backend_url, "backend base URL, e.g. https://hss.example.net:8443")->required();
    enroll_cmd->add_option("--token", token, "enrolment token from the operator's admin (cpe_...)")->required();
    enroll_cmd->add_option("--ca", ca_file, "PEM file of the CA that signed the backend's certificate");
    enroll_cmd->add_option("--name", name, "name to enrol under (default: the token's)");

    std::string address, label, device_text, code;
    auto add_target = [&](CLI::App* c) {
        c->add_option("--address", address, "device address: tcp://host:port or unix:/path")->required();
        c->add_option("--label", label, "the label's QR payload (CP1:...), instead of --device and --code");
        c->add_option("--device", device_text, "device id from the label");
        c->add_option("--code", code, "setup code from the label (or CREDPROV_SETUP_CODE)");
    };
    auto* provision_cmd = app.add_subcommand("provision", "pair with a device, deliver a sealed credential, activate it");
    add_target(provision_cmd);
    auto* query_cmd = app.add_subcommand("query", "pair with a device and show its identity and credential state");
    add_target(query_cmd);
    auto* deprovision_cmd = app.add_subcommand("deprovision", "deprovision a device through the network only");
    std::string reason;
    deprovision_cmd->add_option("--device", device_text, "device id")->required();
    deprovision_cmd->add_option("--reason", reason, "why (recorded in the operator's audit log)")->required();
    auto* queue_cmd = app.add_subcommand("queue", "receipts waiting to be posted to the backend");
    queue_cmd->require_subcommand(1);
    auto* flush_cmd = queue_cmd->add_subcommand("flush", "post every queued receipt");
    auto* status_cmd = queue_cmd->add_subcommand("status", "list queued receipts");
    auto* history_cmd = app.add_subcommand("history", "the local journal of operations and outcomes");
    std::size_t limit = 20;
    history_cmd->add_option("--limit", limit, "entries")->capture_default_str();
    auto* discover_cmd = app.add_subcommand("discover", "find devices nearby (BLE and NFC providers; TCP/Unix are addressed directly)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? 0 : static_cast<int>(Outcome::usage);
    }
    const bool tty = ::isatty(STDERR_FILENO) != 0 && !json_out;
    Progress progress = [&](int n, int of, const std::string& what) {
        if (tty) std::fprintf(stderr, "[%d/%d] %s\n", n, of, what.c_str());
    };

    auto ws = Workspace::open(home);
    if (!ws) return finish(FlowResult{Outcome::storage, ws.error().message, json::object()}, json_out);

    if (*enroll_cmd) return finish(enroll(*ws, backend_url, ca_file, token, name), json_out);
    if (*discover_cmd) {
        return finish(FlowResult{Outcome::usage,
                                 "no discovery provider in this build: address TCP/Unix devices with --address "
                                 "(BLE and NFC discovery arrive with their transports)",
                                 json::object()},
                      json_out);
    }
    if (*history_cmd) {
        auto h = ws->history(limit);
        if (!h) return finish(FlowResult{Outcome::storage, h.error().message, json::object()}, json_out);
        json items = json::array();
        for (const auto& op : *h) {
            items.push_back({{"id", op.id}, {"started_at", op.started_at}, {"kind", op.kind}, {"device_id", op.device_id},
                             {"state", op.state}, {"imsi", op.imsi}, {"detail", op.detail}});
            if (!json_out) {
                std::printf("%-22s %-11s %-26s %-9s %-15s %s\n", op.id.c_str(), op.kind.c_str(), op.device_id.c_str(),
                            op.state.c_str(), op.imsi.c_str(), op.detail.c_str());
            }
        }
        if (json_out) std::cout << json{{"ok", true}, {"items", items}}.dump() << std::endl;
        return 0;
    }
    if (*status_cmd) {
        auto p = ws->pending_receipts();
        if (!p) return finish(FlowResult{Outcome::storage, p.error().message, json::object()}, json_out);
        json items = json::array();
        for (const auto& r : *p) items.push_back({{"object_id", r.object_id}, {"device_id", r.device_id}, {"queued_at", r.queued_at}});
        return finish(FlowResult{Outcome::ok, std::to_string(p->size()) + " receipt(s) waiting", json{{"items", items}}}, json_out);
    }

    // Everything below needs the enrolled key and settings.
    auto settings = ws->settings();
    if (!settings) return finish(FlowResult{Outcome::storage, settings.error().message, json::object()}, json_out);
    if (settings->backend.empty() || !ws->has_key()) {
        return finish(FlowResult{Outcome::not_enrolled, "not enrolled: run 'credprov enroll --backend URL --token cpe_...' first",
                                 json::object()},
                      json_out);
    }
    auto key = ws->load_key();
    if (!key) return finish(FlowResult{Outcome::storage, key.error().message, json::object()}, json_out);
    Provisioner p(*ws, *settings, *key, progress);

    if (*flush_cmd) return finish(p.flush_queue(), json_out);
    if (*deprovision_cmd) {
        auto id = DeviceId::parse(device_text);
        if (!id) return finish(FlowResult{Outcome::usage, "--device must be a device id (26 base32 characters)", json::object()}, json_out);
        return finish(p.deprovision(*id, reason), json_out);
    }
    // provision / query: the target from the label or from --device/--code.
    Target t;
    t.address = address;
    if (!label.empty()) {
        auto payload = BootstrapPayload::parse(label);
        if (!payload) return finish(FlowResult{Outcome::usage, "--label: " + payload.error().message, json::object()}, json_out);
        t.device = payload->device;
        t.code = payload->code.reveal();
    } else {
        auto id = DeviceId::parse(device_text);
        if (!id) return finish(FlowResult{Outcome::usage, "give --label, or --device and --code", json::object()}, json_out);
        t.device = *id;
        t.code = code;
        if (t.code.empty()) {
            if (const char* env = std::getenv("CREDPROV_SETUP_CODE")) t.code = env;
        }
    }
    const FlowResult r = *provision_cmd ? p.provision(t) : p.query(t);
    sodium_memzero(t.code.data(), t.code.size());
    return finish(r, json_out);
}
