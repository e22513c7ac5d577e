// credprov-agentd: the device's daemon. Serves provisioning sessions over the
// stream transport (TCP or Unix socket) and, in builds with BLE, as a GATT
// peripheral through bluetoothd; one session at a time, on top of the
// protected store.
//
// Never logs a secret: log lines carry device ids, bundle ids, counters,
// peer addresses and error causes only. Core dumps are disabled at start,
// since a session's keys live in process memory.
#include <poll.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <optional>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/rotating_file_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "credprov/agent/agent_host.hpp"
#include "credprov/agent/config.hpp"
#include "credprov/agent/lifecycle.hpp"
#include "credprov/agent/store.hpp"
#include "credprov/agent/tpm_counter.hpp"
#include "credprov/agent/version.hpp"
#include "credprov/protocol/device_session.hpp"
#include "credprov/transport/stream_transport.hpp"
#include "credprov/transport/ble/gatt_profile.hpp"
#include "credprov/transport/ble/peripheral_module.hpp"
#ifdef CREDPROV_HAVE_NFC
#include "credprov/transport/nfc/libnfc_device.hpp"
#include "credprov/transport/nfc/target_listener.hpp"
#endif

namespace {

using namespace credprov;
using namespace credprov::agent;
using namespace std::chrono_literals;

volatile std::sig_atomic_t g_stop = 0;
volatile std::sig_atomic_t g_reload = 0;

extern "C" void on_stop(int) { g_stop = 1; }
extern "C" void on_reload(int) { g_reload = 1; }

std::uint64_t wall_clock() { return static_cast<std::uint64_t>(std::time(nullptr)); }

void harden_process() {
    // Keys live in memory during sessions: no core dumps, no ptrace by peers.
    rlimit none{0, 0};
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    umask(077);
}

void set_level(const std::string& level) { spdlog::set_level(spdlog::level::from_str(level)); }

// Exit codes, documented in target_agent/README.md.
enum Exit : int { ok = 0, usage = 2, config = 3, store = 4, listen = 5, locked = 6 };

// One provisioning session on one accepted connection.
void serve_session(Transport& link, const std::string& peer, Store& store, AgentHost& host, std::chrono::seconds timeout,
                   TransportType type) {
    const AgentState& state = store.state();
    const DeviceIdentity identity = identity_from_state(state);
    const DeviceTrust trust = state.trust;
    auto code = SetupCode::parse(std::string_view(reinterpret_cast<const char*>(state.setup_code.data()),
                                                  state.setup_code.size()));
    if (!code) {
        spdlog::error("stored setup code is invalid: {}", code.error().message);
        return;
    }
    DeviceSession session(identity, trust, host, *code, type);
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    int exchanged = 0;
    while (!g_stop) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left <= 0ms) {
            spdlog::warn("session from {}: timed out after {} messages", peer, exchanged);
            return;
        }
        auto msg = receive(link, std::min<std::chrono::milliseconds>(left, 250ms));
        if (!msg) {
            if (msg.error().code == ErrorCode::timeout) continue;
            if (msg.error().code == ErrorCode::closed) {
                spdlog::info("session from {}: closed by peer after {} messages", peer, exchanged);
            } else {
                spdlog::warn("session from {}: link failed: {}", peer, msg.error().message);
            }
            return;
        }
        ++exchanged;
        auto step = session.handle(*msg);
        if (!step.reply.empty()) {
            if (auto s = link.send(step.reply); !s) {
                spdlog::warn("session from {}: could not answer: {}", peer, s.error().message);
                return;
            }
        }
        if (step.error) {
            spdlog::warn("session from {}: refused: {} ({})", peer, step.error->message, to_string(step.error->code));
            return;
        }
        if (session.state() == DeviceSession::State::ready && exchanged == 2) {
            const auto& rec = store.state().record;
            if (rec.credential) {
                spdlog::info("session from {}: authorised; credential {} held, owner counter {}", peer,
                             rec.credential->id.to_string(), rec.owner_counter);
            } else {
                spdlog::info("session from {}: authorised; no credential held, owner counter {}", peer,
                             rec.owner_counter);
            }
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"credprov-agentd: the credprov device agent.\n"
                 "Keeps the device's identity and credential in an encrypted store and\n"
                 "answers provisioning sessions on the configured addresses."};
    std::string config_path;
    std::string state_dir;
    std::vector<std::string> listen;
    std::string log_level;
    bool version = false;
    app.add_option("-c,--config", config_path, std::string("configuration file (TOML); default ") + kDefaultConfigPath +
                                                   " if it exists");
    app.add_option("--state-dir", state_dir, "directory of the protected store (overrides agent.state_dir)");
    app.add_option("-l,--listen", listen, "address to serve, repeatable: tcp://HOST:PORT, unix:/PATH or ble:hciN");
    app.add_option("--log-level", log_level, "trace, debug, info, warn or error")
        ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error"}));
    app.add_flag("--version", version, "print the version and exit");
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? Exit::ok : Exit::usage;
    }
    if (version) {
        std::printf("credprov-agentd %s\n", kAgentVersion);
        return Exit::ok;
    }

    const auto started = std::chrono::steady_clock::now();
    harden_process();
    auto logger = spdlog::stderr_logger_st("agentd");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("credprov-agentd[%P]: %l: %v");

    AgentConfig cfg;
    if (config_path.empty() && std::filesystem::exists(kDefaultConfigPath)) config_path = kDefaultConfigPath;
    if (!config_path.empty()) {
        auto loaded = load_config(config_path);
        if (!loaded) {
            spdlog::error("configuration: {}", loaded.error().message);
            return Exit::config;
        }
        cfg = std::move(*loaded);
    }
    if (!state_dir.empty()) cfg.state_dir = state_dir;
    if (!listen.empty()) cfg.listen = listen;
    if (!log_level.empty()) cfg.log_level = log_level;
    set_level(cfg.log_level);

    std::vector<transport::Address> addresses;
    std::string ble_adapter;  // empty: no BLE
    std::optional<std::string> nfc_connstring;  // none: no NFC; "": libnfc's default device
    for (const auto& a : cfg.listen) {
        if (a.rfind("nfc:", 0) == 0) {
#ifdef CREDPROV_HAVE_NFC
            auto c = transport::nfc::parse_nfc_address(a);
            if (!c) {
                spdlog::error("configuration: listen address '{}': {}", a, c.error().message);
                return Exit::config;
            }
            if (nfc_connstring) {
                spdlog::error("configuration: listen has more than one nfc: entry; one chip is served");
                return Exit::config;
            }
            nfc_connstring = *c;
            continue;
#else
            spdlog::error("configuration: listen address '{}': this build has no NFC support (-DCREDPROV_WITH_NFC=ON)", a);
            return Exit::config;
#endif
        }
        if (a.rfind("ble:", 0) == 0) {
            auto adapter = transport::ble::parse_listen_adapter(a);
            if (!adapter) {
                spdlog::error("configuration: listen address '{}': {}", a, adapter.error().message);
                return Exit::config;
            }
            if (!ble_adapter.empty()) {
                spdlog::error("configuration: listen has more than one ble: entry; one adapter is served");
                return Exit::config;
            }
            ble_adapter = *adapter;
            continue;
        }
        auto addr = transport::Address::parse(a);
        if (!addr) {
            spdlog::error("configuration: listen address '{}': {}", a, addr.error().message);
            return Exit::config;
        }
        addresses.push_back(*addr);
    }

    std::error_code ec;
    std::filesystem::create_directories(cfg.state_dir, ec);
    // One agent per store: an exclusive lock that agentctl's writers respect.
    const std::string lock_path = (cfg.state_dir / "agent.lock").string();
    const int lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0 || ::flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
        spdlog::error("store {} is in use by another credprov-agentd or credprov-agentctl", cfg.state_dir.string());
        return Exit::locked;
    }

    // Besides stderr (journald), the same lines go to <state_dir>/agent.log
    // (1 MiB, two rotations, 0600 under the process umask): devices without
    // journald keep their history, and `credprov-agentctl logs` shows it.
    try {
        auto file = std::make_shared<spdlog::sinks::rotating_file_sink_st>((cfg.state_dir / "agent.log").string(),
                                                                           std::size_t{1} << 20, 2);
        file->set_pattern("%Y-%m-%dT%H:%M:%S%z %l: %v");
        logger->sinks().push_back(file);
        // Every line reaches the file at once: `logs` and a crash see it
        // (the agent logs a few lines per session, not a stream).
        logger->flush_on(spdlog::level::trace);
    } catch (const spdlog::spdlog_ex& e) {
        spdlog::warn("no log file in {}: {}", cfg.state_dir.string(), e.what());
    }

    // The store's hardware monotonic counter ([tpm]): its NV index is defined
    // only when the store is created here (first start), never for an
    // existing store. Declared before the store, which refers to it.
    auto first_start = Store::exists(cfg.state_dir);
    if (!first_start) {
        spdlog::error("store: {}", first_start.error().message);
        return Exit::store;
    }
    auto counter = open_configured_counter(cfg, /*define_if_missing=*/!*first_start);
    if (!counter) {
        spdlog::error("store: {}", counter.error().message);
        return Exit::store;
    }
    if (cfg.tpm) {
        spdlog::info("rollback protection: TPM NV counter 0x{:08x} at {}", cfg.tpm->nv_index, cfg.tpm->tcti);
    }
    auto store = open_or_create_store(cfg, /*log=*/true, *counter ? **counter : no_counter());
    if (!store) {
        spdlog::error("store: {}", store.error().message);
        return Exit::store;
    }
    // Only what the configuration states can differ: a configuration without
    // [trust] (the usual case after factory-init --root) says nothing.
    const auto& installed = store->state().trust;
    if ((cfg.trust.provisioning_root && !(installed.provisioning_root == cfg.trust.provisioning_root)) ||
        (cfg.trust.lab_trust_on_first_use && !installed.lab_trust_on_first_use)) {
        spdlog::warn("trust settings in the configuration differ from those installed at factory-init; "
                     "the store's are used");
    }

    std::vector<transport::StreamListener> listeners;
    for (const auto& a : addresses) {
        auto l = transport::StreamListener::listen(a);
        if (!l) {
            spdlog::error("cannot listen on {}: {}", a.to_string(), l.error().message);
            return Exit::listen;
        }
        listeners.push_back(std::move(*l));
    }

    struct sigaction sa {};
    sa.sa_handler = on_stop;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    sa.sa_handler = on_reload;
    sigaction(SIGHUP, &sa, nullptr);
    std::signal(SIGPIPE, SIG_IGN);

    const DeviceIdentity identity = identity_from_state(store->state());
    std::optional<AgentHost> host;
    host.emplace(*store, cfg.backoff, wall_clock, std::string("credprov-agentd ") + kAgentVersion,
                 make_diagnostic_runner(cfg, *store), cfg.consent);
    std::string where;
    for (const auto& l : listeners) where += (where.empty() ? "" : ", ") + l.bound_address().to_string();
    // The GATT peripheral: advertises while the device is unprovisioned (or
    // when its settings ask for it), re-registers whenever bluetoothd or the
    // adapter comes back.
    std::unique_ptr<transport::ble::BlePeripheral> ble;
    std::optional<std::chrono::steady_clock::time_point> last_session_end;
    auto advertise_wanted = [&] {
        const auto& rec = store->state().record;
        const bool grace = last_session_end && std::chrono::steady_clock::now() - *last_session_end <
                                                   std::chrono::seconds(cfg.ble.advertise_after_provisioning_s);
        return !rec.credential.has_value() || rec.settings.advertise_when_provisioned.value_or(false) || grace;
    };
    std::string ble_problem;
    if (!ble_adapter.empty()) {
        transport::ble::PeripheralOptions po;
        po.adapter = ble_adapter;
        po.device = identity.id;
        po.modes = static_cast<std::uint8_t>(kModeSealed | (store->state().trust.field_mode_allowed ? kModeField : 0));
        po.provisioned = store->state().record.credential.has_value();
        po.advertise = advertise_wanted();
        po.power_on_adapter = cfg.ble.power_on_adapter;
        po.trace = [](const std::string& line) { spdlog::debug("{}", line); };
        auto p = transport::ble::load_peripheral(po);
        if (!p) {
            spdlog::error("{}", p.error().message);
            return Exit::listen;
        }
        ble = std::move(*p);
        where += (where.empty() ? "" : ", ") + std::string("ble:") + ble_adapter;
        spdlog::info("ble: GATT peripheral on {} (discriminator {:04x})", ble_adapter, transport::ble::discriminator_of(identity.id));
    }

