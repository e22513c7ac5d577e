// The backend's registration life cycle over real HTTP, on SQLite and on
// PostgreSQL: sealed bundles, receipts, idempotent retries, expiry, field
// pools, network-only deprovisioning and what it does to AKA.
#include "backend_test.hpp"
#include "credprov/aka/network.hpp"
#include "credprov/aka/subscriber_keys.hpp"

using namespace credprov;
using namespace credprov::testing;

BACKEND_TEST(sealed_registration, "a sealed registration activates the subscriber on the device's receipt") {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    auto reg = tech.register_sealed(dev);
    REQUIRE(reg.minted.status == 201);
    CHECK(reg.minted.body["imsi"].get<std::string>().size() == 15);
    REQUIRE(reg.device_receipt);
    REQUIRE(reg.receipt.status == 200);
    CHECK(reg.receipt.body["state"] == "active");
    CHECK(reg.receipt.body["mode"] == "sealed");

    auto sub = lab.admin("GET", "/v1/subscribers/" + reg.imsi);
    REQUIRE(sub.status == 200);
    CHECK(sub.body["state"] == "active");
    CHECK(sub.body["device_id"] == dev.identity.id.to_string());
    // Nothing in any response carries K or OPc.
    const std::string k_hex = to_hex(dev.host.k), opc_hex = to_hex(dev.host.opc);
    CHECK(sub.raw.find(k_hex) == std::string::npos);
    CHECK(sub.raw.find(opc_hex) == std::string::npos);
    auto listing = lab.admin("GET", "/v1/subscribers?state=active&device=" + dev.identity.id.to_string());
    REQUIRE(listing.status == 200);
    REQUIRE(listing.body["items"].size() == 1);
    CHECK(listing.raw.find(k_hex) == std::string::npos);
    // And nothing in the database stores them in the clear.
    auto rows = lab.db()->query("SELECT keys_enc FROM subscribers");
    REQUIRE(rows.ok());
    REQUIRE(rows->size() == 1);
    CHECK(rows->front().str(0).find(k_hex) == std::string::npos);

    // The device's keys are the subscriber's: a vector from the backend
    // authenticates at the device's soft-USIM.
    auto core = lab.token_for("core-network");
    auto v = lab.admin("POST", "/v1/subscribers/" + reg.imsi + "/vectors", json{{"count", 2}}, core);
    REQUIRE(v.status == 200);
    REQUIRE(v.body["vectors"].size() == 2);
    const auto& first = v.body["vectors"][0];
    auto usim = aka::usim_authenticate(usim_keys(dev), aka::UsimSqnState{}, aka::Rand{hex_array<16>(first["rand"])},
                                       aka::Autn{hex_array<16>(first["autn"])});
    REQUIRE(usim.ok());
    const auto* ok = std::get_if<aka::AkaSuccess>(&*usim);
    REQUIRE(ok != nullptr);
    CHECK(to_hex(ByteView(ok->res.data(), ok->res.size())) == first["xres"].get<std::string>());
    CHECK(to_hex(ByteView(ok->ck.data(), ok->ck.size())) == first["ck"].get<std::string>());
    CHECK(v.body["vectors"][1]["sqn"].get<std::uint64_t>() > first["sqn"].get<std::uint64_t>());
}

BACKEND_TEST(token_with_bundle, "a token asked with bundle: true brings the recorded device's sealed bundle in the same call") {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    const json ask{{"device_id", dev.identity.id.to_string()}, {"operations", {"deliver-sealed", "query"}}, {"bundle", true}};
    auto r = tech.post("/v1/tokens", ask);
    REQUIRE(r.status == 201);
    REQUIRE(r.body["bundle"].is_object());
    const json minted = r.body["bundle"];
    CHECK(minted["box_key"] == to_hex(dev.identity.box.public_key));
    CHECK(minted["imsi"].get<std::string>().size() == 15);
    CHECK_FALSE(r.body.contains("bundle_problem"));
    // A retry gets a token again and the same pending bundle, byte for byte.
    auto again = tech.post("/v1/tokens", ask);
    REQUIRE(again.status == 201);
    CHECK(again.body["bundle"]["bundle"] == minted["bundle"]);
    CHECK(lab.admin("GET", "/v1/subscribers?device=" + dev.identity.id.to_string()).body["items"].size() == 1);

    // The token and the bundle work together at the device, and the receipt
    // activates the subscriber.
    auto token = SignedObject::decode(*backend::base64_decode(r.body["token"].get<std::string>())).value();
    auto bundle = SignedObject::decode(*backend::base64_decode(minted["bundle"].get<std::string>())).value();
    auto resp = tech.deliver(dev, token, Request{Operation::deliver_sealed, bundle});
    REQUIRE(resp.ok());
    REQUIRE(resp->receipt);
    auto done = tech.submit(minted["object_id"].get<std::string>(), *resp->receipt);
    REQUIRE(done.status == 200);
    CHECK(done.body["state"] == "active");

    // Both steps are audited, in one transaction.
    auto log = lab.admin("GET", "/v1/audit?limit=500");
    REQUIRE(log.status == 200);
    std::vector<std::string> actions;
    for (const auto& e : log.body["items"]) {
        if (e["target"] == "device:" + dev.identity.id.to_string() || e["target"] == "imsi:" + minted["imsi"].get<std::string>()) {
            actions.push_back(e["action"].get<std::string>());
        }
    }
    const auto token_at = std::find(actions.begin(), actions.end(), "token.issue");
    const auto mint_at = std::find(actions.begin(), actions.end(), "subscriber.mint");
    REQUIRE(token_at != actions.end());
    REQUIRE(mint_at != actions.end());
    CHECK(std::count(actions.begin(), actions.end(), "subscriber.mint") == 1);
    CHECK(std::count(actions.begin(), actions.end(), "token.issue") == 2);
    CHECK(lab.admin("GET", "/v1/audit/verify").body["ok"] == true);

    // An active device: the token is issued, the bundle is a conflict.
    auto active = tech.post("/v1/tokens", ask);
    REQUIRE(active.status == 201);
    CHECK(active.body["bundle"].is_null());
    CHECK(active.body["bundle_problem"]["status"] == 409);
    CHECK(active.body["token"].is_string());

    // A device the backend does not know: the token, and no bundle until the
    // provisioner has paired and can send the device's keys.
    SimDevice stranger(lab.trust());
    auto unknown = tech.post("/v1/tokens", json{{"device_id", stranger.identity.id.to_string()},
                                               {"operations", {"deliver-sealed"}}, {"bundle", true}});
    REQUIRE(unknown.status == 201);
    CHECK(unknown.body["bundle"].is_null());
    CHECK(unknown.body["bundle_problem"]["status"] == 403);
    CHECK(unknown.body["bundle_problem"]["detail"].get<std::string>().find("POST /v1/bundles") != std::string::npos);
    CHECK(lab.admin("GET", "/v1/subscribers?device=" + stranger.identity.id.to_string()).body["items"].empty());

    // Asked wrongly: a prefix, no deliver-sealed, not a boolean.
    CHECK(tech.post("/v1/tokens", json{{"device_prefix", "ab"}, {"operations", {"deliver-sealed"}}, {"bundle", true}}).status == 400);
    CHECK(tech.post("/v1/tokens", json{{"device_id", dev.identity.id.to_string()}, {"operations", {"query"}}, {"bundle", true}}).status ==
          400);
    CHECK(tech.post("/v1/tokens", json{{"device_id", dev.identity.id.to_string()}, {"operations", {"deliver-sealed"}}, {"bundle", "yes"}})
              .status == 400);
}

