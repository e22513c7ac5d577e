// credprov-agentctl: local administration of a credprov device agent.
//
//   factory-init   create the device identity, setup code and trust anchors
//   status         show identity, owner, credential and attempt state
//   label          print the label (device id, setup code, QR) and write PNG/SVG
//   wipe           delete the credential locally (keeps identity and counters)
//   aka            answer an AKA challenge with the stored credential
//   attach         attach check against the operator's backend (network path)
//   notice         fetch and apply the device's deprovisioning notice
//   logs           the daemon's recent log lines (<state_dir>/agent.log)
//
// Commands that change the store take the same lock as credprov-agentd and
// refuse while it runs. Output never contains private keys, K or OPc; only
// `label` shows the setup code, because printing it is its purpose.
#include <sys/file.h>
#include <sys/resource.h>
#include <sodium.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <iostream>
#include <string>

#include <CLI/CLI.hpp>

#include "credprov/agent/agent_host.hpp"
#include "credprov/agent/attempt_policy.hpp"
#include "credprov/agent/config.hpp"
#include "credprov/agent/label.hpp"
#include "credprov/agent/lifecycle.hpp"
#include "credprov/agent/store.hpp"
#include "credprov/agent/tpm_counter.hpp"
#include "credprov/agent/version.hpp"
#include "credprov/aka/text_input.hpp"
#include "credprov/aka/usim.hpp"
#include "credprov/agent/network_path.hpp"
#include "credprov/transport/nfc/ndef.hpp"

