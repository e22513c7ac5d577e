// The backend under hostile or unauthorised use, on SQLite and PostgreSQL:
// the role matrix over every route, bad and hostile input (answered 4xx,
// nothing written), request signatures, revocation, rate limits, the audit
// chain's tamper evidence, and a SIGKILL in the middle of registrations.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <atomic>
#include <thread>

#include "backend_test.hpp"
#include "credprov/backend/http_api.hpp"

using namespace credprov;
using namespace credprov::testing;

namespace {

std::string concrete(const std::string& templ, const DeviceId& dev) {
    std::string p = templ;
    auto put = [&](const std::string& name, const std::string& value) {
        const auto at = p.find(name);
        if (at != std::string::npos) p.replace(at, name.size(), value);
    };
    put("{id}", "tok_00000000");
    put("{imsi}", "001010000000001");
    put("{device_id}", dev.to_string());
    put("{pool_id}", "pool_0000");
    return p;
}

bool denied(int status) { return status == 401 || status == 403; }

}  // namespace

BACKEND_TEST(role_matrix, "authorisation matrix: every role against every route") {
    const DeviceId dev = DeviceIdentity::generate().id;
    std::map<std::string, std::string> tokens{{"admin", lab.admin_token}};
    for (const char* role : {"auditor", "provisioner-manager", "core-network"}) tokens[role] = lab.token_for(role);
    Technician tech(lab, {"query", "deliver-sealed", "deliver-field", "deprovision", "reconfigure", "diagnose", "transfer"});
    int checked = 0;
    for (const auto& route : backend::api_routes()) {
        const std::string path = concrete(route.path, dev);
        CAPTURE(route.method);
        CAPTURE(route.path);
        const std::optional<json> body = route.method == "POST" ? std::optional<json>(json::object()) : std::nullopt;
        // No credentials.
        const Resp none = lab.request(route.method, path, body, {});
        CHECK(none.status != 0);
        if (route.access.anonymous) {
            CHECK_FALSE(denied(none.status));
        } else {
            CHECK(none.status == 401);
        }
        // Each admin role.
        for (const auto& [role, token] : tokens) {
            CAPTURE(role);
            const Resp r = lab.request(route.method, path, body, {{"Authorization", "Bearer " + token}});
            const bool allowed = route.access.anonymous ||
                                 std::find(route.access.roles.begin(), route.access.roles.end(), *backend::parse_role(role)) !=
                                     route.access.roles.end();
            if (allowed) {
                CHECK_FALSE(denied(r.status));
            } else {
                CHECK(denied(r.status));
            }
            ++checked;
        }
        // An enrolled provisioner's signature.
        const Resp p = lab.signed_by(tech.key, route.method, path, body.value_or(json::object()));
        CAPTURE(p.raw);
        if (route.access.anonymous || route.access.provisioner) {
            CHECK_FALSE(denied(p.status));
        } else {
            CHECK(denied(p.status));
        }
    }
    CHECK(checked >= 4 * 25);
    // The route table, for the OpenAPI conformance check.
    if (const char* dir = std::getenv("CREDPROV_API_TRACE"); dir != nullptr && *dir != '\0') {
        std::filesystem::create_directories(dir);
        std::ofstream out(std::filesystem::path(dir) / "routes.txt");
        for (const auto& route : backend::api_routes()) {
            std::string access;
            if (route.access.anonymous) access = "anonymous";
            if (route.access.provisioner) access = "provisioner";
            for (auto role : route.access.roles) access += (access.empty() ? "" : ",") + std::string(backend::to_string(role));
            out << route.method << ' ' << route.path << ' ' << access << '\n';
        }
    }
}