BACKEND_TEST(provisioner_batch, "POST /v1/batch answers each request as if it came alone, in order, and runs none of a malformed batch") {
    SimDevice a(lab.trust()), b(lab.trust()), stranger(lab.trust());
    lab.import_device(a.identity);
    lab.import_device(b.identity);
    Technician tech(lab);
    auto ask = [](const SimDevice& d) {
        return json{{"path", "/v1/tokens"},
                    {"body", {{"device_id", d.identity.id.to_string()}, {"operations", {"deliver-sealed", "query"}}, {"bundle", true}}}};
    };
    auto tokens = tech.post("/v1/batch", json{{"requests",
                                               {ask(a), ask(stranger), ask(b),
                                                {{"path", "/v1/bundles"}, {"body", {{"device", {{"device_id", "nonsense"}}}}}}}}});
    REQUIRE_MESSAGE(tokens.status == 200, tokens.raw);
    const json& res = tokens.body["responses"];
    REQUIRE(res.size() == 4);
    // Each answer is what the call alone gives: a token with a bundle, a
    // token whose bundle waits for pairing, a refused bundle.
    CHECK(res[0]["status"] == 201);
    CHECK(res[0]["body"]["bundle"]["box_key"] == to_hex(a.identity.box.public_key));
    CHECK(res[1]["status"] == 201);
    CHECK(res[1]["body"]["bundle"].is_null());
    CHECK(res[1]["body"]["bundle_problem"]["status"] == 403);
    CHECK(res[2]["status"] == 201);
    CHECK(res[2]["body"]["bundle"]["box_key"] == to_hex(b.identity.box.public_key));
    CHECK(res[3]["status"] == 400);
    CHECK(res[3]["body"]["type"] == "urn:credprov:problem:invalid-request");
    CHECK(res[0]["body"]["bundle"]["imsi"] != res[2]["body"]["bundle"]["imsi"]);

    // Delivered, and the receipts handed in together, with one for nothing.
    json receipts = json::array();
    std::vector<std::string> imsis;
    for (auto [d, r] : {std::pair{&a, &res[0]}, std::pair{&b, &res[2]}}) {
        const json& body = (*r)["body"];
        auto token = SignedObject::decode(*backend::base64_decode(body["token"].get<std::string>())).value();
        auto bundle = SignedObject::decode(*backend::base64_decode(body["bundle"]["bundle"].get<std::string>())).value();
        auto resp = tech.deliver(*d, token, Request{Operation::deliver_sealed, bundle});
        REQUIRE(resp.ok());
        REQUIRE(resp->receipt);
        receipts.push_back({{"path", "/v1/receipts"},
                            {"body", {{"object_id", body["bundle"]["object_id"]}, {"receipt", backend::base64_encode(resp->receipt->encode())}}}});
        imsis.push_back(body["bundle"]["imsi"].get<std::string>());
    }
    json nothing = receipts[0];
    nothing["body"]["object_id"] = std::string(32, '0');
    receipts.push_back(nothing);
    for (int round = 0; round < 2; ++round) {  // the second time: the same answers (a retried batch changes nothing)
        auto done = tech.post("/v1/batch", json{{"requests", receipts}});
        REQUIRE_MESSAGE(done.status == 200, done.raw);
        REQUIRE(done.body["responses"].size() == 3);
        CHECK(done.body["responses"][0]["status"] == 200);
        CHECK(done.body["responses"][0]["body"]["state"] == "active");
        CHECK(done.body["responses"][1]["status"] == 200);
        CHECK(done.body["responses"][1]["body"]["state"] == "active");
        CHECK(done.body["responses"][2]["status"] == 400);  // the receipt is for another object
    }
    for (const auto& imsi : imsis) CHECK(lab.admin("GET", "/v1/subscribers/" + imsi).body["state"] == "active");
    CHECK(lab.admin("GET", "/v1/audit/verify").body["ok"] == true);
    auto metrics = lab.anon("GET", "/metrics");
    CHECK(metrics.raw.find("credprov_batch_requests_total{route=\"/v1/receipts\",status=\"200\"} 4") != std::string::npos);

    // Malformed batches are refused whole: nothing in them runs.
    const auto audit_size = [&] { return lab.admin("GET", "/v1/audit?limit=1000").body["items"].size(); };
    const auto before = audit_size();
    json too_many = json::array();
    for (int i = 0; i < 65; ++i) too_many.push_back(ask(a));
    for (const json& bad : {json{{"requests", json::array()}}, json{{"requests", too_many}}, json{{"requests", ask(a)}},
                            json::object(), json{{"requests", {ask(a)}}, {"more", 1}},
                            json{{"requests", {ask(a), {{"path", "/v1/batch"}, {"body", json::object()}}}}},
                            json{{"requests", {ask(a), {{"path", "/v1/field-pools"}, {"body", {{"count", 1}}}}}}},
                            json{{"requests", {ask(a), {{"path", "/v1/tokens"}}}}},
                            json{{"requests", {ask(a), {{"path", "/v1/tokens"}, {"body", json::object()}, {"method", "GET"}}}}},
                            // a long field name of multibyte characters: echoed safely, not cut inside one
                            json{{"requests", {ask(a)}}, {"a" + [] { std::string s; for (int i = 0; i < 40; ++i) s += "\u00e9"; return s; }(), 1}}}) {
        auto r = tech.post("/v1/batch", bad);
        CHECK_MESSAGE(r.status == 400, bad.dump());
        CHECK(r.body["type"] == "urn:credprov:problem:invalid-request");
    }
    CHECK(audit_size() == before);
    CHECK(lab.anon("POST", "/v1/batch", json{{"requests", {ask(a)}}}).status == 401);
}

