// End to end with separate processes: credprov-backend, credprov-agentd on
// TCP loopback, and the credprov CLI as the technician. Faults: the link cut
// after every message of the session, each followed by a retry that must
// converge to exactly one active subscriber that the device and the backend
// agree on; an unenrolled or revoked provisioner is refused.
#include <doctest/doctest.h>

#include <netinet/in.h>

#include <sstream>

#include "e2e_lab.hpp"
#include "frame_drop_proxy.hpp"

using namespace credprov;
using namespace credprov::testing;
using namespace std::chrono_literals;

TEST_CASE("e2e: the credprov CLI provisions an agent through a real backend") {
    E2ELab f;
    auto r = f.provision(f.agent_port);
    REQUIRE_MESSAGE(r.exit_code == 0, r.out);
    const json out = json::parse(r.out);
    CHECK(out["ok"] == true);
    CHECK(out["details"]["state"] == "active");
    // The device is in the inventory: its bundle came with the token, and the
    // CLI never called POST /v1/bundles (decision 0013).
    const auto metrics = f.lab.anon("GET", "/metrics").raw;
    CHECK(metrics.find("route=\"/v1/tokens\"") != std::string::npos);
    CHECK(metrics.find("route=\"/v1/bundles\"") == std::string::npos);
    CHECK(metrics.find("credprov_bundles_issued_total 1") != std::string::npos);
    f.check_agreement();
    // Query over the link; history recorded; a second provision is refused.
    auto q = f.credprov({"query", "--address", "tcp://127.0.0.1:" + std::to_string(f.agent_port), "--device", f.device,
                         "--code", f.code});
    REQUIRE(q.exit_code == 0);
    CHECK(json::parse(q.out)["details"]["provisioned"] == true);
    auto h = f.credprov({"history"});
    REQUIRE(h.exit_code == 0);
    CHECK(json::parse(h.out)["items"].size() >= 2);
    CHECK(f.provision(f.agent_port).exit_code != 0);
    // The setup code is never in what the CLI prints or journals.
    CHECK(r.out.find(f.code) == std::string::npos);
    CHECK(h.out.find(f.code) == std::string::npos);
}

TEST_CASE("e2e: a device the backend does not know gets no bundle with the token, and the CLI asks for it after pairing") {
    E2ELab f({"query", "deliver-sealed", "deprovision"}, {}, {}, /*inventory=*/false);
    // Not in the inventory and without an attestation: the token comes, the
    // bundle is asked for with the keys the device showed, and refused.
    auto refused = f.provision(f.agent_port);
    CHECK(refused.exit_code != 0);
    CHECK(refused.out.find("no bundle") != std::string::npos);
    CHECK(refused.out.find("not in the inventory and brings no manufacturer attestation") != std::string::npos);
    // Whether /metrics counts a request to `route` answered with `status`.
    auto answered = [&](const std::string& route, int status) {
        std::istringstream lines(f.lab.anon("GET", "/metrics").raw);
        for (std::string line; std::getline(lines, line);) {
            if (line.starts_with("credprov_http_requests_total{") && line.find("route=\"" + route + "\"") != std::string::npos &&
                line.find("status=\"" + std::to_string(status) + "\"") != std::string::npos) {
                return true;
            }
        }
        return false;
    };
    CHECK(answered("/v1/bundles", 403));
    CHECK(f.lab.admin("GET", "/v1/subscribers?device=" + f.device).body["items"].empty());
    // Imported, the same command provisions it with the token's bundle.
    f.import_device();
    auto ok = f.provision(f.agent_port);
    REQUIRE_MESSAGE(ok.exit_code == 0, ok.out);
    CHECK_FALSE(answered("/v1/bundles", 201));
    CHECK(answered("/v1/tokens", 201));
    f.check_agreement();
}