BACKEND_TEST(hostile_input, "bad and hostile input is answered 4xx and writes nothing") {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    const std::string before = lab.state_fingerprint();
    const httplib::Headers admin{{"Authorization", "Bearer " + lab.admin_token}};
    struct Case {
        std::string what, method, path, body, type;
        int status;
    };
    const std::string key_hex = to_hex(crypto::generate_signing_key().public_key);
    const std::vector<Case> cases{
        {"malformed JSON", "POST", "/v1/provisioners", R"({"name": "x", )", "application/json", 400},
        {"not an object", "POST", "/v1/provisioners", R"(["name"])", "application/json", 400},
        {"deep nesting", "POST", "/v1/provisioners", std::string(5000, '[') + std::string(5000, ']'), "application/json", 400},
        {"wrong type", "POST", "/v1/provisioners", R"({"name": 5, "public_key": ")" + key_hex + R"(", "operations": ["query"]})",
         "application/json", 400},
        {"unknown field", "POST", "/v1/provisioners",
         R"({"name": "x", "public_key": ")" + key_hex + R"(", "operations": ["query"], "role": "admin"})", "application/json", 400},
        {"short key", "POST", "/v1/provisioners", R"({"name": "x", "public_key": "abcd", "operations": ["query"]})", "application/json", 400},
        {"unknown operation", "POST", "/v1/provisioners",
         R"({"name": "x", "public_key": ")" + key_hex + R"(", "operations": ["everything"]})", "application/json", 400},
        {"control characters", "POST", "/v1/provisioners",
         R"({"name": "x\u0000y", "public_key": ")" + key_hex + R"(", "operations": ["query"]})", "application/json", 400},
        {"too long", "POST", "/v1/provisioners",
         R"({"name": ")" + std::string(300, 'a') + R"(", "public_key": ")" + key_hex + R"(", "operations": ["query"]})",
         "application/json", 400},
        {"wrong content type", "POST", "/v1/provisioners", "name=x", "application/x-www-form-urlencoded", 415},
        {"oversized body", "POST", "/v1/inventory", R"({"devices": [")" + std::string(80 * 1024, 'a') + R"("]})",
         "application/json", 413},
        {"inventory with a forged id", "POST", "/v1/inventory",
         json{{"devices", json::array({json{{"device_id", DeviceIdentity::generate().id.to_string()},
                                           {"identity_key", to_hex(dev.identity.identity.public_key)},
                                           {"box_key", to_hex(dev.identity.box.public_key)},
                                           {"box_signature", to_hex(dev.identity.box_signature)}}})}}
             .dump(),
         "application/json", 400},
        {"SQL in a path", "GET", "/v1/subscribers/1'%20OR%20'1'='1", "", "", 400},
        {"SQL in a query", "GET", "/v1/subscribers?state=active'%20OR%201=1--", "", "", 400},
        {"SQL in a cursor", "GET", "/v1/subscribers?cursor=x'%3BDROP%20TABLE%20subscribers", "", "", 400},
        {"bad limit", "GET", "/v1/subscribers?limit=99999999999999999999", "", "", 400},
        {"bad IMSI", "POST", "/v1/subscribers/12ab/vectors", "{}", "application/json", 400},
        {"bad device id", "POST", "/v1/devices/NOT-A-DEVICE/deprovision", R"({"reason": "x"})", "application/json", 400},
        {"bad role", "POST", "/v1/admin/tokens", R"({"name": "x", "role": "root"})", "application/json", 400},
        {"unknown route", "GET", "/v1/nothing-here", "", "", 404},
    };
    for (const auto& c : cases) {
        CAPTURE(c.what);
        const Resp r = c.method == "GET" ? lab.request("GET", c.path, std::nullopt, admin)
                                         : lab.request("POST", c.path, std::nullopt, admin, c.body, c.type);
        CHECK(r.status == c.status);
        CHECK(r.content_type.starts_with("application/problem+json"));
        CHECK(r.body.is_object());
        if (r.body.is_object()) {
            CHECK(r.body["status"] == c.status);
            CHECK(r.body["detail"].is_string());
        }
    }
    // Hostile attach input from the anonymous network path.
    CHECK(lab.anon("POST", "/v1/attach/challenge", json{{"imsi", "' OR 1=1 --"}}).status == 400);
    CHECK(lab.anon("POST", "/v1/attach/response", json{{"challenge_id", "x'; DELETE FROM subscribers; --"}, {"res", "00112233"}}).status == 409);
    CHECK(lab.state_fingerprint() == before);

    // SQL metacharacters in a valid field are stored as text, nothing more.
    auto odd = lab.admin("POST", "/v1/provisioners",
                         json{{"name", "x'); DROP TABLE subscribers; --"}, {"public_key", key_hex}, {"operations", {"query"}}});
    REQUIRE(odd.status == 201);
    CHECK(odd.body["name"] == "x'); DROP TABLE subscribers; --");
    CHECK(lab.admin("GET", "/v1/subscribers").status == 200);
}