BACKEND_TEST(vectors_batch, "POST /v1/vectors answers each subscriber on its own, in order, with SQNs that keep rising") {
    SimDevice a(lab.trust()), b(lab.trust());
    lab.import_device(a.identity);
    lab.import_device(b.identity);
    Technician tech(lab);
    auto ra = tech.register_sealed(a);
    auto rb = tech.register_sealed(b);
    REQUIRE(ra.receipt.status == 200);
    REQUIRE(rb.receipt.status == 200);
    REQUIRE(lab.admin("POST", "/v1/devices/" + b.identity.id.to_string() + "/deprovision", json{{"reason", "test"}}).status == 200);
    auto core = lab.token_for("core-network");
    const std::string unknown = "001019999999999";
    auto v = lab.admin("POST", "/v1/vectors",
                       json{{"requests",
                             {{{"imsi", ra.imsi}, {"count", 2}, {"ind", 3}},
                              {{"imsi", unknown}, {"count", 5}},
                              {{"imsi", rb.imsi}},
                              {{"imsi", ra.imsi}, {"ind", 4}}}}},
                       core);
    REQUIRE_MESSAGE(v.status == 200, v.raw);
    const json& res = v.body["results"];
    REQUIRE(res.size() == 4);
    CHECK(res[0]["imsi"] == ra.imsi);
    REQUIRE(res[0]["vectors"].size() == 2);
    CHECK(res[1]["imsi"] == unknown);
    CHECK(res[1]["problem"]["status"] == 404);
    CHECK(res[1]["problem"]["type"] == "urn:credprov:problem:not-found");
    CHECK_FALSE(res[1].contains("vectors"));
    CHECK(res[2]["problem"]["status"] == 409);
    CHECK(res[2]["problem"]["type"] == "urn:credprov:problem:subscriber-not-active");
    REQUIRE(res[3]["vectors"].size() == 1);
    // Both entries of one IMSI step its SQN in the order asked, with the IND
    // each asked for; every vector authenticates at the device's USIM.
    std::vector<std::uint64_t> sqns;
    for (const json* e : {&res[0], &res[3]}) {
        for (const auto& vec : (*e)["vectors"]) {
            sqns.push_back(vec["sqn"].get<std::uint64_t>());
            auto usim = aka::usim_authenticate(usim_keys(a), aka::UsimSqnState{}, aka::Rand{hex_array<16>(vec["rand"])},
                                               aka::Autn{hex_array<16>(vec["autn"])});
            REQUIRE(usim.ok());
            const auto* ok = std::get_if<aka::AkaSuccess>(&*usim);
            REQUIRE(ok != nullptr);
            CHECK(to_hex(ByteView(ok->res.data(), ok->res.size())) == vec["xres"].get<std::string>());
        }
    }
    REQUIRE(sqns.size() == 3);
    CHECK(aka::ind_of(aka::Sqn(sqns[0])) == 3);
    CHECK(aka::ind_of(aka::Sqn(sqns[2])) == 4);
    CHECK(aka::seq_of(aka::Sqn(sqns[0])) < aka::seq_of(aka::Sqn(sqns[1])));
    CHECK(aka::seq_of(aka::Sqn(sqns[1])) < aka::seq_of(aka::Sqn(sqns[2])));
    // The batch's SQNs are durable: the next single request goes on from them.
    auto next = lab.admin("POST", "/v1/subscribers/" + ra.imsi + "/vectors", json::object(), core);
    REQUIRE(next.status == 200);
    CHECK(aka::seq_of(aka::Sqn(next.body["vectors"][0]["sqn"].get<std::uint64_t>())) == aka::seq_of(aka::Sqn(sqns[2])) + 1);
    // The refusal of the deprovisioned subscriber is audited.
    auto log = lab.admin("GET", "/v1/audit?limit=500");
    REQUIRE(log.status == 200);
    bool refusal = false;
    for (const auto& e : log.body["items"]) {
        refusal = refusal || (e["action"] == "aka.vectors" && e["target"] == "imsi:" + rb.imsi &&
                              e["outcome"] == "rejected:subscriber-not-active");
    }
    CHECK(refusal);
}