TEST_CASE("e2e: a link cut after any message of the session, then a retry, converges to one active subscriber") {
    for (int cut = 0; cut <= 3; ++cut) {  // after M0 (none), M1, M2, M3: M4 lost is the committed-but-unacknowledged case
        CAPTURE(cut);
        E2ELab f;
        {
            FrameDropProxy proxy(f.agent_port, cut);
            auto broken = f.provision(proxy.port());
            CHECK(broken.exit_code == 4);  // link failure
        }
        // The device may count the aborted pairing: a back-off may apply.
        CommandResult retry;
        for (int attempt = 0; attempt < 40; ++attempt) {
            retry = f.provision(f.agent_port);
            if (retry.exit_code == 0) break;
            std::this_thread::sleep_for(250ms);
        }
        REQUIRE_MESSAGE(retry.exit_code == 0, retry.out);
        f.check_agreement();
    }
}

TEST_CASE("e2e: an unenrolled or revoked provisioner is refused before touching the device") {
    E2ELab f;
    auto stranger = run_command({CREDPROV_CLI, "--home", (f.lab.dir / "stranger").string(), "--json", "provision", "--address",
                                 "tcp://127.0.0.1:" + std::to_string(f.agent_port), "--device", f.device, "--code", f.code});
    CHECK(stranger.exit_code == 2);
    auto list = f.lab.admin("GET", "/v1/provisioners");
    REQUIRE(list.body["items"].size() == 1);
    REQUIRE(f.lab.admin("POST", "/v1/provisioners/" + list.body["items"][0]["id"].get<std::string>() + "/revoke",
                        json{{"reason", "left the company"}})
                .status == 200);
    auto revoked = f.provision(f.agent_port);
    CHECK(revoked.exit_code == 2);
    f.stop_agent();
    CHECK(f.status()["provisioned"] == false);
    CHECK(f.status()["unconfirmed_attempts"] == 0);  // the device was never contacted
}

namespace {

// Fault injector in front of the backend: a real HTTP server that forwards
// every request to the backend, except POST /v1/receipts and POST /v1/batch
// while `cut` is set (answered 503 as an overloaded or unreachable backend
// would be), and POST /v1/batch with `batch_status` when set (404: as a
// backend older than the endpoint answers).
class ReceiptCut {
public:
    explicit ReceiptCut(int backend_port) : upstream_("127.0.0.1", backend_port) {
        auto forward = [this](const httplib::Request& req, httplib::Response& res) {
            if (cut && (req.path == "/v1/receipts" || req.path == "/v1/batch")) {
                res.status = 503;
                res.set_content(R"({"type":"urn:test:cut","title":"cut","status":503,"detail":"cut by the test"})",
                                "application/problem+json");
                return;
            }
            if (const int status = batch_status; status != 0 && req.path == "/v1/batch") {
                res.status = status;
                res.set_content(json{{"type", "urn:test:batch"}, {"title", "Request refused"}, {"status", status},
                                     {"detail", "refused whole by the test"}}
                                    .dump(),
                                "application/problem+json");
                return;
            }
            httplib::Headers h;
            if (req.has_header("Authorization")) h.emplace("Authorization", req.get_header_value("Authorization"));
            auto r = req.method == "GET" ? upstream_.Get(req.target, h)
                                         : upstream_.Post(req.target, h, req.body, "application/json");
            if (!r) {
                res.status = 502;
                return;
            }
            res.status = r->status;
            res.set_content(r->body, r->get_header_value("Content-Type"));
        };
        server_.Get(".*", forward);
        server_.Post(".*", forward);
        port_ = server_.bind_to_any_port("127.0.0.1");
        thread_ = std::thread([this] { server_.listen_after_bind(); });
    }
    ~ReceiptCut() {
        server_.stop();
        thread_.join();
    }
    [[nodiscard]] std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
    std::atomic<bool> cut{true};
    std::atomic<int> batch_status{0};  // non-zero: POST /v1/batch answered with it

private:
    httplib::Client upstream_;
    httplib::Server server_;
    int port_{0};
    std::thread thread_;
};

// The technician's credprov (--json), enrolled for sealed work with the
// backend at `url` (here the fault injector in front of the lab's backend).
struct TechnicianCli {
    std::string home;
    TechnicianCli(BackendLab& lab, const std::string& url) : home((lab.dir / "technician").string()) {
        auto enr = lab.admin("POST", "/v1/enrolment-tokens", json{{"name", "queue test"}, {"operations", {"deliver-sealed", "query"}}});
        REQUIRE((*this)({"enroll", "--backend", url, "--token", enr.body["token"].get<std::string>()}).exit_code == 0);
    }
    CommandResult operator()(const std::vector<std::string>& args) const {
        std::vector<std::string> argv{CREDPROV_CLI, "--home", home, "--json"};
        argv.insert(argv.end(), args.begin(), args.end());
        return run_command(argv);
    }
};

// A device made as at the factory, imported into the lab's inventory, its
// agent serving on a loopback port.
struct InventoriedAgent {
    std::string device, code;
    int port{0};
    std::unique_ptr<AgentProcess> process;

