// End to end over NFC: the real credprov-agentd as NFC-DEP target and the
// real credprov CLI as initiator, each through stock libnfc's pn532_uart
// driver on a simulated PN532 chip (tests/nfc/pn532-sim), with a real
// backend on SQLite. Also each side against libnfc's own example peers.
#include <doctest/doctest.h>

#ifdef CREDPROV_TEST_HAVE_NFC
#include <thread>

#include "e2e_lab.hpp"
#include "nfc_sim.hpp"

using namespace credprov;
using namespace credprov::testing;

namespace {

json result_of(const CommandResult& r) {
    const json j = json::parse(r.out, nullptr, false);
    REQUIRE_MESSAGE(j.is_object(), r.out);
    return j;
}

std::size_t active_count(E2ELab& f) {
    auto subs = f.lab.admin("GET", "/v1/subscribers?state=active&device=" + f.device);
    REQUIRE(subs.status == 200);
    return subs.body["items"].size();
}

}  // namespace

TEST_CASE("e2e nfc: sealed provisioning between two simulated PN532 chips through libnfc, the attach check passes") {
    ScratchDir dir("credprov-nfc");
    NfcSim sim(dir.path(), {"reader", "device"});
    E2ELab f({"query", "deliver-sealed", "deprovision"}, {}, {sim.address("device")});
    auto r = f.credprov({"provision", "--address", sim.address("reader"), "--device", f.device, "--code", f.code});
    REQUIRE_MESSAGE(r.exit_code == 0, r.out << read_file(f.lab.dir / "agentd.log"));
    const json j = result_of(r);
    CHECK(j["details"]["state"] == "active");
    CHECK(j["details"]["link"]["transport"] == "nfc");
    const auto exchanges = j["details"]["link"]["exchanges"].get<int>();
    CHECK(exchanges > 0);
    CHECK(exchanges <= 12);  // 977 bytes in <= 250-byte frames, two round trips
    f.check_agreement();
    f.stop_agent();  // attach needs the store
    auto attach = run_command({CREDPROV_AGENTCTL, "--state-dir", f.state.string(), "attach", "--backend", f.url(), "--json"});
    CHECK_MESSAGE(attach.exit_code == 0, attach.out);
}

TEST_CASE("e2e nfc: field mode over NFC") {
    ScratchDir dir("credprov-nfc");
    NfcSim sim(dir.path(), {"reader", "device"});
    E2ELab f({"query", "deliver-field", "deprovision"}, {"--field-mode"}, {sim.address("device")});
    auto fetched = f.credprov({"pool", "fetch", "--count", "1", "--device", f.device});
    REQUIRE_MESSAGE(fetched.exit_code == 0, fetched.out);
    auto r = f.credprov({"provision", "--field", "--address", sim.address("reader"), "--device", f.device, "--code", f.code});
    REQUIRE_MESSAGE(r.exit_code == 0, r.out << read_file(f.lab.dir / "agentd.log"));
    CHECK(result_of(r)["details"]["mode"] == "field");
    f.check_agreement();
}

TEST_CASE("e2e nfc: the device leaves the field mid-session, a retry converges to one active subscriber") {
    ScratchDir dir("credprov-nfc");
    NfcSim sim(dir.path(), {"reader", "device"});
    E2ELab f({"query", "deliver-sealed", "deprovision"}, {}, {sim.address("device")});
    const auto log = f.lab.dir / "agentd.log";
    CommandResult first;
    std::thread cli([&] {
        first = f.credprov({"provision", "--address", sim.address("reader"), "--device", f.device, "--code", f.code});
    });
    for (int i = 0; i < 1000 && read_file(log).find("session on nfc") == std::string::npos; ++i) {
        std::this_thread::sleep_for(2ms);
    }
    CHECK(sim.send("remove device").exit_code == 0);
    cli.join();
    CHECK(sim.send("restore device").exit_code == 0);
    // The cut may land anywhere; retries converge (a completed one answers "already provisioned").
    bool converged = active_count(f) == 1 && first.exit_code == 0;
    for (int i = 0; i < 5 && !converged; ++i) {
        auto r = f.credprov({"provision", "--address", sim.address("reader"), "--device", f.device, "--code", f.code});
        converged = active_count(f) == 1;
        if (!converged) std::this_thread::sleep_for(500ms);
        (void)r;
    }
    REQUIRE_MESSAGE(converged, first.out << read_file(log));
    f.check_agreement();
}