namespace {

using namespace credprov;
using namespace credprov::agent;

// Exit codes, documented in target_agent/README.md.
enum Exit : int { ok = 0, failure = 1, usage = 2, config = 3, store = 4, locked = 6, exists = 7, sync_failure = 8,
                  not_authentic = 9, network = 10, deprovisioned = 11 };

int fail(int code, const std::string& message) {
    std::fprintf(stderr, "credprov-agentctl: %s\n", message.c_str());
    return code;
}

// Holds the store's lock for a writing command.
struct StoreLock {
    int fd{-1};
    ~StoreLock() {
        if (fd >= 0) ::close(fd);
    }
};

bool take_lock(const AgentConfig& cfg, StoreLock& lock) {
    std::error_code ec;
    std::filesystem::create_directories(cfg.state_dir, ec);
    lock.fd = ::open((cfg.state_dir / "agent.lock").c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    return lock.fd >= 0 && ::flock(lock.fd, LOCK_EX | LOCK_NB) == 0;
}

// The store's monotonic counter ([tpm]), opened only where it will be used:
// factory-init defines its NV index for a new store, the other commands need
// it for an existing one. Null (no_counter()) without [tpm], and when the
// command is refused before any counter is used (factory-init over an
// existing store, another command without a store): those errors come first.
Result<std::unique_ptr<MonotonicCounter>> store_counter(const AgentConfig& cfg, bool creating) {
    auto present = Store::exists(cfg.state_dir);
    if (!present) return present.error();
    if (*present == creating) return std::unique_ptr<MonotonicCounter>{};
    return open_configured_counter(cfg, /*define_if_missing=*/creating);
}

std::string json_escape(std::string_view s) {
    std::string out;
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        if (static_cast<unsigned char>(c) < 0x20) continue;
        out += c;
    }
    return out;
}

const char* owner_state_name(const AgentState& s) {
    if (s.trust.pinned_owner) return "pinned";
    return s.record.owner ? "owned" : "unowned";
}

int cmd_status(const AgentConfig& cfg, MonotonicCounter& counter, bool json) {
    auto st = Store::open(cfg.state_dir, cfg.effective_key_file(), real_fs(), counter);
    if (!st) return fail(Exit::store, st.error().message);
    const AgentState& s = st->state();
    const DeviceIdentity id = identity_from_state(s);
    const auto now = static_cast<std::uint64_t>(std::time(nullptr));
    const AttemptDecision next = decide_attempt(cfg.backoff, s.attempts, now);
    const auto& cred = s.record.credential;
    if (json) {
        std::printf("{\"device_id\":\"%s\",\"owner\":\"%s\",\"owner_counter\":%llu,\"provisioned\":%s",
                    id.id.to_string().c_str(), owner_state_name(s),
                    static_cast<unsigned long long>(s.record.owner_counter), cred ? "true" : "false");
        if (cred) {
            std::printf(",\"bundle_id\":\"%s\",\"imsi\":\"%s\",\"plmn\":\"%s\",\"network_name\":\"%s\",\"field_mode\":%s",
                        cred->id.to_string().c_str(), cred->profile.imsi.str().c_str(), cred->profile.plmn.str().c_str(),
                        json_escape(cred->profile.network_name.str()).c_str(), cred->field_mode ? "true" : "false");
        }
        // The public keys, as the backend's inventory import takes them.
        std::printf(",\"identity_key\":\"%s\",\"box_key\":\"%s\",\"box_signature\":\"%s\"",
                    to_hex(id.identity.public_key).c_str(), to_hex(id.box.public_key).c_str(), to_hex(id.box_signature).c_str());
        std::printf(",\"unconfirmed_attempts\":%u,\"retry_after_s\":%llu}\n", s.attempts.unconfirmed,
                    static_cast<unsigned long long>(next.retry_after_s));
        return Exit::ok;
    }
    std::printf("device id        %s\n", id.id.to_string().c_str());
    std::printf("owner            %s", owner_state_name(s));
    if (const auto& o = s.trust.pinned_owner ? s.trust.pinned_owner : s.record.owner) {
        std::printf(" (%s, key %s)", o->name.c_str(), to_hex(digest(o->sign_key)).substr(0, 16).c_str());
    }
    std::printf("\nowner counter    %llu\n", static_cast<unsigned long long>(s.record.owner_counter));
    if (cred) {
        std::printf("credential       %s (%s mode)\n", cred->id.to_string().c_str(), cred->field_mode ? "field" : "sealed");
        std::printf("imsi             %s\nnetwork          %s (PLMN %s)\n", cred->profile.imsi.str().c_str(),
                    cred->profile.network_name.str().c_str(), cred->profile.plmn.str().c_str());
    } else {
        std::printf("credential       none\n");
    }
    std::printf("pairing attempts %u unconfirmed", s.attempts.unconfirmed);
    if (!next.allowed) std::printf(", next allowed in %llu s", static_cast<unsigned long long>(next.retry_after_s));
    std::printf("\n");
    return Exit::ok;
}

int cmd_label(const AgentConfig& cfg, MonotonicCounter& counter, const std::string& png, const std::string& svg,
              const std::string& ndef, bool quiet) {
    auto st = Store::open(cfg.state_dir, cfg.effective_key_file(), real_fs(), counter);
    if (!st) return fail(Exit::store, st.error().message);
    const AgentState& s = st->state();
    auto code = SetupCode::parse(std::string_view(reinterpret_cast<const char*>(s.setup_code.data()), s.setup_code.size()));
    if (!code) return fail(Exit::store, "stored setup code is invalid");
    BootstrapPayload payload{identity_from_state(s).id, std::move(*code), kBootstrapTcp | kBootstrapBle | kBootstrapNfc};
    const SecretBytes text = payload.encode();
    auto qr = encode_qr(text.view());
    if (!qr) return fail(Exit::failure, qr.error().message);
    if (!quiet) {
        std::printf("%s", render_terminal(*qr).c_str());
        std::printf("device id   %s\nsetup code  %s\n", payload.device.to_string().c_str(), payload.code.reveal().c_str());
    }
    if (!png.empty()) {
        if (auto w = write_png(*qr, png); !w) return fail(Exit::failure, w.error().message);
    }
    if (!svg.empty()) {
        if (auto w = write_private_file(svg, render_svg(*qr)); !w) return fail(Exit::failure, w.error().message);
    }
    if (!ndef.empty()) {
        Bytes message = transport::nfc::encode_label_message(
            std::string_view(reinterpret_cast<const char*>(text.view().data()), text.view().size()));
        auto w = write_private_file(ndef, std::string_view(reinterpret_cast<const char*>(message.data()), message.size()));
        sodium_memzero(message.data(), message.size());
        if (!w) return fail(Exit::failure, w.error().message);
    }
    return Exit::ok;
}

int cmd_wipe(const AgentConfig& cfg, MonotonicCounter& counter, bool yes) {
    if (!yes) return fail(Exit::usage, "wipe deletes the credential; run again with --yes to confirm");
    StoreLock lock;
    if (!take_lock(cfg, lock)) return fail(Exit::locked, "credprov-agentd is running on this store; stop it first");
    auto st = Store::open(cfg.state_dir, cfg.effective_key_file(), real_fs(), counter);
    if (!st) return fail(Exit::store, st.error().message);
    if (!st->state().record.credential) {
        std::printf("no credential to wipe\n");
        return Exit::ok;
    }
    AgentState next = st->state().clone();
    next.record.credential.reset();
    next.k.reset();
    next.opc.reset();
    next.usim = UsimState{};
    if (auto c = st->commit(next); !c) return fail(Exit::store, c.error().message);
    std::printf("credential wiped; identity, owner and counters kept\n");
    return Exit::ok;
}

// The soft-USIM answering one AKA challenge with the stored credential.
int cmd_aka(const AgentConfig& cfg, MonotonicCounter& counter, const std::string& rand_hex, const std::string& autn_hex,
            bool update) {
    auto rand = aka::parse_rand(rand_hex);
    if (!rand) return fail(Exit::usage, rand.error().message);
    auto autn = aka::parse_autn(autn_hex);
    if (!autn) return fail(Exit::usage, autn.error().message);
    StoreLock lock;
    if (update && !take_lock(cfg, lock)) {
        return fail(Exit::locked, "credprov-agentd is running on this store; stop it first to --update-sqn");
    }
    auto st = Store::open(cfg.state_dir, cfg.effective_key_file(), real_fs(), counter);
    if (!st) return fail(Exit::store, st.error().message);
    const AgentState& s = st->state();
    if (!s.record.credential || !s.k || !s.opc) return fail(Exit::failure, "the device holds no credential");
    auto state = aka::UsimSqnState::from_bytes(s.usim.sqn_state);
    if (!state) return fail(Exit::store, "stored SQN state: " + state.error().message);
    const auto keys = aka::SubscriberKeys::from_k_and_opc(s.k->span(), s.opc->span());
    auto result = aka::usim_authenticate(keys, *state, *rand, *autn);
    if (!result) {
        return fail(Exit::not_authentic, "AUTN does not verify: the network does not know this credential (MAC failure)");
    }
    if (const auto* sync = std::get_if<aka::SyncFailure>(&*result)) {
        std::printf("AUTS %s\n", to_hex(sync->auts.bytes).c_str());
        std::fprintf(stderr, "credprov-agentctl: SQN out of range: synchronisation failure, AUTS printed\n");
        return Exit::sync_failure;
    }
    const auto& ok = std::get<aka::AkaSuccess>(*result);
    std::printf("RES %s\nCK %s\nIK %s\n", to_hex(ok.res.span()).c_str(), to_hex(ok.ck.span()).c_str(),
                to_hex(ok.ik.span()).c_str());
    if (update) {
        AgentState next = s.clone();
        next.usim.sqn_state = ok.new_state.to_bytes();
        if (auto c = st->commit(next); !c) return fail(Exit::store, c.error().message);
    }
    return Exit::ok;
}

// The daemon's own log file and its rotations, oldest first; the last n lines.
int cmd_logs(const AgentConfig& cfg, std::size_t n) {
    std::vector<std::string> lines;
    bool any = false;
    for (const char* suffix : {".2", ".1", ""}) {
        // spdlog's rotation names: agent.2.log, agent.1.log, agent.log
        const auto path = cfg.state_dir / (std::string("agent") + suffix + ".log");
        std::FILE* f = std::fopen(path.c_str(), "r");
        if (!f) continue;
        any = true;
        char buf[4096];
        while (std::fgets(buf, sizeof buf, f)) lines.emplace_back(buf);
        std::fclose(f);
    }
    if (!any) return fail(Exit::failure, "no log file in " + cfg.state_dir.string() + " (the daemon has not run here yet)");
    const std::size_t from = lines.size() > n ? lines.size() - n : 0;
    for (std::size_t i = from; i < lines.size(); ++i) std::fputs(lines[i].c_str(), stdout);
    return Exit::ok;
}

// The network path: attach check or notice fetch against the backend. Both
// may commit (SQN state, an applied notice), so they take the store lock.
int cmd_network(const AgentConfig& cfg, MonotonicCounter& counter, bool attach, const std::string& url,
                const std::string& ca, bool json_out) {
    StoreLock lock;
    if (!take_lock(cfg, lock)) return fail(Exit::locked, "credprov-agentd is running on this store; stop it first");
    auto st = Store::open(cfg.state_dir, cfg.effective_key_file(), real_fs(), counter);
    if (!st) return fail(Exit::store, st.error().message);
    auto client = make_http_backend_client(url, ca);
    if (!client) return fail(Exit::usage, client.error().message);
    const CommitState commit = [&](const AgentState& next) { return st->commit(next); };
    auto report = attach ? attach_check(st->state(), **client, commit) : fetch_notice(st->state(), **client, commit);
    if (!report) return fail(Exit::network, report.error().message);
    if (json_out) {
        std::printf("{\"verdict\":\"%s\",\"imsi\":\"%s\",\"resynchronised\":%s,\"notice_applied\":%s}\n",
                    report->verdict.c_str(), report->imsi.c_str(), report->resynchronised ? "true" : "false",
                    report->notice_applied ? "true" : "false");
    } else {
        std::printf("verdict          %s\n", report->verdict.c_str());
        if (!report->imsi.empty()) std::printf("imsi             %s\n", report->imsi.c_str());
        if (report->resynchronised) std::printf("sqn              resynchronised with the network\n");
        if (report->notice_applied) {
            std::printf("deprovisioned    credential wiped by the operator's notice (counter %llu)\n",
                        static_cast<unsigned long long>(report->counter.value_or(0)));
        }
    }
    if (report->notice_applied || report->verdict == "deprovisioned") return Exit::deprovisioned;
    if (report->verdict == "rejected") return Exit::not_authentic;
    if (report->verdict == "no-credential") return Exit::failure;
    return Exit::ok;
}

}  // namespace

