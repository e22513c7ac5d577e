// End-to-end tests of credprov-agentd as a separate process: provisioning
// over a Unix socket with the real protocol, query and deprovisioning, clean
// stop on SIGTERM, survival of SIGKILL at any point, back-off across
// restarts, and logs that never contain a secret.
#include <doctest/doctest.h>

#include <sodium.h>

#include <algorithm>
#include <fstream>
#include <random>

#include "agent_lab.hpp"
#include "credprov/transport/stream_transport.hpp"
#include "protocol_world.hpp"

using namespace credprov;
using namespace credprov::testing;
using namespace std::chrono_literals;

namespace {

bool contains(const std::string& haystack, const std::string& needle) {
    return !needle.empty() && haystack.find(needle) != std::string::npos;
}

std::string base64(ByteView b) {
    std::string out(sodium_base64_encoded_len(b.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(out.data(), out.size(), b.data(), b.size(), sodium_base64_VARIANT_ORIGINAL);
    out.pop_back();
    return out;
}

}  // namespace

TEST_CASE("agentd: credprov-agentctl logs shows the running daemon's lines as they happen") {
    AgentLab lab;
    auto agent = lab.start();
    // A session, then its line in agent.log while the daemon still runs
    // (the file was flushed only at stop before).
    auto o = lab.session(Operation::query, {});
    REQUIRE(o.first.ok());
    bool seen = false;
    for (int i = 0; i < 100 && !seen; ++i) {
        auto logs = run_command({CREDPROV_AGENTCTL, "--state-dir", lab.state.string(), "logs", "-n", "50"});
        REQUIRE(logs.exit_code == 0);
        seen = contains(logs.out, "ready") && contains(logs.out, "session");
        if (!seen) std::this_thread::sleep_for(20ms);
    }
    CHECK(seen);
    // Set up with factory-init --root and no [trust] in the configuration:
    // nothing to warn about.
    CHECK_FALSE(contains(read_file(lab.state / "agent.log"), "trust settings in the configuration differ"));
}

TEST_CASE("agentd: provision, query and deprovision over a Unix socket, stop on SIGTERM, no secret in any log") {
    AgentLab lab;
    auto agent = lab.start();
    auto o = lab.session(Operation::deliver_sealed, {Request{Operation::query, std::nullopt}});
    REQUIRE_MESSAGE(o.first.ok(), o.first.error().message);
    REQUIRE(o.first->receipt);
    REQUIRE_FALSE(o.more_error);
    REQUIRE(o.more.size() == 1);
    REQUIRE(o.more[0].info);
    CHECK(o.more[0].info->provisioned);
    CHECK(o.more[0].info->owner_state == OwnerState::owned);

    auto st = lab.status();
    REQUIRE(st.exit_code == 0);
    CHECK(contains(st.out, "\"provisioned\":true"));
    CHECK(contains(st.out, "\"imsi\":\"001010123456789\""));

    // Deprovision on the channel with an owner-signed command.
    OwnerCommand cmd;
    cmd.kind = OwnerCommandKind::deprovision;
    cmd.device = lab.device;
    cmd.counter = 1;
    cmd.issued_at = static_cast<std::uint64_t>(std::time(nullptr));
    auto d = lab.session(Operation::query, {Request{Operation::deprovision, sign_owner_command(lab.operator_side.op.sign, cmd)}});
    REQUIRE(d.first.ok());
    REQUIRE_MESSAGE(!d.more_error, d.more_error->message);
    REQUIRE(d.more.size() == 1);
    CHECK(d.more[0].counter == std::optional<std::uint64_t>(1));
    CHECK(contains(lab.status().out, "\"provisioned\":false"));

    agent->signal(SIGTERM);
    CHECK(agent->wait() == 0);

    const std::string log = read_file(lab.log);
    CHECK(contains(log, "ready"));
    CHECK(contains(log, lab.device.to_string()));
    // Secrets never appear: setup code, K (hex, upper hex, base64), the
    // provisioner's private key, the store key.
    CHECK_FALSE(contains(log, lab.code));
    CHECK_FALSE(contains(log, to_hex(o.k)));
    std::string upper = to_hex(o.k);
    std::transform(upper.begin(), upper.end(), upper.begin(), ::toupper);
    CHECK_FALSE(contains(log, upper));
    CHECK_FALSE(contains(log, base64(o.k)));
    const auto& psk = lab.operator_side.provisioner.secret_key;
    CHECK_FALSE(contains(log, to_hex(ByteView(psk.data(), 32))));
    const std::string store_key = read_file(lab.state / "store.key");
    CHECK_FALSE(contains(log, to_hex(as_bytes(store_key))));
    CHECK_FALSE(contains(st.out, lab.code));
    CHECK_FALSE(contains(st.out, to_hex(o.k)));
    // The daemon's own log file carries the same lines, and nothing secret.
    auto logs = run_command({CREDPROV_AGENTCTL, "--state-dir", lab.state.string(), "logs", "-n", "200"});
    REQUIRE(logs.exit_code == 0);
    CHECK(contains(logs.out, "ready"));
    CHECK(contains(logs.out, "authorised"));
    CHECK_FALSE(contains(logs.out, lab.code));
    CHECK_FALSE(contains(logs.out, to_hex(o.k)));
    CHECK_FALSE(contains(logs.out, base64(o.k)));
    auto two = run_command({CREDPROV_AGENTCTL, "--state-dir", lab.state.string(), "logs", "-n", "2"});
    CHECK(std::count(two.out.begin(), two.out.end(), '\n') == 2);
}

TEST_CASE("agentd: a wrong setup code is refused and counted, back-off survives a restart") {
    AgentLab lab;
    // A long first wait, so that a slow machine cannot outlast it mid-test.
    const auto config = lab.dir / "agent.toml";
    {
        std::ofstream(config) << "[backoff]\nfree_attempts = 5\nbase_s = 300\n";
    }
    {
        auto agent = lab.start({"--config", config.string()});
        for (int i = 0; i < 6; ++i) {
            auto o = lab.session(Operation::query, {}, "0000000000");
            REQUIRE_FALSE(o.first.ok());
            CHECK(o.first.error().code == ErrorCode::auth_failed);
        }
        // The seventh attempt is refused before any CPace work.
        auto o = lab.session(Operation::query, {}, "0000000000");
        REQUIRE_FALSE(o.first.ok());
        CHECK(o.first.error().code == ErrorCode::backoff);
        agent->signal(SIGKILL);
        agent->wait();
    }
    auto agent = lab.start({"--config", config.string()});
    auto o = lab.session(Operation::query);  // even with the right code: wait first
    REQUIRE_FALSE(o.first.ok());
    CHECK(o.first.error().code == ErrorCode::backoff);
    CHECK(contains(lab.status().out, "\"unconfirmed_attempts\":6"));
}

TEST_CASE("agentd: SIGKILL at any moment of a provisioning leaves a store that opens, old or new") {
    AgentLab lab;
    // No back-off here: every killed session leaves an unconfirmed attempt.
    const auto config = lab.dir / "agent.toml";
    {
        std::ofstream(config) << "[backoff]\nfree_attempts = 100\n";
    }
    std::mt19937 rng(12345);
    int cut_short = 0;
    bool provisioned = false;
    for (int round = 0; round < 24; ++round) {
        CAPTURE(round);
        auto agent = lab.start({"--config", config.string()});
        const auto delay = std::chrono::microseconds(rng() % 12000);
        std::thread killer([&] {
            std::this_thread::sleep_for(delay);
            agent->signal(SIGKILL);
        });
        auto o = lab.session(provisioned ? Operation::query : Operation::deliver_sealed);
        killer.join();
        agent->wait();
        if (!o.first) ++cut_short;
        auto st = lab.status();
        REQUIRE_MESSAGE(st.exit_code == 0, st.out);  // the store always opens
        const bool now = contains(st.out, "\"provisioned\":true");
        CHECK((now || !provisioned));  // never lost once committed
        // A receipt that left the device means the credential is on disk.
        if (o.first && o.first->receipt) CHECK(now);
        provisioned = now;
    }
    CHECK(cut_short > 0);  // some kills really landed inside sessions
    // Whatever happened, provisioning converges to one credential.
    auto agent = lab.start({"--config", config.string()});
    auto o = lab.session(Operation::deliver_sealed);
    if (!provisioned) {
        REQUIRE_MESSAGE(o.first.ok(), o.first.error().message);
    } else {
        REQUIRE_FALSE(o.first.ok());
        CHECK(o.first.error().code == ErrorCode::already_provisioned);
    }
    CHECK(contains(lab.status().out, "\"provisioned\":true"));
}

TEST_CASE("agentctl: clear errors and exit codes") {
    AgentLab lab;
    auto again = run_command({CREDPROV_AGENTCTL, "--state-dir", lab.state.string(), "factory-init", "--root",
                              to_hex(lab.operator_side.root.public_key)});
    CHECK(again.exit_code == 7);
    auto none = run_command({CREDPROV_AGENTCTL, "--state-dir", (lab.dir / "nothing").string(), "status"});
    CHECK(none.exit_code == 4);
    auto no_anchor = run_command({CREDPROV_AGENTCTL, "--state-dir", (lab.dir / "new").string(), "factory-init"});
    CHECK(no_anchor.exit_code == 2);
    auto agent = lab.start();
    auto wipe = run_command({CREDPROV_AGENTCTL, "--state-dir", lab.state.string(), "wipe", "--yes"});
    CHECK(wipe.exit_code == 6);  // the daemon holds the store
    auto png = lab.dir / "label.png";
    auto svg = lab.dir / "label.svg";
    auto label = run_command({CREDPROV_AGENTCTL, "--state-dir", lab.state.string(), "label", "--quiet", "--png",
                              png.string(), "--svg", svg.string()});
    CHECK(label.exit_code == 0);
    CHECK(label.out.empty());
    CHECK(std::filesystem::file_size(png) > 100);
    CHECK(read_file(svg).find("<svg") != std::string::npos);
    CHECK((std::filesystem::status(png).permissions() & std::filesystem::perms::others_read) ==
          std::filesystem::perms::none);
}

TEST_CASE("agentd: deprovisioning waits for local consent when configured, and consumes it") {
    AgentLab lab;
    const auto consent = lab.dir / "consent";
    const auto config = lab.dir / "agent.toml";
    {
        std::ofstream(config) << "[consent]\nrequired_for = [\"deprovision\"]\nfile = \"" << consent.string()
                              << "\"\nmax_age_s = 60\n";
    }
    auto agent = lab.start({"--config", config.string()});
    REQUIRE(lab.session(Operation::deliver_sealed).first.ok());
    auto command = [&](std::uint64_t counter) {
        OwnerCommand cmd;
        cmd.kind = OwnerCommandKind::deprovision;
        cmd.device = lab.device;
        cmd.counter = counter;
        cmd.issued_at = static_cast<std::uint64_t>(std::time(nullptr));
        return Request{Operation::deprovision, sign_owner_command(lab.operator_side.op.sign, cmd)};
    };
    auto refused = lab.session(Operation::query, {command(1)});
    REQUIRE(refused.more_error);
    CHECK(refused.more_error->code == ErrorCode::not_authorised);
    CHECK(contains(refused.more_error->message, "consent"));
    CHECK(contains(lab.status().out, "\"provisioned\":true"));

    { std::ofstream(consent) << "yes\n"; }
    auto done = lab.session(Operation::query, {command(2)});
    REQUIRE_MESSAGE(!done.more_error, done.more_error->message);
    CHECK(contains(lab.status().out, "\"provisioned\":false"));
    CHECK_FALSE(std::filesystem::exists(consent));  // consumed
}

TEST_CASE("agentd: owner-signed diagnostics and reconfiguration") {
    AgentLab lab;
    auto agent = lab.start();
    REQUIRE(lab.session(Operation::deliver_sealed).first.ok());
    auto owner = [&](OwnerCommandKind kind, Bytes payload, std::uint64_t counter) {
        OwnerCommand cmd;
        cmd.kind = kind;
        cmd.device = lab.device;
        cmd.counter = counter;
        cmd.issued_at = static_cast<std::uint64_t>(std::time(nullptr));
        cmd.payload = std::move(payload);
        return sign_owner_command(lab.operator_side.op.sign, cmd);
    };
    const std::vector<Diagnostic> all{Diagnostic::self_test, Diagnostic::store_check, Diagnostic::aka_self_check,
                                      Diagnostic::transport_info};
    DeviceSettings settings;
    settings.label = "meter 42";
    auto o = lab.session(Operation::query,
                         {Request{Operation::diagnose, owner(OwnerCommandKind::diagnose, encode_diagnostics(all), 1)},
                          Request{Operation::reconfigure, owner(OwnerCommandKind::reconfigure, settings.encode(), 2)},
                          Request{Operation::query, std::nullopt}});
    REQUIRE_MESSAGE(!o.more_error, o.more_error->message);
    REQUIRE(o.more.size() == 3);
    REQUIRE(o.more[0].diagnostics.size() == 4);
    for (const auto& d : o.more[0].diagnostics) {
        CAPTURE(d.detail);
        CHECK(d.ok);
    }
    CHECK(contains(o.more[0].diagnostics[3].detail, "unix:"));
    REQUIRE(o.more[2].info);
    CHECK(o.more[2].info->settings.label == std::optional<std::string>("meter 42"));
    CHECK(o.more[2].info->owner_counter == 2);
}

#include "credprov/aka/network.hpp"

TEST_CASE("agentctl aka: the soft-USIM answers the network's challenge with the delivered credential") {
    AgentLab lab;
    AgentLab::Outcome o;
    {
        auto agent = lab.start();
        o = lab.session(Operation::deliver_sealed);
        REQUIRE(o.first.ok());
        agent->signal(SIGTERM);
        REQUIRE(agent->wait() == 0);
    }
    // The network side (what the backend's HSS does with the same K/OPc).
    const auto keys = aka::SubscriberKeys::from_k_and_opc(std::span<const std::uint8_t, 16>(o.k.data(), 16),
                                                          std::span<const std::uint8_t, 16>(o.opc.data(), 16));
    aka::Rand rand;
    crypto::random_bytes(rand.bytes);
    aka::Amf amf;
    amf.bytes = {0x80, 0x00};
    const auto vec = aka::generate_vector(keys, aka::Sqn(64), amf, rand);
    auto ctl = [&](std::vector<std::string> extra) {
        std::vector<std::string> args{CREDPROV_AGENTCTL, "--state-dir", lab.state.string(), "aka", "--rand",
                                      to_hex(rand.bytes), "--autn", to_hex(vec.autn.bytes)};
        args.insert(args.end(), extra.begin(), extra.end());
        return run_command(args);
    };
    auto first = ctl({"--update-sqn"});
    REQUIRE(first.exit_code == 0);
    CHECK(field_of(first.out, "RES") == to_hex(vec.xres.span()));
    CHECK(field_of(first.out, "CK") == to_hex(vec.ck.span()));
    // The same AUTN again is a replay: synchronisation failure with an AUTS
    // from which the network recovers the USIM's SQN.
    auto replay = ctl({});
    REQUIRE(replay.exit_code == 8);
    aka::Auts auts;
    Bytes raw;
    REQUIRE(from_hex(field_of(replay.out, "AUTS"), raw));
    REQUIRE(raw.size() == aka::Auts::kBytes);
    std::copy(raw.begin(), raw.end(), auts.bytes.begin());
    auto sqn_ms = aka::resync(keys, rand, auts);
    REQUIRE(sqn_ms.ok());
    CHECK(sqn_ms->value() == 64);
    // A challenge from a network that does not hold this K.
    auto forged = vec.autn;
    forged.bytes[15] ^= 1;
    auto bad = run_command({CREDPROV_AGENTCTL, "--state-dir", lab.state.string(), "aka", "--rand", to_hex(rand.bytes),
                            "--autn", to_hex(forged.bytes)});
    CHECK(bad.exit_code == 9);
    CHECK_FALSE(contains(bad.out, to_hex(o.k)));
}

// Decision 0008: the D-Bus libraries live in credprov-ble-peripheral.so, which
// the daemon maps only for a ble: listen address.
TEST_CASE("agentd: a device that does not listen on BLE maps no D-Bus library") {
    AgentLab lab;
    auto agent = lab.start();
    const std::string maps = read_file("/proc/" + std::to_string(agent->pid()) + "/maps");
    REQUIRE_FALSE(maps.empty());
    CHECK(maps.find("libsdbus-c++") == std::string::npos);
    CHECK(maps.find("libsystemd") == std::string::npos);
    CHECK(maps.find("credprov-ble-peripheral") == std::string::npos);
}

#ifdef CREDPROV_TEST_HAVE_BLE_MODULE
TEST_CASE("agentd: listening on ble: loads the BLE module") {
    AgentLab lab;
    AgentProcess agent(CREDPROV_AGENTD, {"--state-dir", lab.state.string(), "--listen", "ble:hci0"}, lab.log);
    // Without a system bus (a CI container) the module's first step fails and
    // the daemon exits 5 with its reason; with one, the daemon runs with the
    // module mapped and retries until bluetoothd answers.
    for (int i = 0; i < 200; ++i) {
        siginfo_t info{};
        if (::waitid(P_PID, static_cast<id_t>(agent.pid()), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid != 0) break;
        if (read_file(lab.log).find("ready in") != std::string::npos) break;
        std::this_thread::sleep_for(25ms);
    }
    const std::string log = read_file(lab.log);
    CHECK(log.find("not installed") == std::string::npos);
    CHECK(log.find("cannot load") == std::string::npos);
    if (log.find("ready in") == std::string::npos) {
        CHECK(agent.wait() == 5);
        CHECK_MESSAGE(read_file(lab.log).find("system D-Bus") != std::string::npos, read_file(lab.log));
    } else {
        const std::string maps = read_file("/proc/" + std::to_string(agent.pid()) + "/maps");
        CHECK(maps.find("credprov-ble-peripheral.so") != std::string::npos);
        agent.signal(SIGTERM);
        CHECK(agent.wait() == 0);
    }
}
#endif