TEST_CASE("e2e nfc: each side against libnfc's own example peers, garbage is a clean error and the agent serves on") {
    ScratchDir dir("credprov-nfc");
    NfcSim sim(dir.path(), {"reader", "device", "peer"});
    E2ELab f({"query", "deliver-sealed", "deprovision"}, {}, {sim.address("device")});
    SUBCASE("nfc-dep-initiator sends its greeting to the agent") {
        sim.send("remove peer");  // only our agent's chip is in the field
        auto peer = run_command({"/usr/bin/env", "LIBNFC_DEVICE=pn532_uart:" + (dir.path() / "reader").string(),
                                 "timeout", "20", "nfc-dep-initiator"});
        // libnfc's initiator found and activated our target and got an answer frame.
        CHECK_MESSAGE(peer.out.find("Received:") != std::string::npos, peer.out);
        CHECK(read_file(f.lab.dir / "agentd.log").find("session on nfc") != std::string::npos);
    }
    SUBCASE("our provisioner meets nfc-dep-target") {
        sim.send("remove device");  // only libnfc's target is in the field
        CommandResult peer;
        std::thread t([&] {
            peer = run_command({"/usr/bin/env", "LIBNFC_DEVICE=pn532_uart:" + (dir.path() / "peer").string(),
                                "timeout", "20", "nfc-dep-target"});
        });
        std::this_thread::sleep_for(500ms);
        auto r = f.credprov({"provision", "--address", sim.address("reader"), "--device", f.device, "--code", f.code});
        t.join();
        CHECK(r.exit_code != 0);
        CHECK(result_of(r)["ok"] == false);
        // The example target received our first frame and answered "Hello Mars!", which is no fragment.
        CHECK_MESSAGE(peer.out.find("Received:") != std::string::npos, peer.out);
        sim.send("remove peer");  // the example's chip stays a target in the field after it exits
        sim.send("restore device");
    }
    // Whatever happened, the agent provisions normally afterwards.
    auto r = f.credprov({"provision", "--address", sim.address("reader"), "--device", f.device, "--code", f.code});
    CHECK_MESSAGE(r.exit_code == 0, r.out << read_file(f.lab.dir / "agentd.log"));
}

TEST_CASE("e2e nfc: the label read from an NFC sticker (Type 4 tag) bootstraps the provisioning") {
    ScratchDir dir("credprov-nfc");
    // The sticker: the device's own label, written as NDEF by credprov-agentctl.
    ScratchDir stage("credprov-nfc-label");
    E2ELab f({"query", "deliver-sealed", "deprovision"}, {}, {});
    f.stop_agent();
    const auto ndef = stage.path() / "label.ndef";
    auto written = run_command({CREDPROV_AGENTCTL, "--state-dir", f.state.string(), "label", "--quiet", "--ndef", ndef.string()});
    REQUIRE(written.exit_code == 0);
    CHECK((std::filesystem::status(ndef).permissions() & std::filesystem::perms::others_read) == std::filesystem::perms::none);
    NfcSim sim(dir.path(), {"reader", "device"}, {"sticker=" + ndef.string()});
    f.agent_listen = {sim.address("device")};
    f.start_agent();
    SUBCASE("the sticker alone in the field, then the device") {
        sim.send("remove device");
        std::thread later([&] {
            std::this_thread::sleep_for(1500ms);
            sim.send("remove sticker");
            sim.send("restore device");
        });
        auto r = f.credprov({"provision", "--label", sim.address("reader"), "--address", sim.address("reader")});
        later.join();
        REQUIRE_MESSAGE(r.exit_code == 0, r.out << read_file(f.lab.dir / "agentd.log"));
        CHECK(result_of(r)["details"]["device_id"] == f.device);
        // The setup code came from the sticker: it is in no output.
        CHECK(r.out.find(f.code) == std::string::npos);
    }
    SUBCASE("no sticker: a clear error, nothing sent to the device") {
        sim.send("remove sticker");
        sim.send("remove device");
        auto r = f.credprov({"provision", "--label", sim.address("reader"), "--address", sim.address("reader")});
        CHECK(r.exit_code == 4);
        CHECK(result_of(r)["message"].get<std::string>().find("NFC label") != std::string::npos);
        CHECK(read_file(f.lab.dir / "agentd.log").find("session on nfc") == std::string::npos);
    }
}

#endif  // CREDPROV_TEST_HAVE_NFC