int main(int argc, char** argv) {
    // `aka` and `wipe` hold K/OPc in memory: never in a core dump.
    rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    CLI::App app{"credprov-agentctl: local administration of a credprov device agent."};
    app.require_subcommand(1);
    std::string config_path;
    std::string state_dir;
    app.add_option("-c,--config", config_path,
                   std::string("agent configuration file (TOML); default ") + kDefaultConfigPath + " if it exists");
    app.add_option("--state-dir", state_dir, "directory of the protected store (overrides agent.state_dir)");
    app.set_version_flag("--version", std::string("credprov-agentctl ") + kAgentVersion);

    auto* init = app.add_subcommand("factory-init", "create the device identity, setup code and trust anchors");
    std::string root_hex, owner_sign_hex, owner_box_hex, attestation_file;
    bool tofu = false, field = false;
    std::size_t digits = 0;
    init->add_option("--root", root_hex, "provisioning root public key (64 hex digits) that certifies operators");
    init->add_option("--owner-sign-key", owner_sign_hex, "pin an owner: its Ed25519 key (64 hex digits)");
    init->add_option("--owner-box-key", owner_box_hex, "pin an owner: its X25519 key (64 hex digits)");
    init->add_flag("--lab-trust-on-first-use", tofu,
                   "LAB ONLY: adopt the first operator that provisions, uncertified (whoever reads the label owns it)");
    init->add_flag("--field-mode", field, "allow field-mode provisioning (device generates K/OPc)");
    init->add_option("--code-digits", digits, "setup code length (8-16, default 10)")->check(CLI::Range(8, 16));
    init->add_option("--attestation", attestation_file, "manufacturer attestation to import (CBOR signed object)");

    auto* status = app.add_subcommand("status", "show identity, owner, credential and attempt state");
    bool json = false;
    status->add_flag("--json", json, "machine-readable output");

    auto* label = app.add_subcommand("label", "print the device label and QR code; write PNG/SVG files");
    std::string png, svg, ndef;
    bool quiet = false;
    label->add_option("--png", png, "write the QR code as a PNG file (mode 0600: it holds the setup code)");
    label->add_option("--svg", svg, "write the QR code as an SVG file (mode 0600)");
    label->add_option("--ndef", ndef, "write the label as an NDEF message for an NFC sticker (Type 4 tag; mode 0600)");
    label->add_flag("-q,--quiet", quiet, "do not print to the terminal");

    auto* wipe = app.add_subcommand("wipe", "delete the credential locally (identity and counters stay)");
    bool yes = false;
    wipe->add_flag("--yes", yes, "confirm");

    auto* attachcmd = app.add_subcommand("attach", "attach check against the operator's backend (applies a deprovisioning notice)");
    auto* noticecmd = app.add_subcommand("notice", "fetch and apply this device's deprovisioning notice from the backend");
    std::string backend_url, backend_ca;
    bool net_json = false;
    for (auto* c : {attachcmd, noticecmd}) {
        c->add_option("--backend", backend_url, "backend base URL, e.g. https://hss.example.net:8443")->required();
        c->add_option("--ca", backend_ca, "PEM file of the CA that signed the backend's certificate (default: the system's)");
        c->add_flag("--json", net_json, "machine-readable output");
    }

    auto* logscmd = app.add_subcommand("logs", "print the daemon's recent log lines (never secrets)");
    std::size_t log_lines = 50;
    logscmd->add_option("-n,--lines", log_lines, "how many lines")->capture_default_str();

    auto* akacmd = app.add_subcommand("aka", "answer an AKA challenge with the stored credential (soft-USIM)");
    std::string rand_hex, autn_hex;
    bool update_sqn = false;
    akacmd->add_option("--rand", rand_hex, "RAND, 32 hex digits")->required();
    akacmd->add_option("--autn", autn_hex, "AUTN, 32 hex digits")->required();
    akacmd->add_flag("--update-sqn", update_sqn, "store the accepted SQN, as a USIM does (daemon must be stopped)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? Exit::ok : Exit::usage;
    }

    AgentConfig cfg;
    if (config_path.empty() && std::filesystem::exists(kDefaultConfigPath)) config_path = kDefaultConfigPath;
    if (!config_path.empty()) {
        auto loaded = load_config(config_path);
        if (!loaded) return fail(Exit::config, loaded.error().message);
        cfg = std::move(*loaded);
    }
    if (!state_dir.empty()) cfg.state_dir = state_dir;

    if (*init) {
        if (!root_hex.empty()) {
            auto k = parse_public_key_hex(root_hex, "--root");
            if (!k) return fail(Exit::usage, k.error().message);
            cfg.trust.provisioning_root = *k;
        }
        if (owner_sign_hex.empty() != owner_box_hex.empty()) {
            return fail(Exit::usage, "--owner-sign-key and --owner-box-key go together");
        }
        if (!owner_sign_hex.empty()) {
            auto s = parse_public_key_hex(owner_sign_hex, "--owner-sign-key");
            if (!s) return fail(Exit::usage, s.error().message);
            auto b = parse_public_key_hex(owner_box_hex, "--owner-box-key");
            if (!b) return fail(Exit::usage, b.error().message);
            cfg.trust.pinned_owner = OperatorKeys{*s, *b, "pinned owner"};
        }
        if (tofu) cfg.trust.lab_trust_on_first_use = true;
        if (field) cfg.trust.field_mode_allowed = true;
        if (digits != 0) cfg.setup_code_digits = digits;
        if (!cfg.trust.provisioning_root && !cfg.trust.pinned_owner && !cfg.trust.lab_trust_on_first_use) {
            return fail(Exit::usage, "a device needs a trust anchor: --root, --owner-sign-key/--owner-box-key, "
                                     "or (labs only) --lab-trust-on-first-use");
        }
        StoreLock lock;
        if (!take_lock(cfg, lock)) return fail(Exit::locked, "credprov-agentd is running on this store; stop it first");
        std::optional<SignedObject> attestation;
        if (!attestation_file.empty()) {
            auto a = read_attestation_file(attestation_file);
            if (!a) return fail(Exit::usage, a.error().message);
            attestation = std::move(*a);
        }
        auto counter = store_counter(cfg, /*creating=*/true);
        if (!counter) return fail(Exit::store, counter.error().message);
        auto created = factory_init(cfg, attestation, *counter ? **counter : no_counter());
        if (!created) {
            return fail(created.error().code == ErrorCode::already_provisioned ? Exit::exists : Exit::store,
                        created.error().message);
        }
        std::printf("device %s created in %s\n", identity_from_state(created->state()).id.to_string().c_str(),
                    cfg.state_dir.c_str());
        return Exit::ok;
    }
    // The log needs no store (and works while the daemon runs).
    if (*logscmd) return cmd_logs(cfg, log_lines);
    // Every other command opens the existing store; the counter outlives it.
    auto opened = store_counter(cfg, /*creating=*/false);
    if (!opened) return fail(Exit::store, opened.error().message);
    MonotonicCounter& counter = *opened ? **opened : no_counter();
    if (*status) return cmd_status(cfg, counter, json);
    if (*label) return cmd_label(cfg, counter, png, svg, ndef, quiet);
    if (*wipe) return cmd_wipe(cfg, counter, yes);
    if (*akacmd) return cmd_aka(cfg, counter, rand_hex, autn_hex, update_sqn);
    if (*attachcmd) return cmd_network(cfg, counter, true, backend_url, backend_ca, net_json);
    if (*noticecmd) return cmd_network(cfg, counter, false, backend_url, backend_ca, net_json);
    return Exit::usage;
}
