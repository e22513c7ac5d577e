// credprov: the technician's command-line provisioner.
//
//   credprov enroll --backend URL --token cpe_...     register this tool's key
//   credprov provision --address ADDR (--label CP1:... | --device ID --code DIGITS) [--field [--offline]]
//   credprov query     --address ADDR (--label ... | --device ID --code DIGITS)
//   credprov diagnose  --address ADDR TARGET [--run self-test,store-check,aka-self-check,transport-info]
//   credprov reconfigure --address ADDR TARGET [--label-text T] [--field-mode on|off] [--advertise on|off]
//                      [--attach-interval SECONDS]
//   credprov deprovision --device ID --reason TEXT     through the network only
//   credprov pool fetch --count N [--device ID ...] [--devices-file F] | pool status | pool return
//   credprov queue flush | queue status                receipts waiting for the backend (the sync)
//   credprov history [--limit N]
//   credprov discover [--ble] [--adapter hciN] [--seconds S]   BLE devices nearby
//


// sentences, and progress lines on a terminal. Exit codes: 0 done, 1 usage,
// 2 not enrolled or refused as provisioner, 3 backend unreachable or
// refused, 4 device unreachable or pairing failed, 5 device refused,
// 6 provisioned but the receipt is queued, 7 local storage.
// Never prints the setup code, keys, K or OPc.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

#include <CLI/CLI.hpp>

#include <chrono>
#include <set>