BACKEND_TEST(request_signatures, "provisioner requests must be signed by an enrolled key over this exact request") {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    const json body{{"device", BackendLab::device_json(dev.identity)}};
    const std::string payload = body.dump();
    const auto now = static_cast<std::uint64_t>(std::time(nullptr));
    const std::string before = lab.state_fingerprint();
    auto send = [&](const std::string& auth, const std::string& sent) {
        return lab.request("POST", "/v1/bundles", std::nullopt, {{"Authorization", auth}}, sent);
    };
    // The body changed after signing.
    std::string tampered = payload;
    tampered.back() = ' ';
    tampered += "}";
    CHECK(send(backend::sign_request(tech.key, "POST", "/v1/bundles", now, payload), tampered).status == 401);
    // Signed for another path.
    CHECK(send(backend::sign_request(tech.key, "POST", "/v1/tokens", now, payload), payload).status == 401);
    // Outside the clock window.
    CHECK(send(backend::sign_request(tech.key, "POST", "/v1/bundles", now - 3600, payload), payload).status == 401);
    // A key nobody enrolled.
    auto stranger = crypto::generate_signing_key();
    CHECK(send(backend::sign_request(stranger, "POST", "/v1/bundles", now, payload), payload).status == 403);
    // Garbage.
    CHECK(send("Credprov-Signature key=zz, ts=1, sig=00", payload).status == 401);
    CHECK(send("Bearer cpa_" + std::string(64, '0'), payload).status == 401);
    CHECK(lab.state_fingerprint() == before);
    // The failures are counted and audited.
    auto metrics = lab.anon("GET", "/metrics");
    CHECK(metrics.raw.find("credprov_auth_failures_total{kind=\"provisioner-signature\"} 5") != std::string::npos);
    CHECK(send(backend::sign_request(tech.key, "POST", "/v1/bundles", now, payload), payload).status == 201);
}

BACKEND_TEST(revocation, "revoked admin tokens and provisioners are refused") {
    auto auditor = lab.token_for("auditor");
    CHECK(lab.admin("GET", "/v1/subscribers", std::nullopt, auditor).status == 200);
    auto list = lab.admin("GET", "/v1/admin/tokens");
    std::string id;
    for (const auto& t : list.body["items"]) {
        if (t["role"] == "auditor") id = t["id"].get<std::string>();
    }
    REQUIRE_FALSE(id.empty());
    CHECK(list.raw.find(auditor) == std::string::npos);  // token values are never listed
    CHECK(lab.admin("DELETE", "/v1/admin/tokens/" + id).status == 200);
    CHECK(lab.admin("GET", "/v1/subscribers", std::nullopt, auditor).status == 401);

    Technician tech(lab);
    auto pool = tech.post("/v1/field-pools", json{{"request_id", "r1"}, {"count", 2}});
    REQUIRE(pool.status == 201);
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    REQUIRE(tech.token(dev.identity.id));
    auto shown = lab.admin("GET", "/v1/provisioners/" + tech.id);
    REQUIRE(shown.status == 200);
    CHECK(shown.body["revoked"] == false);
    auto revoked = lab.admin("POST", "/v1/provisioners/" + tech.id + "/revoke", json{{"reason", "laptop stolen"}});
    REQUIRE(revoked.status == 200);
    CHECK(revoked.body["revoked"] == true);
    CHECK_FALSE(tech.token(dev.identity.id));
    CHECK(tech.mint(dev).status == 403);
    auto c = lab.db()->query("SELECT COUNT(*) FROM field_authorisations WHERE state = 'returned'");
    REQUIRE(c.ok());
    CHECK(c->front().i64(0) == 2);
}