    InventoriedAgent(BackendLab& lab, const std::string& name) {
        const auto state = lab.dir / name;
        REQUIRE(run_command({CREDPROV_AGENTCTL, "--state-dir", state.string(), "factory-init", "--root", to_hex(lab.root_public())})
                    .exit_code == 0);
        const json s = json::parse(run_command({CREDPROV_AGENTCTL, "--state-dir", state.string(), "status", "--json"}).out);
        device = s["device_id"].get<std::string>();
        code = field_of(run_command({CREDPROV_AGENTCTL, "--state-dir", state.string(), "label"}).out, "setup code");
        REQUIRE(lab.admin("POST", "/v1/inventory",
                          json{{"devices", json::array({{{"device_id", device}, {"identity_key", s["identity_key"]},
                                                         {"box_key", s["box_key"]}, {"box_signature", s["box_signature"]}}})}})
                    .status == 200);
        port = free_port();
        process = std::make_unique<AgentProcess>(
            CREDPROV_AGENTD, std::vector<std::string>{"--state-dir", state.string(), "--listen", address()},
            lab.dir / (name + "-agentd.log"));
        for (int i = 0; i < 200 && !port_open(port); ++i) std::this_thread::sleep_for(10ms);
    }
    [[nodiscard]] std::string address() const { return "tcp://127.0.0.1:" + std::to_string(port); }
};

}  // namespace

TEST_CASE("e2e: queue flush hands a day's receipts in together, and one at a time to a backend without POST /v1/batch") {
    BackendLab lab(Storage::sqlite);
    ReceiptCut injector(lab.port);
    const TechnicianCli cli(lab, injector.url());
    // Three devices provisioned while the receipts cannot get through.
    std::vector<std::string> devices;
    std::vector<std::unique_ptr<InventoriedAgent>> agents;
    for (int i = 0; i < 3; ++i) {
        agents.push_back(std::make_unique<InventoriedAgent>(lab, "device" + std::to_string(i)));
        const InventoriedAgent& a = *agents.back();
        CHECK(cli({"provision", "--address", a.address(), "--device", a.device, "--code", a.code}).exit_code == 6);
        devices.push_back(a.device);
    }
    REQUIRE(json::parse(cli({"queue", "status"}).out)["details"]["items"].size() == 3);
    CHECK(cli({"queue", "flush"}).exit_code == 6);  // still cut, batch and all: nothing lost
    REQUIRE(json::parse(cli({"queue", "status"}).out)["details"]["items"].size() == 3);
    // Meanwhile the operator cancelled the second device's order.
    REQUIRE(lab.admin("POST", "/v1/devices/" + devices[1] + "/deprovision", json{{"reason", "cancelled order"}}).status == 200);
    injector.cut = false;
    auto state_of = [&](const std::string& device) {
        return lab.admin("GET", "/v1/subscribers?device=" + device).body["items"][0]["state"].get<std::string>();
    };
    auto count = [&](const std::string& metrics, const std::string& series) {
        const auto at = metrics.find(series + " ");
        return at == std::string::npos ? 0.0 : std::stod(metrics.substr(at + series.size() + 1));
    };

    SUBCASE("one POST /v1/batch carries them all") {
        auto flushed = cli({"queue", "flush"});
        CHECK(flushed.exit_code == 3);  // one refused
        CHECK(json::parse(flushed.out)["details"]["posted"] == 2);
        CHECK(json::parse(flushed.out)["details"]["refused"] == 1);
        const std::string metrics = lab.anon("GET", "/metrics").raw;
        CHECK(count(metrics, R"(credprov_batch_requests_total{route="/v1/receipts",status="200"})") == 2);
        CHECK(count(metrics, R"(credprov_http_requests_total{route="/v1/batch",method="POST",status="200"})") == 1);
        CHECK(metrics.find(R"(route="/v1/receipts",method="POST")") == std::string::npos);
    }
    SUBCASE("a backend without it gets them one at a time") {
        injector.batch_status = 404;
        auto flushed = cli({"queue", "flush"});
        CHECK(flushed.exit_code == 3);
        CHECK(json::parse(flushed.out)["details"]["posted"] == 2);
        CHECK(json::parse(flushed.out)["details"]["refused"] == 1);
        const std::string metrics = lab.anon("GET", "/metrics").raw;
        CHECK(count(metrics, R"(credprov_http_requests_total{route="/v1/receipts",method="POST",status="200"})") == 2);
        CHECK(metrics.find(R"(route="/v1/batch")") == std::string::npos);
    }
    SUBCASE("a batch refused whole is sent one at a time: no receipt is dropped for it") {
        injector.batch_status = 400;
        auto flushed = cli({"queue", "flush"});
        CHECK(flushed.exit_code == 3);
        CHECK(json::parse(flushed.out)["details"]["posted"] == 2);
        CHECK(json::parse(flushed.out)["details"]["refused"] == 1);
    }
    CHECK(state_of(devices[0]) == "active");
    CHECK(state_of(devices[1]) == "deprovisioned");
    CHECK(state_of(devices[2]) == "active");
    CHECK(json::parse(cli({"queue", "status"}).out)["details"]["items"].empty());
    auto history = json::parse(cli({"history"}).out)["items"];
    int active = 0, failed = 0;
    for (const auto& h : history) {
        if (h["state"] == "active") ++active;
        if (h["state"] == "failed") ++failed;
    }
    CHECK(active == 2);
    CHECK(failed == 1);
}