BACKEND_TEST(vectors_batch_refusals, "POST /v1/vectors refuses a malformed or oversized batch whole, and other roles") {
    auto core = lab.token_for("core-network");
    json many = json::array();
    for (int i = 0; i <= 64; ++i) many.push_back({{"imsi", "001010000000001"}});
    auto big = lab.admin("POST", "/v1/vectors", json{{"requests", many}}, core);
    CHECK(big.status == 400);
    CHECK(big.body["detail"].get<std::string>().find("1 to 64") != std::string::npos);
    CHECK(lab.admin("POST", "/v1/vectors", json{{"requests", json::array()}}, core).status == 400);
    auto bad = lab.admin("POST", "/v1/vectors",
                         json{{"requests", {{{"imsi", "001010000000001"}}, {{"imsi", "00101x"}}}}}, core);
    CHECK(bad.status == 400);
    CHECK(bad.body["detail"].get<std::string>().find("requests[1]") != std::string::npos);
    auto extra = lab.admin("POST", "/v1/vectors", json{{"requests", {{{"imsi", "001010000000001"}, {"k", "00"}}}}}, core);
    CHECK(extra.status == 400);
    CHECK(extra.body["detail"].get<std::string>().find("unknown field 'k'") != std::string::npos);
    auto count = lab.admin("POST", "/v1/vectors", json{{"requests", {{{"imsi", "001010000000001"}, {"count", 6}}}}}, core);
    CHECK(count.status == 400);
    auto auditor = lab.token_for("auditor");
    CHECK(lab.admin("POST", "/v1/vectors", json{{"requests", {{{"imsi", "001010000000001"}}}}}, auditor).status == 403);
    CHECK(lab.anon("POST", "/v1/vectors", json{{"requests", {{{"imsi", "001010000000001"}}}}}).status == 401);
}

BACKEND_TEST(box_signature_checked, "a bundle request with a box-key signature that does not verify is refused, however often the right one came") {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);  // its import verified the right signature
    Technician tech(lab);
    json device = BackendLab::device_json(dev.identity);
    std::string forged = device["box_signature"].get<std::string>();
    forged[0] = forged[0] == '0' ? '1' : '0';
    for (int i = 0; i < 2; ++i) {
        device["box_signature"] = forged;
        auto bad = tech.post("/v1/bundles", json{{"device", device}});
        CHECK(bad.status == 400);
        CHECK(bad.body["detail"].get<std::string>().find("box key is not signed") != std::string::npos);
        device["box_signature"] = to_hex(dev.identity.box_signature);
        auto good = tech.post("/v1/bundles", json{{"device", device}});
        CHECK(good.status == (i == 0 ? 201 : 200));
    }
}

namespace {
// TS 35.208 test set 1's OP.
LabOptions with_op() {
    LabOptions o;
    o.op_hex = "cdc202d5123e20f62b6d676ac72cb318";
    return o;
}
}  // namespace

BACKEND_TEST_WITH(opc_from_op, "with an OP file configured, every new subscriber's OPc is derived from its K and that OP",
                  with_op()) {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    auto reg = tech.register_sealed(dev);
    REQUIRE(reg.receipt.status == 200);
    Bytes op;
    REQUIRE(from_hex("cdc202d5123e20f62b6d676ac72cb318", op));
    ByteArray<16> expected{};
    aka::derive_opc(aka::SubscriberKeys::KeyView(dev.host.k.data(), 16), aka::SubscriberKeys::KeyView(op.data(), 16),
                    std::span<std::uint8_t, 16>(expected.data(), 16));
    CHECK(to_hex(ByteView(dev.host.opc.data(), 16)) == to_hex(ByteView(expected.data(), 16)));
}

BACKEND_TEST(idempotent_steps, "every registration step can be retried after a lost response") {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    auto first = tech.mint(dev);
    REQUIRE(first.status == 201);
    const std::string before = lab.state_fingerprint();
    auto again = tech.mint(dev);
    REQUIRE(again.status == 200);
    CHECK(again.body["bundle"] == first.body["bundle"]);  // byte for byte
    CHECK(again.body["imsi"] == first.body["imsi"]);
    CHECK(lab.state_fingerprint() == before);              // no second subscriber, no IMSI used

    auto tok = tech.token(dev.identity.id);
    REQUIRE(tok);
    auto bundle = SignedObject::decode(*backend::base64_decode(first.body["bundle"].get<std::string>())).value();
    auto resp = tech.deliver(dev, *tok, Request{Operation::deliver_sealed, bundle});
    REQUIRE(resp.ok());
    const std::string oid = first.body["object_id"].get<std::string>();
    auto r1 = tech.submit(oid, *resp->receipt);
    REQUIRE(r1.status == 200);
    const std::string active = lab.state_fingerprint();
    auto r2 = tech.submit(oid, *resp->receipt);
    CHECK(r2.status == 200);
    CHECK(r2.body["state"] == "active");
    CHECK(lab.state_fingerprint() == active);
    // A new mint for a device with an active subscription is refused.
    auto third = tech.mint(dev);
    CHECK(third.status == 409);
    CHECK(third.content_type.starts_with("application/problem+json"));
    CHECK(lab.state_fingerprint() == active);
    // Enrolment is idempotent by key too.
    auto e1 = lab.admin("POST", "/v1/provisioners",
                        json{{"name", "technician"}, {"public_key", to_hex(tech.key.public_key)},
                             {"operations", {"query", "deliver-sealed", "deliver-field", "deprovision"}}});
    CHECK(e1.status == 200);
    CHECK(e1.body["id"] == tech.id);
}