static LabOptions rate_limited(std::uint64_t per_second, std::uint64_t burst) {
    LabOptions o;
    o.rate_per_second = per_second;
    o.rate_burst = burst;
    return o;
}

BACKEND_TEST_WITH(rate_limits, "requests above the per-identity rate are refused with Retry-After", rate_limited(1, 3)) {
    int limited = 0;
    std::string retry_after;
    for (int i = 0; i < 10; ++i) {
        auto r = lab.admin("GET", "/v1/subscribers");
        if (r.status == 429) {
            ++limited;
            retry_after = r.retry_after;
            CHECK(r.content_type.starts_with("application/problem+json"));
        }
    }
    CHECK(limited >= 5);
    CHECK_FALSE(retry_after.empty());
    CHECK(lab.anon("GET", "/metrics").raw.find("credprov_rate_limited_total 0") == std::string::npos);
}

BACKEND_TEST_WITH(batch_rate_limit, "the rate limit counts every request in a POST /v1/batch, not the batch", rate_limited(1, 4)) {
    Technician tech(lab);
    json asks = json::array();
    for (int i = 0; i < 4; ++i) {
        asks.push_back({{"path", "/v1/tokens"},
                        {"body", {{"device_id", DeviceIdentity::generate().id.to_string()}, {"operations", {"query"}}}}});
    }
    auto batch = tech.post("/v1/batch", json{{"requests", asks}});
    REQUIRE_MESSAGE(batch.status == 200, batch.raw);
    for (const auto& r : batch.body["responses"]) CHECK(r["status"] == 201);
    // Four requests spent the burst of four: the next one waits.
    auto next = tech.post("/v1/tokens", asks[0]["body"]);
    CHECK(next.status == 429);
    CHECK_FALSE(next.retry_after.empty());
}

BACKEND_TEST(audit_chain, "the audit chain verifies, and an edited or removed row is detected") {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    auto reg = tech.register_sealed(dev);
    REQUIRE(reg.receipt.status == 200);
    auto ok = lab.admin("GET", "/v1/audit/verify");
    REQUIRE(ok.status == 200);
    CHECK(ok.body["ok"] == true);
    const auto entries = ok.body["entries"].get<std::int64_t>();
    CHECK(entries >= 5);
    auto log = lab.admin("GET", "/v1/audit?limit=1000");
    bool activation = false;
    for (const auto& e : log.body["items"]) {
        activation = activation || (e["action"] == "subscriber.activate" && e["actor"] == "provisioner:" + tech.id);
        CHECK(e["remote"].is_string());
    }
    CHECK(activation);
    CHECK(run_command({CREDPROV_BACKEND, "-c", lab.config.string(), "audit", "verify"}).exit_code == 0);

    // Someone with database access edits one row.
    REQUIRE(lab.db()->exec("UPDATE audit_log SET detail = 'nothing happened' WHERE seq = 3").ok());
    auto bad = lab.admin("GET", "/v1/audit/verify");
    REQUIRE(bad.status == 200);
    CHECK(bad.body["ok"] == false);
    CHECK(bad.body["first_bad"] == 3);
    CHECK(run_command({CREDPROV_BACKEND, "-c", lab.config.string(), "audit", "verify"}).exit_code == 6);
}

BACKEND_TEST(audit_truncation, "removing the newest audit entries is detected") {
    Technician tech(lab);
    (void)tech;
    REQUIRE(lab.admin("GET", "/v1/audit/verify").body["ok"] == true);
    auto c = lab.db();
    auto max = c->query("SELECT MAX(seq) FROM audit_log");
    REQUIRE(max.ok());
    REQUIRE(c->exec("DELETE FROM audit_log WHERE seq = ?", {max->front().i64(0)}).ok());
    auto bad = lab.admin("GET", "/v1/audit/verify");
    CHECK(bad.body["ok"] == false);
}