#include "credprov/provisioner/provisioning.hpp"
#include "credprov/version.hpp"
#ifdef CREDPROV_HAVE_NFC
#include "credprov/transport/nfc/libnfc_device.hpp"
#endif
#ifdef CREDPROV_HAVE_BLE
#include "credprov/transport/ble/central.hpp"
#include "credprov/transport/ble/gatt_profile.hpp"
#endif

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
    app.set_version_flag("--version", std::string("credprov ") + credprov::kVersion);

    auto* enroll_cmd = app.add_subcommand("enroll", "create this tool's key and enrol it with an admin-issued enrolment token");
    std::string backend_url, ca_file, token, name;
    enroll_cmd->add_option("--backend", backend_url, "backend base URL, e.g. https://hss.example.net:8443")->required();
    enroll_cmd->add_option("--token", token,
                           "enrolment token from the operator's admin (cpe_...; or CREDPROV_ENROLMENT_TOKEN, which keeps it out of "
                           "the process list)");
    enroll_cmd->add_option("--ca", ca_file, "PEM file of the CA that signed the backend's certificate");
    enroll_cmd->add_option("--name", name, "name to enrol under (default: the token's)");

    std::string address, label, device_text, code;
    auto add_target = [&](CLI::App* c) {
        c->add_option("--address", address, "device address: tcp://host:port, unix:/path, ble:[<device id>][@hciN] or nfc:[<libnfc connstring>]")->required();
        c->add_option("--label", label, "the label's QR payload (CP1:...), or nfc:[<connstring>] to read it from the NFC label (Type 4 tag) held to that reader; instead of --device and --code");
        c->add_option("--device", device_text, "device id from the label");
        c->add_option("--code", code, "setup code from the label (or CREDPROV_SETUP_CODE)");
    };
    auto* provision_cmd = app.add_subcommand("provision", "pair with a device, deliver a credential, activate it");
    add_target(provision_cmd);
    bool field = false, offline = false;
    provision_cmd->add_flag("--field", field, "field mode: an authorisation from the local pool; the device generates its keys");
    provision_cmd->add_flag("--offline", offline, "with --field: do not contact the backend; the receipt waits for 'queue flush'")
        ->needs(provision_cmd->get_option("--field"));
    auto* query_cmd = app.add_subcommand("query", "pair with a device and show its identity, credential state and settings");
    add_target(query_cmd);
    auto* diagnose_cmd = app.add_subcommand("diagnose", "run the device's diagnostics over the link (owner-signed command)");
    add_target(diagnose_cmd);
    std::string run_list = "self-test,store-check,aka-self-check,transport-info";
    diagnose_cmd->add_option("--run", run_list, "comma-separated diagnostics")->capture_default_str();
    auto* reconfigure_cmd = app.add_subcommand("reconfigure", "change the device's settings over the link (owner-signed command)");
    add_target(reconfigure_cmd);
    std::string new_label, field_mode, advertise;
    std::uint64_t attach_interval = 0;
    reconfigure_cmd->add_option("--label-text", new_label, "free text the device shows in queries (1 to 32 characters)");
    reconfigure_cmd->add_option("--field-mode", field_mode, "allow offline field-mode provisioning")->check(CLI::IsMember({"on", "off"}));
    reconfigure_cmd->add_option("--advertise", advertise, "advertise over BLE once provisioned")->check(CLI::IsMember({"on", "off"}));
    reconfigure_cmd->add_option("--attach-interval", attach_interval, "seconds between the device's attach checks")
        ->check(CLI::Range(10, 7 * 24 * 3600));
    auto* pool_cmd = app.add_subcommand("pool", "field authorisations and device tokens fetched in advance for offline work");
    pool_cmd->require_subcommand(1);
    auto* pool_fetch_cmd = pool_cmd->add_subcommand("fetch", "reserve field authorisations and fetch tokens for the listed devices");
    std::int64_t pool_count = 0;
    std::vector<std::string> pool_devices;
    std::string devices_file;
    pool_fetch_cmd->add_option("--count", pool_count, "field authorisations to reserve (one per device to provision)");
    pool_fetch_cmd->add_option("--device", pool_devices, "a device id to fetch a field token for (repeatable)");
    pool_fetch_cmd->add_option("--devices-file", devices_file, "file of device ids, one per line ('#' starts a comment)")
        ->check(CLI::ExistingFile);
    auto* pool_status_cmd = pool_cmd->add_subcommand("status", "what the local pool holds");
    auto* pool_return_cmd = pool_cmd->add_subcommand("return", "hand every unused authorisation back to the backend");
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
    auto* discover_cmd = app.add_subcommand("discover", "find credprov devices nearby over BLE (TCP/Unix devices are addressed directly)");
    bool discover_ble = true;
    std::string adapter = "hci0";
    double seconds = 5;
    discover_cmd->add_flag("--ble", discover_ble, "scan over BLE (the default and, for now, the only discovery provider)");
    discover_cmd->add_option("--adapter", adapter, "Bluetooth adapter")->capture_default_str();
    discover_cmd->add_option("--seconds", seconds, "how long to scan")->check(CLI::Range(0.5, 120.0))->capture_default_str();

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

    if (*enroll_cmd) {
        if (token.empty()) {
            if (const char* env = std::getenv("CREDPROV_ENROLMENT_TOKEN")) token = env;
        }
        if (token.empty()) {
            return finish(FlowResult{Outcome::usage, "give the enrolment token: --token or CREDPROV_ENROLMENT_TOKEN", json::object()},
                          json_out);
        }
        const FlowResult r = enroll(*ws, backend_url, ca_file, token, name);
        sodium_memzero(token.data(), token.size());
        return finish(r, json_out);
    }
    if (*discover_cmd) {
#ifdef CREDPROV_HAVE_BLE
        (void)discover_ble;
        if (!transport::ble::valid_adapter_name(adapter)) {
            return finish(FlowResult{Outcome::usage, "--adapter must be hci0..hci99", json::object()}, json_out);
        }
        std::set<std::string> shown;
        auto found = transport::ble::discover(
            transport::ble::CentralOptions{adapter, true, {}}, std::chrono::milliseconds(static_cast<long>(seconds * 1000)),
            [&](const transport::ble::DiscoveredDevice& d) {
                if (json_out || !shown.insert(d.object_path).second) return;
                char disc[8];
                std::snprintf(disc, sizeof disc, "%04x", d.discriminator);
                std::printf("%s  discriminator %s  rssi %d dBm  %s%s\n", d.address.c_str(), disc, d.rssi.value_or(0),
                            d.provisioned ? "provisioned" : "unprovisioned", d.name.empty() ? "" : ("  " + d.name).c_str());
                std::fflush(stdout);
            });
        if (!found) return finish(FlowResult{Outcome::link, found.error().message, json::object()}, json_out);
        json items = json::array();
        for (const auto& d : *found) {
            char disc[8];
            std::snprintf(disc, sizeof disc, "%04x", d.discriminator);
            items.push_back({{"address", d.address}, {"name", d.name}, {"discriminator", disc}, {"rssi", d.rssi.value_or(0)},
                             {"provisioned", d.provisioned}});
        }
        if (json_out) return finish(FlowResult{Outcome::ok, std::to_string(found->size()) + " device(s)", json{{"items", items}}}, true);
        std::printf("%zu credprov device(s) found on %s\n", found->size(), adapter.c_str());
        return 0;
#else
        (void)discover_ble;
        (void)seconds;
        return finish(FlowResult{Outcome::usage,
                                 "this build of credprov has no BLE support (configure with -DCREDPROV_WITH_BLE=ON); "
                                 "address TCP/Unix devices with --address",
                                 json::object()},
                      json_out);
#endif
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
    if (*pool_status_cmd) return finish(pool_status(*ws), json_out);
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
    if (*pool_return_cmd) return finish(p.return_pool(), json_out);
    if (*pool_fetch_cmd) {
        std::vector<DeviceId> ids;
        if (!devices_file.empty()) {
            std::ifstream in(devices_file);
            std::string line;
            int n = 0;
            while (std::getline(in, line)) {
                ++n;
                if (auto hash = line.find('#'); hash != std::string::npos) line.resize(hash);
                std::istringstream words(line);
                std::string word;
                if (!(words >> word)) continue;
                auto id = DeviceId::parse(word);
                if (!id) {
                    return finish(FlowResult{Outcome::usage, devices_file + ":" + std::to_string(n) + ": not a device id",
                                             json::object()},
                                  json_out);
                }
                ids.push_back(*id);
            }
        }
        for (const auto& text : pool_devices) {
            auto id = DeviceId::parse(text);
            if (!id) return finish(FlowResult{Outcome::usage, "--device " + text + ": not a device id", json::object()}, json_out);
            ids.push_back(*id);
        }
        return finish(p.fetch_pool(pool_count, ids), json_out);
    }
    // Commands over a device link: the target from the label or from --device/--code.
    Target t;
    t.address = address;
    if (label.rfind("nfc:", 0) == 0) {
        auto text = read_nfc_label(label);
        if (!text) {
            // A bad address or a build without NFC is a usage error; no tag is a link error.
            return finish(FlowResult{text.error().code == ErrorCode::malformed ? Outcome::usage : Outcome::link, "--label: " + text.error().message, json::object()},
                          json_out);
        }
        label = std::move(*text);
    }
    if (!label.empty()) {
        auto payload = BootstrapPayload::parse(label);
        sodium_memzero(label.data(), label.size());
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
    FlowResult r;
    if (*provision_cmd) {
        r = p.provision(t, ProvisionOptions{field ? Mode::field : Mode::sealed, offline});
    } else if (*diagnose_cmd) {
        std::vector<Diagnostic> which;
        std::istringstream names(run_list);
        std::string diag_name;
        while (std::getline(names, diag_name, ',')) {
            auto d = diagnostic_from_string(diag_name);
            if (!d) {
                sodium_memzero(t.code.data(), t.code.size());
                return finish(FlowResult{Outcome::usage,
                                         "--run: unknown diagnostic '" + diag_name +
                                             "' (known: self-test, store-check, aka-self-check, transport-info)",
                                         json::object()},
                              json_out);
            }
            which.push_back(*d);
        }
        r = p.diagnose(t, which);
    } else if (*reconfigure_cmd) {
        DeviceSettings s;
        if (!new_label.empty()) s.label = new_label;
        if (!field_mode.empty()) s.field_mode_allowed = field_mode == "on";
        if (!advertise.empty()) s.advertise_when_provisioned = advertise == "on";
        if (attach_interval != 0) s.attach_check_interval_s = attach_interval;
        r = p.reconfigure(t, s);
    } else {
        r = p.query(t);
    }
    sodium_memzero(t.code.data(), t.code.size());
    return finish(r, json_out);
}