BACKEND_TEST(receipt_checks, "a receipt that does not verify changes nothing") {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    Technician other(lab);
    auto minted = tech.mint(dev);
    REQUIRE(minted.status == 201);
    auto tok = tech.token(dev.identity.id);
    auto bundle = SignedObject::decode(*backend::base64_decode(minted.body["bundle"].get<std::string>())).value();
    auto resp = tech.deliver(dev, *tok, Request{Operation::deliver_sealed, bundle});
    REQUIRE(resp.ok());
    const std::string oid = minted.body["object_id"].get<std::string>();
    const std::string before = lab.state_fingerprint();
    // Submitted by another provisioner: the receipt names the first one's key.
    CHECK(other.submit(oid, *resp->receipt).status == 422);
    // A flipped signature bit.
    Receipt forged = *resp->receipt;
    forged.signature[5] ^= 1;
    CHECK(tech.submit(oid, forged).status == 422);
    // A receipt for another object id than the one named.
    Receipt other_id = *resp->receipt;
    other_id.object_id = BundleId::random();
    CHECK(tech.submit(oid, other_id).status == 400);
    CHECK(tech.submit(to_hex(other_id.object_id.bytes), other_id).status == 404);
    CHECK(lab.state_fingerprint() == before);
    CHECK(tech.submit(oid, *resp->receipt).status == 200);
}

static LabOptions quick_expiry() {
    LabOptions o;
    o.pending_ttl_s = 1;
    o.sweep_interval_s = 1;
    return o;
}

BACKEND_TEST_WITH(pending_expiry, "a pending subscriber without a receipt expires", quick_expiry()) {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    auto reg_tok = tech.token(dev.identity.id);
    auto minted = tech.mint(dev);
    REQUIRE(minted.status == 201);
    const std::string imsi = minted.body["imsi"].get<std::string>();
    auto bundle = SignedObject::decode(*backend::base64_decode(minted.body["bundle"].get<std::string>())).value();
    auto resp = tech.deliver(dev, *reg_tok, Request{Operation::deliver_sealed, bundle});
    REQUIRE(resp.ok());
    std::string state;
    for (int i = 0; i < 60 && state != "expired"; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        state = lab.admin("GET", "/v1/subscribers/" + imsi).body["state"].get<std::string>();
    }
    CHECK(state == "expired");
    auto late = tech.submit(minted.body["object_id"].get<std::string>(), *resp->receipt);
    CHECK(late.status == 410);
    CHECK(lab.admin("GET", "/v1/subscribers/" + imsi).body["state"] == "expired");
    // The device may be registered afresh, with a new IMSI.
    auto fresh = tech.mint(dev);
    CHECK(fresh.status == 201);
    CHECK(fresh.body["imsi"] != imsi);
}

BACKEND_TEST(deprovisioning, "network-only deprovisioning stops AKA and hands the device a signed notice") {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    auto reg = tech.register_sealed(dev);
    REQUIRE(reg.receipt.status == 200);
    const std::string path = "/v1/devices/" + dev.identity.id.to_string();
    CHECK(lab.anon("GET", path + "/notice").status == 404);

    auto d = lab.admin("POST", path + "/deprovision", json{{"reason", "contract ended"}});
    REQUIRE(d.status == 200);
    CHECK(d.body["deprovisioned"] == json::array({reg.imsi}));
    const std::string notice = d.body["notice"].get<std::string>();
    // From that moment the subscriber no longer authenticates.
    auto core = lab.token_for("core-network");
    CHECK(lab.admin("POST", "/v1/subscribers/" + reg.imsi + "/vectors", json::object(), core).status == 409);
    auto ch = lab.anon("POST", "/v1/attach/challenge", json{{"imsi", reg.imsi}});
    REQUIRE(ch.status == 200);
    CHECK(ch.body["verdict"] == "deprovisioned");
    CHECK(ch.body["notice"] == notice);
    // Idempotent: again, the same notice.
    auto again = lab.admin("POST", path + "/deprovision", json{{"reason", "contract ended"}});
    REQUIRE(again.status == 200);
    CHECK(again.body["notice"] == notice);
    CHECK(again.body["deprovisioned"].empty());
    // The device applies the notice it fetched over its network path.
    auto fetched = lab.anon("GET", path + "/notice");
    REQUIRE(fetched.status == 200);
    auto obj = SignedObject::decode(*backend::base64_decode(fetched.body["notice"].get<std::string>()));
    REQUIRE(obj.ok());
    auto next = apply_network_deprovision(dev.identity, dev.trust, dev.host.rec, *obj);
    REQUIRE_MESSAGE(next.ok(), next.error().message);
    CHECK_FALSE(next->credential.has_value());
    REQUIRE(dev.host.commit(*next, nullptr).ok());
    // Re-provisioning gets a bundle with an epoch above that deprovisioning.
    auto reg2 = tech.register_sealed(dev);
    REQUIRE(reg2.minted.status == 201);
    REQUIRE_MESSAGE(reg2.receipt.status == 200, reg2.receipt.raw);
    CHECK(reg2.imsi != reg.imsi);
    auto device = lab.admin("GET", path);
    REQUIRE(device.status == 200);
    CHECK(device.body["subscribers"].size() == 2);
}

BACKEND_TEST(provisioner_deprovision, "an authorised provisioner may deprovision, others may not") {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    Technician no_rights(lab, {"query", "deliver-sealed"});
    auto reg = tech.register_sealed(dev);
    REQUIRE(reg.receipt.status == 200);
    const std::string path = "/v1/devices/" + dev.identity.id.to_string() + "/deprovision";
    const std::string before = lab.state_fingerprint();
    CHECK(no_rights.post(path, json{{"reason", "try"}}).status == 403);
    CHECK(lab.state_fingerprint() == before);
    auto ok = tech.post(path, json{{"reason", "replaced in the field"}});
    CHECK(ok.status == 200);
    CHECK(lab.admin("GET", "/v1/subscribers/" + reg.imsi).body["state"] == "deprovisioned");
}

