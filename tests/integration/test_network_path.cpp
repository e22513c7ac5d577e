// The device's network path end to end, every part a real process: a
// credprov-backend, a credprov-agentd provisioned over its Unix socket with
// a token and a sealed bundle from that backend, then credprov-agentctl's
// attach check and deprovisioning notice against the backend.
#include <doctest/doctest.h>

#include "backend_flows.hpp"
#include "credprov/transport/stream_transport.hpp"

using namespace credprov;
using namespace credprov::testing;
using namespace std::chrono_literals;

namespace {

struct Agent {
    std::filesystem::path dir;
    std::filesystem::path state;
    std::filesystem::path socket;
    json status;
    std::string code;

    explicit Agent(const crypto::SignPublicKey& root) {
        std::string tmpl = (std::filesystem::temp_directory_path() / "credprov-netpath-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        dir = tmpl;
        state = dir / "state";
        socket = dir / "agent.sock";
        REQUIRE(run_command({CREDPROV_AGENTCTL, "--state-dir", state.string(), "factory-init", "--root", to_hex(root)}).exit_code == 0);
        refresh();
        auto label = run_command({CREDPROV_AGENTCTL, "--state-dir", state.string(), "label"});
        code = field_of(label.out, "setup code");
    }
    ~Agent() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    void refresh() {
        auto s = run_command({CREDPROV_AGENTCTL, "--state-dir", state.string(), "status", "--json"});
        REQUIRE(s.exit_code == 0);
        status = json::parse(s.out);
    }
    CommandResult ctl(const std::string& cmd, const std::string& url) {
        return run_command({CREDPROV_AGENTCTL, "--state-dir", state.string(), cmd, "--backend", url, "--json"});
    }
};

// A technician's session with the running agent: pair (learning the device's
// keys), mint a bundle at the backend for those keys, deliver, hand the receipt back.
Resp provision_over_socket(Technician& tech, BackendLab& lab, Agent& agent) {
    const DeviceId device = *DeviceId::parse(agent.status["device_id"].get<std::string>());
    auto token = tech.token(device);
    REQUIRE(token);
    auto link = transport::StreamTransport::connect(transport::Address::parse("unix:" + agent.socket.string()).value(), 2s);
    REQUIRE(link.ok());
    auto& l = **link;
    auto exchange = [&](const Bytes& m) {
        REQUIRE(l.send(m).ok());
        auto r = receive(l, 5s);
        REQUIRE(r.ok());
        return *r;
    };
    auto code = std::move(SetupCode::parse(agent.code)).value();
    ProvisionerSetup setup;
    setup.device = device;
    setup.transport = TransportType::tcp;
    setup.key = &tech.key;
    setup.token = *token;
    setup.operator_certificate = lab.certificate;
    ProvisionerSession p(std::move(setup), code);
    REQUIRE(p.read_pair_response(exchange(p.start().value())).ok());
    const KnownDeviceKeys& keys = p.device_keys();
    REQUIRE(keys.box_signature.has_value());
    auto minted = tech.post("/v1/bundles", json{{"device", {{"device_id", device.to_string()},
                                                            {"identity_key", to_hex(keys.identity)},
                                                            {"box_key", to_hex(keys.box)},
                                                            {"box_signature", to_hex(*keys.box_signature)}}}});
    REQUIRE(minted.status == 201);
    auto bundle = SignedObject::decode(*backend::base64_decode(minted.body["bundle"].get<std::string>())).value();
    auto resp = p.read_response(exchange(p.authorise(Request{Operation::deliver_sealed, bundle}).value()));
    REQUIRE_MESSAGE(resp.ok(), resp.error().message);
    REQUIRE(resp->receipt);
    return tech.submit(minted.body["object_id"].get<std::string>(), *resp->receipt);
}

}  // namespace

TEST_CASE("network path: a provisioned agent attaches, then learns of its deprovisioning from the backend") {
    BackendLab lab(Storage::sqlite);
    Agent agent(lab.root_public());
    // Manufacturing puts the device into the operator's inventory.
    json entry{{"device_id", agent.status["device_id"]},
               {"identity_key", agent.status["identity_key"]},
               {"box_key", agent.status["box_key"]},
               {"box_signature", agent.status["box_signature"]}};
    REQUIRE(lab.admin("POST", "/v1/inventory", json{{"devices", json::array({entry})}}).status == 200);
    const std::string url = "http://127.0.0.1:" + std::to_string(lab.port);
    // Before provisioning there is nothing to attach with.
    CHECK(agent.ctl("attach", url).exit_code == 1);

    Technician tech(lab);
    {
        AgentProcess agentd(CREDPROV_AGENTD, {"--state-dir", agent.state.string(), "--listen", "unix:" + agent.socket.string()},
                            agent.dir / "agentd.log");
        REQUIRE(agentd.wait_for_socket(agent.socket, 5s));
        auto receipt = provision_over_socket(tech, lab, agent);
        REQUIRE_MESSAGE(receipt.status == 200, receipt.raw);
        CHECK(receipt.body["state"] == "active");
        agentd.signal(SIGTERM);
        CHECK(agentd.wait() == 0);
    }
    agent.refresh();
    REQUIRE(agent.status["provisioned"] == true);
    const std::string imsi = agent.status["imsi"].get<std::string>();

    // The attach check with the stored credential, twice (SQN moves on).
    for (int i = 0; i < 2; ++i) {
        auto attach = agent.ctl("attach", url);
        CHECK(attach.exit_code == 0);
        const json r = json::parse(attach.out);
        CHECK(r["verdict"] == "attached");
        CHECK(r["imsi"] == imsi);
    }
    CHECK(agent.ctl("notice", url).exit_code == 0);  // nothing to apply yet

    // The operator deprovisions through the network alone.
    REQUIRE(lab.admin("POST", "/v1/devices/" + agent.status["device_id"].get<std::string>() + "/deprovision",
                      json{{"reason", "end of contract"}})
                .status == 200);
    auto attach = agent.ctl("attach", url);
    CHECK(attach.exit_code == 11);
    CHECK(json::parse(attach.out)["notice_applied"] == true);
    agent.refresh();
    CHECK(agent.status["provisioned"] == false);
    CHECK(agent.status["owner_counter"] == 1);
    // Fetching the notice again changes nothing.
    auto again = agent.ctl("notice", url);
    CHECK(again.exit_code == 0);
    CHECK(json::parse(again.out)["verdict"] == "stale-notice");

    // A re-provisioning after that works (the new bundle's epoch is above the notice's counter).
    {
        AgentProcess agentd(CREDPROV_AGENTD, {"--state-dir", agent.state.string(), "--listen", "unix:" + agent.socket.string()},
                            agent.dir / "agentd.log");
        REQUIRE(agentd.wait_for_socket(agent.socket, 5s));
        auto receipt = provision_over_socket(tech, lab, agent);
        CHECK(receipt.status == 200);
    }
    agent.refresh();
    CHECK(agent.status["provisioned"] == true);
    CHECK(agent.status["imsi"] != imsi);
}

TEST_CASE("network path: an unreachable backend or a bad URL is a clear error") {
    BackendLab lab(Storage::sqlite);
    Agent agent(lab.root_public());
    auto bad = agent.ctl("attach", "ftp://example");
    CHECK(bad.exit_code == 2);
    auto plain = agent.ctl("notice", "http://example.net:8443");
    CHECK(plain.exit_code == 2);
    lab.kill_server();
    auto down = agent.ctl("notice", "http://127.0.0.1:" + std::to_string(lab.port));
    CHECK(down.exit_code == 10);
}