TEST_CASE("e2e: a receipt the backend cannot take waits in the queue, and queue flush activates the subscriber") {
    BackendLab lab(Storage::sqlite);
    ReceiptCut injector(lab.port);
    // The same set-up as E2ELab, but the technician talks to the backend through the injector.
    const InventoriedAgent agent(lab, "device");
    const std::string& device = agent.device;
    const TechnicianCli cli(lab, injector.url());

    auto queued = cli({"provision", "--address", agent.address(), "--device", device, "--code", agent.code});
    CHECK(queued.exit_code == 6);
    auto pending = lab.admin("GET", "/v1/subscribers?device=" + device);
    REQUIRE(pending.body["items"].size() == 1);
    CHECK(pending.body["items"][0]["state"] == "pending");
    auto status = cli({"queue", "status"});
    REQUIRE(status.exit_code == 0);
    CHECK(json::parse(status.out)["details"]["items"].size() == 1);
    // Still cut: the flush keeps the receipt.
    CHECK(cli({"queue", "flush"}).exit_code == 6);

    SUBCASE("the backend back: queue flush activates the subscriber") {
        injector.cut = false;
        auto flushed = cli({"queue", "flush"});
        CHECK(flushed.exit_code == 0);
        CHECK(json::parse(flushed.out)["details"]["posted"] == 1);
        auto active = lab.admin("GET", "/v1/subscribers?device=" + device);
        CHECK(active.body["items"][0]["state"] == "active");
        CHECK(json::parse(cli({"queue", "status"}).out)["details"]["items"].empty());
        auto history = json::parse(cli({"history"}).out);
        CHECK(history["items"][0]["state"] == "active");
    }
    SUBCASE("a receipt the backend refuses is reported as refused, not posted, and leaves the queue") {
        // The operator deprovisioned the device meanwhile: the pending subscriber can no longer activate.
        REQUIRE(lab.admin("POST", "/v1/devices/" + device + "/deprovision", json{{"reason", "cancelled order"}}).status == 200);
        injector.cut = false;
        auto flushed = cli({"queue", "flush"});
        CHECK(flushed.exit_code == 3);
        CHECK(json::parse(flushed.out)["details"]["posted"] == 0);
        CHECK(json::parse(flushed.out)["details"]["refused"] == 1);
        CHECK(json::parse(cli({"queue", "status"}).out)["details"]["items"].empty());
        CHECK(json::parse(cli({"history"}).out)["items"][0]["state"] == "failed");
    }
}