BACKEND_TEST(attach_check, "the attach check authenticates the device, resynchronises and rejects a wrong RES") {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab);
    auto reg = tech.register_sealed(dev);
    REQUIRE(reg.receipt.status == 200);
    const auto keys = usim_keys(dev);
    aka::UsimSqnState usim;

    auto ch = lab.anon("POST", "/v1/attach/challenge", json{{"imsi", reg.imsi}});
    REQUIRE(ch.status == 200);
    REQUIRE(ch.body["verdict"] == "challenge");
    auto r = aka::usim_authenticate(keys, usim, aka::Rand{hex_array<16>(ch.body["rand"])}, aka::Autn{hex_array<16>(ch.body["autn"])});
    REQUIRE(r.ok());
    auto* good = std::get_if<aka::AkaSuccess>(&*r);
    REQUIRE(good);
    usim = good->new_state;
    auto ans = lab.anon("POST", "/v1/attach/response",
                        json{{"challenge_id", ch.body["challenge_id"]}, {"res", to_hex(ByteView(good->res.data(), 8))}});
    REQUIRE(ans.status == 200);
    CHECK(ans.body["verdict"] == "attached");
    // A challenge answers once.
    CHECK(lab.anon("POST", "/v1/attach/response",
                   json{{"challenge_id", ch.body["challenge_id"]}, {"res", to_hex(ByteView(good->res.data(), 8))}})
              .status == 409);
    // A wrong RES.
    auto ch2 = lab.anon("POST", "/v1/attach/challenge", json{{"imsi", reg.imsi}});
    auto bad = lab.anon("POST", "/v1/attach/response", json{{"challenge_id", ch2.body["challenge_id"]}, {"res", "0011223344556677"}});
    REQUIRE(bad.status == 200);
    CHECK(bad.body["verdict"] == "rejected");
    // The USIM runs ahead (vectors used elsewhere): it answers with AUTS and
    // the network resynchronises.
    for (int i = 0; i < 3; ++i) usim = usim.accepted(aka::make_sqn(aka::seq_of(usim.highest()) + 10, 0));
    auto ch3 = lab.anon("POST", "/v1/attach/challenge", json{{"imsi", reg.imsi}});
    auto r3 = aka::usim_authenticate(keys, usim, aka::Rand{hex_array<16>(ch3.body["rand"])}, aka::Autn{hex_array<16>(ch3.body["autn"])});
    REQUIRE(r3.ok());
    auto* sync = std::get_if<aka::SyncFailure>(&*r3);
    REQUIRE(sync);
    auto rs = lab.anon("POST", "/v1/attach/response", json{{"challenge_id", ch3.body["challenge_id"]}, {"auts", to_hex(sync->auts.bytes)}});
    REQUIRE(rs.status == 200);
    CHECK(rs.body["verdict"] == "resynchronised");
    auto ch4 = lab.anon("POST", "/v1/attach/challenge", json{{"imsi", reg.imsi}});
    auto r4 = aka::usim_authenticate(keys, usim, aka::Rand{hex_array<16>(ch4.body["rand"])}, aka::Autn{hex_array<16>(ch4.body["autn"])});
    REQUIRE(r4.ok());
    CHECK(std::holds_alternative<aka::AkaSuccess>(*r4));
    // The core network's resync endpoint: a real AUTS resynchronises, a
    // forged one is refused.
    auto core = lab.token_for("core-network");
    for (int i = 0; i < 3; ++i) usim = usim.accepted(aka::make_sqn(aka::seq_of(usim.highest()) + 10, 0));
    auto v = lab.admin("POST", "/v1/subscribers/" + reg.imsi + "/vectors", json::object(), core);
    REQUIRE(v.status == 200);
    const auto& vec = v.body["vectors"][0];
    auto r5 = aka::usim_authenticate(keys, usim, aka::Rand{hex_array<16>(vec["rand"])}, aka::Autn{hex_array<16>(vec["autn"])});
    REQUIRE(r5.ok());
    auto* sync5 = std::get_if<aka::SyncFailure>(&*r5);
    REQUIRE(sync5);
    auto resynced = lab.admin("POST", "/v1/subscribers/" + reg.imsi + "/resync",
                              json{{"rand", vec["rand"]}, {"auts", to_hex(sync5->auts.bytes)}}, core);
    REQUIRE(resynced.status == 200);
    CHECK(resynced.body["sqn"].get<std::uint64_t>() == usim.highest().value());
    auto forged = lab.admin("POST", "/v1/subscribers/" + reg.imsi + "/resync",
                            json{{"rand", ch4.body["rand"]}, {"auts", std::string(28, '0')}}, core);
    CHECK(forged.status == 422);
}