BACKEND_TEST(metrics_and_health, "health, metrics and the served OpenAPI document") {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    REQUIRE(tech.register_sealed(dev).receipt.status == 200);
    auto h = lab.anon("GET", "/healthz");
    REQUIRE(h.status == 200);
    CHECK(h.body["status"] == "ok");
    CHECK(h.body["storage"] == (lab.storage == Storage::sqlite ? "sqlite" : "postgresql"));
    auto m = lab.anon("GET", "/metrics");
    REQUIRE(m.status == 200);
    CHECK(m.content_type.starts_with("text/plain"));
    CHECK(m.raw.find("credprov_registrations_total{mode=\"sealed\"} 1") != std::string::npos);
    CHECK(m.raw.find("credprov_bundles_issued_total 1") != std::string::npos);
    CHECK(m.raw.find("credprov_subscribers{state=\"active\"} 1") != std::string::npos);
    CHECK(m.raw.find("credprov_http_request_duration_seconds_bucket{route=\"/v1/bundles\",le=\"+Inf\"} 1") != std::string::npos);
    auto doc = lab.anon("GET", "/openapi.json");
    REQUIRE(doc.status == 200);
    CHECK(doc.body == json::parse(read_file(std::filesystem::path(CREDPROV_SOURCE_DIR) / "network_backend/openapi.json")));
    auto op = lab.anon("GET", "/v1/operator");
    REQUIRE(op.status == 200);
    CHECK(op.body["sign_key"] == to_hex(lab.operator_key));
    auto cert = SignedObject::decode(*backend::base64_decode(op.body["certificate"].get<std::string>()));
    REQUIRE(cert.ok());
    CHECK(verify_operator_certificate(*cert, lab.root_public()).ok());
}

// ---- crash safety --------------------------------------------------------------------------