#ifdef CREDPROV_HAVE_NFC
    // The NFC chip waits in target mode for a reader on its own thread.
    std::unique_ptr<transport::nfc::NfcTargetListener> nfc;
    std::string nfc_problem;
    if (nfc_connstring) {
        auto l = transport::nfc::NfcTargetListener::open(*nfc_connstring);
        if (!l) {
            spdlog::error("{}", l.error().message);
            return Exit::listen;
        }
        nfc = std::move(*l);
        where += (where.empty() ? "" : ", ") + std::string("nfc:") + *nfc_connstring;
        spdlog::info("nfc: waiting for a reader on {}", nfc->name());
    }
#endif

    const auto ms = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started);
    spdlog::info("device {} ready in {:.1f} ms; listening on {}", identity.id.to_string(),
                 static_cast<double>(ms.count()) / 1000.0, where);


    std::vector<pollfd> fds;
    for (const auto& l : listeners) fds.push_back(pollfd{l.fd(), POLLIN, 0});
    if (ble) fds.push_back(pollfd{ble->fd(), POLLIN, 0});
#ifdef CREDPROV_HAVE_NFC
    if (nfc) fds.push_back(pollfd{nfc->fd(), POLLIN, 0});
#endif
    while (!g_stop) {
        if (g_reload) {
            g_reload = 0;
            if (!config_path.empty()) {
                auto loaded = load_config(config_path);
                if (!loaded) {
                    spdlog::error("reload: {}; keeping the running configuration", loaded.error().message);
                } else {
                    cfg.log_level = log_level.empty() ? loaded->log_level : log_level;
                    cfg.session_timeout_s = loaded->session_timeout_s;
                    cfg.backoff = loaded->backoff;
                    set_level(cfg.log_level);
                    cfg.consent = loaded->consent;
                    host.emplace(*store, cfg.backoff, wall_clock, std::string("credprov-agentd ") + kAgentVersion,
                                 make_diagnostic_runner(cfg, *store), cfg.consent);
                    spdlog::info("configuration reloaded");
                }
            }
        }
        if (ble) {
            if (ble->maintain()) spdlog::info("ble: registered with bluetoothd on {}{}", ble_adapter, ble->advertising() ? ", advertising" : "");
            if (ble->problem() != ble_problem) {
                ble_problem = ble->problem();
                if (!ble_problem.empty()) spdlog::warn("ble: {} (retrying)", ble_problem);
            }
        }
        for (auto& f : fds) f.revents = 0;
        const int n = ::poll(fds.data(), fds.size(), 250);
        if (ble) {
            ble->pump(std::chrono::milliseconds(0));
            if (auto session = ble->take_session()) {
                spdlog::info("session on ble:{}: started", ble_adapter);
                const bool pause = cfg.ble.stop_advertising_in_session;
                if (pause) ble->set_advertising(false);
                serve_session(*session, "ble:" + ble_adapter, *store, *host, std::chrono::seconds(cfg.session_timeout_s),
                              TransportType::ble);
                ble->end_session();
                last_session_end = std::chrono::steady_clock::now();
                ble->set_provisioned(store->state().record.credential.has_value());
                ble->set_advertising(advertise_wanted());
            } else if (ble->advertising() && !advertise_wanted()) {
                ble->set_advertising(false);  // the grace after provisioning is over
                spdlog::info("ble: provisioned; advertising stopped");
            }
        }
#ifdef CREDPROV_HAVE_NFC
        if (nfc) {
            if (nfc->problem() != nfc_problem) {
                nfc_problem = nfc->problem();
                if (!nfc_problem.empty()) spdlog::warn("{} (retrying)", nfc_problem);
                else spdlog::info("nfc: waiting for a reader on {}", nfc->name());
            }
            if (n > 0 && (fds.back().revents & POLLIN) != 0) {
                if (auto session = nfc->take_session()) {
                    spdlog::info("session on nfc:{}: started", *nfc_connstring);
                    serve_session(*session, "nfc:" + *nfc_connstring, *store, *host,
                                  std::chrono::seconds(cfg.session_timeout_s), TransportType::nfc);
                }
            }
        }
#endif
        if (n <= 0) continue;
        for (std::size_t i = 0; i < listeners.size() && !g_stop; ++i) {
            if ((fds[i].revents & POLLIN) == 0) continue;
            auto link = listeners[i].accept(0ms);
            if (!link) {
                if (link.error().code != ErrorCode::timeout) spdlog::warn("accept: {}", link.error().message);
                continue;
            }
            const std::string peer = listeners[i].bound_address().to_string();
            spdlog::info("session on {}: started", peer);
            serve_session(**link, peer, *store, *host, std::chrono::seconds(cfg.session_timeout_s), TransportType::tcp);
        }
    }
    spdlog::info("stopping");
    return Exit::ok;
}