BACKEND_TEST(field_pool, "field pools: reserved to one provisioner, first receipt activates, a second raises an alarm") {
    Technician tech(lab);
    Technician other(lab);
    auto pool = tech.post("/v1/field-pools", json{{"request_id", "van-7 monday"}, {"count", 3}});
    REQUIRE(pool.status == 201);
    REQUIRE(pool.body["authorisations"].size() == 3);
    auto same = tech.post("/v1/field-pools", json{{"request_id", "van-7 monday"}, {"count", 3}});
    REQUIRE(same.status == 200);
    CHECK(same.body == pool.body);

    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    const json& a = pool.body["authorisations"][0];
    auto auth = SignedObject::decode(*backend::base64_decode(a["authorisation"].get<std::string>())).value();
    auto tok = tech.token(dev.identity.id, {"deliver-field"});
    REQUIRE(tok);
    auto resp = tech.deliver(dev, *tok, Request{Operation::deliver_field, auth}, kModeSealed | kModeField);
    REQUIRE_MESSAGE(resp.ok(), resp.error().message);
    REQUIRE(resp->receipt);
    const std::string oid = a["id"].get<std::string>();
    // Another provisioner cannot use this provisioner's authorisation.
    CHECK(other.submit(oid, *resp->receipt, BackendLab::device_json(dev.identity)).status == 403);
    auto first = tech.submit(oid, *resp->receipt, BackendLab::device_json(dev.identity));
    REQUIRE_MESSAGE(first.status == 200, first.raw);
    CHECK(first.body["mode"] == "field");
    CHECK(first.body["imsi"] == a["imsi"]);
    // The retry of the same receipt converges.
    CHECK(tech.submit(oid, *resp->receipt, BackendLab::device_json(dev.identity)).status == 200);
    // The backend holds the device-generated keys: its vectors authenticate.
    auto v = lab.admin("POST", "/v1/subscribers/" + a["imsi"].get<std::string>() + "/vectors");
    REQUIRE(v.status == 200);
    auto usim = aka::usim_authenticate(usim_keys(dev), aka::UsimSqnState{}, aka::Rand{hex_array<16>(v.body["vectors"][0]["rand"])},
                                       aka::Autn{hex_array<16>(v.body["vectors"][0]["autn"])});
    REQUIRE(usim.ok());
    CHECK(std::holds_alternative<aka::AkaSuccess>(*usim));

    // A second device presenting the same authorisation: refused, alarmed.
    SimDevice clone(lab.trust());
    lab.import_device(clone.identity);
    auto tok2 = tech.token(clone.identity.id, {"deliver-field"});
    auto resp2 = tech.deliver(clone, *tok2, Request{Operation::deliver_field, auth}, kModeSealed | kModeField);
    REQUIRE(resp2.ok());
    const std::string before = lab.state_fingerprint();
    auto second = tech.submit(oid, *resp2->receipt, BackendLab::device_json(clone.identity));
    CHECK(second.status == 409);
    CHECK(lab.state_fingerprint() == before);
    auto metrics = lab.anon("GET", "/metrics");
    CHECK(metrics.raw.find("credprov_field_alarms_total 1") != std::string::npos);
    auto audit = lab.admin("GET", "/v1/audit?limit=1000");
    bool alarmed = false;
    for (const auto& e : audit.body["items"]) alarmed = alarmed || e["action"] == "field.second-receipt";
    CHECK(alarmed);

    // Unused authorisations go back.
    auto back = tech.post("/v1/field-pools/" + pool.body["pool_id"].get<std::string>() + "/return", json::object());
    REQUIRE(back.status == 200);
    CHECK(back.body["returned"] == 2);
    CHECK(other.post("/v1/field-pools/" + pool.body["pool_id"].get<std::string>() + "/return", json::object()).status == 403);
}

BACKEND_TEST(attestation_vouching, "a device is vouched for by inventory or a known manufacturer's attestation") {
    Technician tech(lab);
    SimDevice stranger(lab.trust());
    const std::string before = lab.state_fingerprint();
    auto refused = tech.mint(stranger);
    CHECK(refused.status == 403);
    CHECK(lab.state_fingerprint() == before);

    auto maker = crypto::generate_signing_key();
    REQUIRE(lab.admin("POST", "/v1/manufacturers", json{{"name", "Acme Modems"}, {"public_key", to_hex(maker.public_key)}}).status == 201);
    SimDevice made(lab.trust());
    DeviceAttestation a{made.identity.identity.public_key, made.identity.box.public_key, "Acme Modems"};
    json body{{"device", BackendLab::device_json(made.identity)}};
    body["device"]["attestation"] = backend::base64_encode(attest_device(maker, a).encode());
    auto ok = tech.post("/v1/bundles", body);
    CHECK(ok.status == 201);
    // An attestation by an unknown key under a known name is refused.
    SimDevice fake(lab.trust());
    auto forger = crypto::generate_signing_key();
    DeviceAttestation fa{fake.identity.identity.public_key, fake.identity.box.public_key, "Acme Modems"};
    json fbody{{"device", BackendLab::device_json(fake.identity)}};
    fbody["device"]["attestation"] = backend::base64_encode(attest_device(forger, fa).encode());
    CHECK(tech.post("/v1/bundles", fbody).status == 403);
}

BACKEND_TEST(key_rotation, "after an operator key rotation, devices owned by the old key still get notices they accept") {
    SimDevice old_device(lab.trust());
    lab.import_device(old_device.identity);
    Technician tech(lab);
    auto reg = tech.register_sealed(old_device);
    REQUIRE(reg.receipt.status == 200);
    REQUIRE(old_device.host.rec.owner.has_value());
    const auto old_owner = old_device.host.rec.owner->sign_key;

    REQUIRE(lab.stop_server() == 0);
    auto rotated = run_command({CREDPROV_BACKEND, "-c", lab.config.string(), "operator", "rotate", "--root-key",
                                (lab.dir / "root.key").string()});
    REQUIRE(rotated.exit_code == 0);
    lab.start();
    auto op = lab.anon("GET", "/v1/operator");
    REQUIRE(op.status == 200);
    CHECK(op.body["sign_key"] != to_hex(old_owner));
    lab.certificate = SignedObject::decode(*backend::base64_decode(op.body["certificate"].get<std::string>())).value();

    // The device owned by the old key: its notice is signed by that key.
    auto d = lab.admin("POST", "/v1/devices/" + old_device.identity.id.to_string() + "/deprovision", json{{"reason", "rotation test"}});
    REQUIRE(d.status == 200);
    auto notice = SignedObject::decode(*backend::base64_decode(d.body["notice"].get<std::string>()));
    REQUIRE(notice.ok());
    auto applied = apply_network_deprovision(old_device.identity, old_device.trust, old_device.host.rec, *notice);
    CHECK_MESSAGE(applied.ok(), (applied.ok() ? "" : applied.error().message));

    // A new device is provisioned under the new, root-certified key.
    SimDevice fresh(lab.trust());
    lab.import_device(fresh.identity);
    auto reg2 = tech.register_sealed(fresh);
    REQUIRE(reg2.receipt.status == 200);
    REQUIRE(fresh.host.rec.owner.has_value());
    CHECK(to_hex(fresh.host.rec.owner->sign_key) == op.body["sign_key"].get<std::string>());
}