BACKEND_TEST(crash_during_registrations, "SIGKILL during a stream of registrations loses nothing acknowledged") {
    constexpr int kDevices = 48;
    constexpr int kWorkers = 4;
    std::vector<std::unique_ptr<SimDevice>> devices;
    json inventory = json::array();
    for (int i = 0; i < kDevices; ++i) {
        devices.push_back(std::make_unique<SimDevice>(lab.trust()));
        inventory.push_back(BackendLab::device_json(devices.back()->identity));
    }
    REQUIRE(lab.admin("POST", "/v1/inventory", json{{"devices", inventory}}).status == 200);
    Technician tech(lab);

    std::mutex m;
    std::map<std::string, std::string> minted;        // device id -> imsi (201/200 seen)
    std::map<std::string, std::string> acknowledged;  // device id -> imsi (receipt 200 seen)
    // device id -> (object id, the device's receipt) when its answer was lost:
    // the device has committed; the provisioner keeps the receipt to hand in.
    std::map<std::string, std::pair<std::string, Receipt>> unsent;
    std::atomic<int> next{0};
    std::atomic<int> acks{0};
    auto worker = [&] {
        for (int i = next++; i < kDevices; i = next++) {
            SimDevice& d = *devices[static_cast<std::size_t>(i)];
            auto reg = tech.register_sealed(d);
            std::lock_guard lock(m);
            if (reg.minted.status == 201 || reg.minted.status == 200) minted[d.identity.id.to_string()] = reg.imsi;
            if (reg.receipt.status == 200) {
                acknowledged[d.identity.id.to_string()] = reg.imsi;
                ++acks;
            } else if (reg.device_receipt) {
                unsent.emplace(d.identity.id.to_string(), std::make_pair(reg.object_id, *reg.device_receipt));
            }
        }
    };
    std::vector<std::thread> threads;
    for (int i = 0; i < kWorkers; ++i) threads.emplace_back(worker);
    while (acks < 12 && next < kDevices) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    lab.kill_server();  // SIGKILL, mid-stream
    for (auto& t : threads) t.join();
    REQUIRE(acks >= 12);
    MESSAGE(acks.load(), " registrations acknowledged before the kill, ", minted.size(), " bundles minted");

    lab.start();
    // Every acknowledged registration is there, active, for its device.
    for (const auto& [device, imsi] : acknowledged) {
        auto s = lab.admin("GET", "/v1/subscribers/" + imsi);
        REQUIRE(s.status == 200);
        CHECK(s.body["state"] == "active");
        CHECK(s.body["device_id"] == device);
    }
    for (const auto& [device, imsi] : minted) CHECK(lab.admin("GET", "/v1/subscribers/" + imsi).status == 200);
    // None is half-written: every row complete, one IMSI allocated per row,
    // and the audit chain intact.
    auto c = lab.db();
    auto rows = c->query("SELECT imsi, state, keys_enc, signed_object, object_hash, device_id FROM subscribers");
    REQUIRE(rows.ok());
    for (const auto& r : *rows) {
        CHECK_FALSE(r.str(2).empty());
        CHECK_FALSE(r.str(3).empty());
        CHECK(r.str(4).size() == 64);
        CHECK((r.str(1) == "pending" || r.str(1) == "active"));
    }
    auto alloc = c->query("SELECT next_msin FROM imsi_allocator");
    REQUIRE(alloc.ok());
    CHECK(alloc->front().i64(0) == static_cast<std::int64_t>(rows->size()));
    CHECK(lab.admin("GET", "/v1/audit/verify").body["ok"] == true);
    // And the interrupted registrations complete when retried.
    int completed = 0;
    for (auto& d : devices) {
        if (acknowledged.count(d->identity.id.to_string())) continue;
        // A receipt committed just before the kill, whose answer was lost, is
        // already active: a retry rightly finds nothing to do (409 on mint).
        auto done = lab.admin("GET", "/v1/subscribers?state=active&device=" + d->identity.id.to_string());
        if (done.status == 200 && done.body["items"].size() == 1) {
            ++completed;
            continue;
        }
        // A device that committed before the kill holds its credential: its
        // receipt, kept by the provisioner, is handed in again (as the CLI's
        // receipt queue does); the others register from the start.
        if (auto kept = unsent.find(d->identity.id.to_string()); kept != unsent.end()) {
            auto r = tech.submit(kept->second.first, kept->second.second);
            CHECK(r.status == 200);
            completed += r.status == 200;
            continue;
        }
        auto reg = tech.register_sealed(*d);
        CHECK(reg.receipt.status == 200);
        completed += reg.receipt.status == 200;
    }
    auto active = lab.admin("GET", "/v1/subscribers?state=active&limit=500");
    CHECK(active.body["items"].size() == static_cast<std::size_t>(kDevices));
    MESSAGE(completed, " registrations completed after the restart");
}