BACKEND_TEST(owner_commands, "owner commands for a device link: signed with the next counter, idempotent, only for live devices") {
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    Technician tech(lab, {"query", "deliver-sealed", "reconfigure", "diagnose", "deprovision"});
    Technician no_rights(lab, {"query", "deliver-sealed"});
    const std::string path = "/v1/devices/" + dev.identity.id.to_string() + "/commands";
    const json reconfigure{{"request_id", "r1"}, {"kind", "reconfigure"}, {"settings", {{"label", "pump 7"}, {"attach_check_interval_s", 600}}}};
    // Before the device is provisioned there is no owner to speak for it.
    CHECK(tech.post(path, reconfigure).status == 409);
    auto reg = tech.register_sealed(dev);
    REQUIRE(reg.receipt.status == 200);

    const std::string before = lab.state_fingerprint();
    CHECK(no_rights.post(path, reconfigure).status == 403);
    CHECK(tech.post(path, json{{"request_id", "r0"}, {"kind", "reboot"}}).status == 400);
    CHECK(tech.post(path, json{{"request_id", "r0"}, {"kind", "reconfigure"}, {"settings", json::object()}}).status == 400);
    CHECK(tech.post(path, json{{"request_id", "r0"}, {"kind", "reconfigure"}, {"settings", {{"colour", "red"}}}}).status == 400);
    CHECK(tech.post(path, json{{"request_id", "r0"}, {"kind", "diagnose"}, {"diagnostics", {"self-test", "x-ray"}}}).status == 400);
    CHECK(lab.state_fingerprint() == before);

    auto issued = tech.post(path, reconfigure);
    REQUIRE_MESSAGE(issued.status == 201, issued.raw);
    CHECK(issued.body["kind"] == "reconfigure");
    // A retry of the same request returns the same command; another request takes the next counter.
    auto again = tech.post(path, reconfigure);
    CHECK(again.status == 200);
    CHECK(again.body["command"] == issued.body["command"]);
    CHECK(tech.post(path, json{{"request_id", "r1"}, {"kind", "diagnose"}, {"diagnostics", {"self-test"}}}).status == 409);
    auto diag = tech.post(path, json{{"request_id", "d1"}, {"kind", "diagnose"}, {"diagnostics", {"self-test", "store-check"}}});
    REQUIRE(diag.status == 201);
    CHECK(diag.body["counter"].get<std::int64_t>() == issued.body["counter"].get<std::int64_t>() + 1);

    // The device accepts the reconfigure command delivered in a paired session.
    auto tok = tech.token(dev.identity.id, {"reconfigure", "diagnose"});
    REQUIRE(tok);
    auto command = SignedObject::decode(*backend::base64_decode(issued.body["command"].get<std::string>())).value();
    auto resp = tech.deliver(dev, *tok, Request{Operation::reconfigure, command});
    REQUIRE_MESSAGE(resp.ok(), resp.error().message);
    REQUIRE_MESSAGE(resp->ok, resp->message);
    CHECK(dev.host.rec.settings.label == std::optional<std::string>("pump 7"));
    CHECK(dev.host.rec.settings.attach_check_interval_s == std::optional<std::uint64_t>(600));
    // Delivered a second time, the same command is a replay: refused.
    auto replay = tech.deliver(dev, *tok, Request{Operation::reconfigure, command});
    CHECK((!replay.ok() || !replay->ok));

    // Deprovisioned: no new commands until the device has applied its notice.
    REQUIRE(tech.post("/v1/devices/" + dev.identity.id.to_string() + "/deprovision", json{{"reason", "done"}}).status == 200);
    CHECK(tech.post(path, json{{"request_id", "r9"}, {"kind", "diagnose"}, {"diagnostics", {"self-test"}}}).status == 409);
    CHECK(lab.anon("POST", path, reconfigure).status == 401);
}

BACKEND_TEST(field_tokens, "a token for offline field work may live as long as field authorisations, others stay short") {
    SimDevice dev(lab.trust());
    Technician tech(lab);
    const std::string id = dev.identity.id.to_string();
    auto longer = tech.post("/v1/tokens", json{{"device_id", id}, {"operations", {"deliver-field", "query"}}, {"ttl_s", 3 * 86400}});
    REQUIRE_MESSAGE(longer.status == 201, longer.raw);
    const auto now = static_cast<std::int64_t>(std::time(nullptr));
    CHECK(std::abs(longer.body["not_after"].get<std::int64_t>() - now - 3 * 86400) <= 5);
    // Valid from a minute before issue: a provisioner or device whose clock
    // is a second (or a few) behind the backend's takes it.
    CHECK(now - longer.body["not_before"].get<std::int64_t>() >= 55);
    CHECK(tech.post("/v1/tokens", json{{"device_id", id}, {"operations", {"deliver-sealed"}}, {"ttl_s", 3 * 86400}}).status == 400);
    CHECK(tech.post("/v1/tokens", json{{"device_id", id}, {"operations", {"deliver-field"}}, {"ttl_s", 30 * 86400}}).status == 400);
}