BACKEND_TEST(enrolment_tokens, "a technician's tool enrols its own key with a one-time enrolment token") {
    auto manager = lab.token_for("provisioner-manager");
    auto issued = lab.admin("POST", "/v1/enrolment-tokens",
                            json{{"name", "van 12"}, {"operations", {"query", "deliver-sealed"}}, {"ttl_s", 600}}, manager);
    REQUIRE(issued.status == 201);
    const std::string token = issued.body["token"].get<std::string>();
    CHECK(token.starts_with("cpe_"));
    const auto key = crypto::generate_signing_key();
    auto proof = [&](const crypto::SigningKey& k, const std::string& t) {
        return to_hex(crypto::sign(k, backend::kEnrolmentContext, as_bytes(t)));
    };
    const std::string before = lab.state_fingerprint();
    // Without proof of the key, or with a made-up token: refused, nothing written.
    auto stranger = crypto::generate_signing_key();
    CHECK(lab.anon("POST", "/v1/enrol", json{{"enrolment_token", token}, {"public_key", to_hex(key.public_key)},
                                             {"proof", proof(stranger, token)}})
              .status == 422);
    const std::string fake = "cpe_" + std::string(64, 'a');
    CHECK(lab.anon("POST", "/v1/enrol", json{{"enrolment_token", fake}, {"public_key", to_hex(key.public_key)},
                                             {"proof", proof(key, fake)}})
              .status == 401);
    CHECK(lab.state_fingerprint() == before);

    auto enrolled = lab.anon("POST", "/v1/enrol",
                             json{{"enrolment_token", token}, {"public_key", to_hex(key.public_key)}, {"proof", proof(key, token)}});
    REQUIRE(enrolled.status == 201);
    CHECK(enrolled.body["name"] == "van 12");
    CHECK(enrolled.body["operations"] == json::array({"query", "deliver-sealed"}));
    // A retry with the same key converges; another key cannot reuse the token.
    auto again = lab.anon("POST", "/v1/enrol",
                          json{{"enrolment_token", token}, {"public_key", to_hex(key.public_key)}, {"proof", proof(key, token)}});
    CHECK(again.status == 200);
    CHECK(again.body["id"] == enrolled.body["id"]);
    CHECK(lab.anon("POST", "/v1/enrol", json{{"enrolment_token", token}, {"public_key", to_hex(stranger.public_key)},
                                             {"proof", proof(stranger, token)}})
              .status == 409);
    // The enrolled key works for its operations.
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    auto tok = lab.signed_by(key, "POST", "/v1/tokens",
                             json{{"device_id", dev.identity.id.to_string()}, {"operations", {"deliver-sealed"}}});
    CHECK(tok.status == 201);
    auto denied = lab.signed_by(key, "POST", "/v1/tokens",
                                json{{"device_id", dev.identity.id.to_string()}, {"operations", {"deprovision"}}});
    CHECK(denied.status == 403);
}

// ---- many clients -------------------------------------------------------------------------

namespace {
// Sends `n` GET /healthz one after another on one raw TCP connection and
// returns how many answers arrived before the server closed it.
int answers_on_one_connection(int port, int n) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    timeval tv{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    int answers = 0;
    std::string pending;
    for (int i = 0; i < n; ++i) {
        const std::string req = "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
        if (::send(fd, req.data(), req.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(req.size())) break;
        // One answer: headers, then Content-Length bytes of body.
        bool complete = false;
        while (!complete) {
            const auto end = pending.find("\r\n\r\n");
            if (end != std::string::npos) {
                const auto cl = pending.find("Content-Length: ");
                const std::size_t body = cl == std::string::npos ? 0 : std::stoul(pending.substr(cl + 16));
                if (pending.size() >= end + 4 + body) {
                    pending.erase(0, end + 4 + body);
                    complete = true;
                    break;
                }
            }
            char buf[4096];
            const ssize_t r = ::recv(fd, buf, sizeof buf, 0);
            if (r <= 0) break;
            pending.append(buf, static_cast<std::size_t>(r));
        }
        if (!complete) break;
        ++answers;
    }
    ::close(fd);
    return answers;
}
}  // namespace

BACKEND_TEST(many_clients, "a burst of new connections is answered, and a core network's connection stays open") {
    // 96 clients connect at once (a provisioner fleet after an outage): every
    // one is answered; none waits for a SYN retransmission past its timeout.
    constexpr int kClients = 96;
    std::atomic<int> ok{0};
    std::vector<std::thread> threads;
    for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < kClients; ++i) {
            threads.emplace_back([&] {
                httplib::Client cli("127.0.0.1", lab.port);
                cli.set_connection_timeout(1);
                cli.set_read_timeout(20);
                auto r = cli.Get("/healthz");
                if (r && r->status == 200) ++ok;
            });
        }
        for (auto& t : threads) t.join();
        threads.clear();
    }
    CHECK(ok == 2 * kClients);
    // A kept-alive connection serves a long run of requests (100), not five.
    CHECK(answers_on_one_connection(lab.port, 100) == 100);
}
