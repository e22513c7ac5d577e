// Every attack and fault on the protocol as its own test case. Each asserts
// the typed error, that the session ended Failed, and that nothing was
// committed where the attack happens before the commit.
#include <doctest/doctest.h>

#include "flow.hpp"

using namespace credprov;
using namespace credprov::testing;

namespace {

void check_nothing_committed(const World& w) {
    CHECK_FALSE(w.host.rec.credential);
    CHECK_FALSE(w.host.rec.owner);
    CHECK(w.host.commits == 0);
    CHECK(w.host.k.empty());
}

ErrorCode device_code(const Flow& f) {
    REQUIRE(f.device_error);
    return f.device_error->code;
}

}  // namespace

TEST_CASE("wrong setup code: both sides fail, the attempt stays counted, nothing is written") {
    World w;
    auto bundle = w.bundle();
    auto wrong = std::move(SetupCode::parse("1234567891")).value();
    ProvisionerSession p(w.setup(w.token()), wrong);
    DeviceSession d(w.device, w.trust, w.host, w.code, TransportType::loopback);
    auto m1 = p.start();
    REQUIRE(m1.ok());
    auto m2 = d.handle(*m1);
    CHECK_FALSE(m2.error);  // the device cannot tell yet
    auto st = p.read_pair_response(m2.reply);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == ErrorCode::auth_failed);
    CHECK(p.state() == ProvisionerSession::State::failed);
    CHECK(w.host.attempts_recorded == 1);
    CHECK(w.host.pending_failures == 1);
    check_nothing_committed(w);
    // The message never names the code.
    CHECK(st.error().message.find("1234567891") == std::string::npos);
}

TEST_CASE("wrong setup code: a provisioner that pushes on with M3 is refused by the device") {
    World w;
    auto wrong = std::move(SetupCode::parse("99999999")).value();
    World other;  // a provisioner with the wrong code but a valid-looking M3 from another run
    ProvisionerSession p(w.setup(w.token()), wrong);
    DeviceSession d(w.device, w.trust, w.host, w.code, TransportType::loopback);
    auto m2 = d.handle(*p.start());
    (void)p.read_pair_response(m2.reply);
    // Build an M3 from a correctly paired run against another device session
    // with the same M1: its Ta is for different keys.
    Authorise forged;
    forged.record = Bytes(64, 0x42);
    auto step = d.handle(forged.encode());
    REQUIRE(step.error);
    CHECK(step.error->code == ErrorCode::auth_failed);
    CHECK(d.failed());
    CHECK(w.host.pending_failures == 1);
    check_nothing_committed(w);
}

TEST_CASE("an aborted pairing is counted as a failed attempt") {
    World w;
    {
        Flow f(w, w.setup(w.token()));
        auto m1 = f.p.start();
        REQUIRE(m1.ok());
        (void)f.d.handle(*m1);  // M2 leaves, then the provisioner vanishes
    }
    CHECK(w.host.attempts_recorded == 1);
    CHECK(w.host.pending_failures == 1);
    // A successful pairing afterwards clears it.
    Flow f(w, w.setup(w.token()));
    REQUIRE(f.run(deliver(w.bundle())).ok());
    CHECK(w.host.pending_failures == 0);
}

TEST_CASE("back-off: the device refuses to pair and says when to retry") {
    World w;
    w.host.refuse_attempts = true;
    Flow f(w, w.setup(w.token()));
    auto st = f.pair();
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == ErrorCode::backoff);
    CHECK(st.error().message.find("30 s") != std::string::npos);
    CHECK(device_code(f) == ErrorCode::backoff);
}

TEST_CASE("a modified message at any step fails the session, nothing is committed before M4") {
    World w0;
    auto probe_bundle = w0.bundle();
    Flow probe(w0, w0.setup(w0.token()));
    REQUIRE(probe.run(deliver(probe_bundle)).ok());
    for (std::size_t index = 0; index < 4; ++index) {
        const std::size_t len = probe.ex.messages[index].size();
        const std::size_t stride = std::max<std::size_t>(1, len / 40);
        for (std::size_t pos = 0; pos < len; pos += stride) {
            CAPTURE(index);
            CAPTURE(pos);
            World w;
            auto bundle = w.bundle();
            Flow f(w, w.setup(w.token()));
            f.tamper = [&](std::size_t i, Bytes& m) {
                if (i == index && pos < m.size()) m[pos] ^= 0x01;
            };
            auto resp = f.run(deliver(bundle));
            REQUIRE_FALSE(resp.ok());
            if (index < 3) check_nothing_committed(w);
        }
    }
}

TEST_CASE("a truncated message at any step fails the session with a typed error") {
    for (std::size_t index = 0; index < 4; ++index) {
        for (int cut : {1, 2, 17, 1000}) {
            CAPTURE(index);
            CAPTURE(cut);
            World w;
            auto bundle = w.bundle();
            Flow f(w, w.setup(w.token()));
            f.tamper = [&](std::size_t i, Bytes& m) {
                if (i == index) m.resize(m.size() > static_cast<std::size_t>(cut) ? m.size() - cut : 0);
            };
            auto resp = f.run(deliver(bundle));
            REQUIRE_FALSE(resp.ok());
            CHECK((resp.error().code == ErrorCode::malformed || resp.error().code == ErrorCode::auth_failed ||
                   resp.error().code == ErrorCode::bad_state));
            if (index < 3) check_nothing_committed(w);
        }
    }
}

TEST_CASE("a replayed M1 in place of M3 is refused") {
    World w;
    Flow f(w, w.setup(w.token()));
    f.tamper = [&](std::size_t i, Bytes& m) {
        if (i == 2) m = f.ex.messages[0];
    };
    REQUIRE_FALSE(f.run(deliver(w.bundle())).ok());
    CHECK(device_code(f) == ErrorCode::bad_state);
    check_nothing_committed(w);
}

TEST_CASE("an M3 replayed from an earlier session is refused by the next session") {
    World w;
    auto bundle = w.bundle();
    Bytes old_m3;
    {
        Flow f(w, w.setup(w.token({Operation::query})));
        REQUIRE(f.run(query()).ok());
        old_m3 = f.ex.messages[2];
    }
    Flow f(w, w.setup(w.token()));
    REQUIRE(f.pair().ok());
    auto step = f.d.handle(old_m3);
    REQUIRE(step.error);
    CHECK(step.error->code == ErrorCode::auth_failed);
    CHECK(f.d.failed());
}

TEST_CASE("a replayed or reordered record on the channel is refused") {
    const std::vector<Operation> ops{Operation::deliver_sealed, Operation::query};
    SUBCASE("replay") {
        World w;
        Flow f(w, w.setup(w.token(ops)));
        REQUIRE(f.run(deliver(w.bundle())).ok());
        auto r1 = f.p.request(query());
        REQUIRE(r1.ok());
        REQUIRE_FALSE(f.d.handle(*r1).error);
        auto again = f.d.handle(*r1);
        REQUIRE(again.error);
        CHECK(again.error->code == ErrorCode::auth_failed);
        CHECK(f.d.failed());
    }
    SUBCASE("reorder") {
        World w;
        Flow f(w, w.setup(w.token(ops)));
        REQUIRE(f.run(deliver(w.bundle())).ok());
        auto r1 = f.p.request(query());
        REQUIRE(r1.ok());
        // A second provisioner record can only exist after the first answer;
        // forge the ordering by sealing two records from a twin session.
        auto step = f.d.handle(*r1);
        REQUIRE_FALSE(step.error);
        REQUIRE(f.p.read_response(step.reply).ok());
        auto r2 = f.p.request(query());
        auto r3_state = f.p.state();
        CHECK(r3_state == ProvisionerSession::State::await_response);
        // Device sees r2 fine, but a stale r1 after it is a replay/reorder.
        REQUIRE_FALSE(f.d.handle(*r2).error);
        auto stale = f.d.handle(*r1);
        REQUIRE(stale.error);
        CHECK(stale.error->code == ErrorCode::auth_failed);
    }
    SUBCASE("a device record replayed to the provisioner") {
        World w;
        Flow f(w, w.setup(w.token(ops)));
        REQUIRE(f.run(deliver(w.bundle())).ok());
        auto r1 = f.p.request(query());
        auto reply = f.d.handle(*r1).reply;
        REQUIRE(f.p.read_response(reply).ok());
        auto r2 = f.p.request(query());
        (void)f.d.handle(*r2);
        auto st = f.p.read_response(reply);  // the earlier answer again
        REQUIRE_FALSE(st.ok());
        CHECK(st.error().code == ErrorCode::auth_failed);
    }
}

TEST_CASE("expired token: refused by the device against its high-water time") {
    World w;
    w.host.rec.time_high_water = kNow + 7200;  // the device has seen a newer operator time
    auto s = w.setup(w.token());
    s.check_token_locally = false;
    Flow f(w, std::move(s));
    auto resp = f.run(deliver(w.bundle()));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::expired);
    CHECK(f.d.failed());
    CHECK_FALSE(w.host.rec.credential);
}

TEST_CASE("expired and not-yet-valid tokens: refused early by the provisioner") {
    World w;
    SUBCASE("expired") {
        ProvisionerSession p(w.setup(w.token({Operation::query}, kNow - 7200, kNow - 3600)), w.code);
        auto m1 = p.start();
        REQUIRE_FALSE(m1.ok());
        CHECK(m1.error().code == ErrorCode::expired);
    }
    SUBCASE("not yet valid") {
        ProvisionerSession p(w.setup(w.token({Operation::query}, kNow + 3600, kNow + 7200)), w.code);
        auto m1 = p.start();
        REQUIRE_FALSE(m1.ok());
        CHECK(m1.error().code == ErrorCode::not_yet_valid);
    }
}

TEST_CASE("not-yet-valid token: refused by a device that has a trusted clock") {
    World w;
    auto s = w.setup(w.token({Operation::deliver_sealed}, kNow + 3600, kNow + 7200));
    s.check_token_locally = false;
    Flow f(w, std::move(s), /*device_now=*/kNow);
    auto resp = f.run(deliver(w.bundle()));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::not_yet_valid);
    check_nothing_committed(w);
}

TEST_CASE("token for another device is refused") {
    World w;
    auto other = DeviceIdentity::generate();
    auto s = w.setup(w.token({Operation::deliver_sealed}, kNow - 60, kNow + 3600, nullptr, other.id));
    s.check_token_locally = false;
    Flow f(w, std::move(s));
    auto resp = f.run(deliver(w.bundle()));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::not_authorised);
    check_nothing_committed(w);
}

TEST_CASE("token for a device-id prefix covers matching devices only") {
    World w;
    AuthorisationToken t;
    t.provisioner_key = w.provisioner.public_key;
    t.device_prefix.assign(w.device.id.bytes.begin(), w.device.id.bytes.begin() + 2);
    t.operations = {Operation::deliver_sealed};
    t.not_before = kNow - 60;
    t.not_after = kNow + 60;
    CHECK(t.covers(w.device.id));
    DeviceId other = w.device.id;
    other.bytes[1] ^= 1;
    CHECK_FALSE(t.covers(other));
    Flow f(w, w.setup(issue_token(w.op.sign, t)));
    CHECK(f.run(deliver(w.bundle())).ok());
}

TEST_CASE("token for another operation is refused") {
    World w;
    Flow f(w, w.setup(w.token({Operation::query})));
    auto resp = f.run(deliver(w.bundle()));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::not_authorised);
    check_nothing_committed(w);
}

TEST_CASE("token issued to another provisioner key is refused") {
    World w;
    auto thief = crypto::generate_signing_key();
    auto s = w.setup(w.token());
    s.key = &thief;  // a stolen token used with another key
    s.check_token_locally = false;
    Flow f(w, std::move(s));
    auto resp = f.run(deliver(w.bundle()));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::bad_signature);
    check_nothing_committed(w);
}

TEST_CASE("bundle signed by a key that is not the device's owner is refused") {
    World w;
    { Flow f(w, w.setup(w.token())); REQUIRE(f.run(deliver(w.bundle())).ok()); }
    REQUIRE(apply_network_deprovision(w.device, w.trust, w.host.rec, w.owner_command(OwnerCommandKind::deprovision))
                .ok());
    w.host.rec.credential.reset();
    w.host.rec.deprovision_epoch = 1;
    Operator rogue;
    SUBCASE("token and bundle from a rogue operator, even with a root certificate") {
        // The device is owned: a certificate for another operator does not help.
        auto s = w.setup(w.token({Operation::deliver_sealed}, kNow - 60, kNow + 3600, &rogue.sign));
        s.operator_certificate = certify_operator(w.root, rogue.keys());
        Flow f(w, std::move(s));
        auto resp = f.run(deliver(w.bundle(2, std::nullopt, &rogue.sign)));
        REQUIRE_FALSE(resp.ok());
        CHECK(resp.error().code == ErrorCode::not_owner);
    }
    SUBCASE("owner's token, rogue bundle") {
        Flow f(w, w.setup(w.token()));
        auto resp = f.run(deliver(w.bundle(2, std::nullopt, &rogue.sign)));
        REQUIRE_FALSE(resp.ok());
        CHECK(resp.error().code == ErrorCode::not_owner);
    }
    CHECK_FALSE(w.host.rec.credential);
}

TEST_CASE("an operator key not certified by the pinned root is refused") {
    World w;
    auto fake_root = crypto::generate_signing_key();
    auto s = w.setup(w.token());
    s.operator_certificate = certify_operator(fake_root, w.op.keys());
    Flow f(w, std::move(s));
    auto resp = f.run(deliver(w.bundle()));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::untrusted_operator);
    check_nothing_committed(w);
}

TEST_CASE("an unowned device without root or lab opt-in adopts no one") {
    World w;
    w.trust.provisioning_root.reset();
    Flow f(w, w.setup(w.token()));
    auto resp = f.run(deliver(w.bundle()));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::untrusted_operator);
    check_nothing_committed(w);
}

TEST_CASE("lab trust-on-first-use is an explicit opt-in that adopts the first operator") {
    World w;
    w.trust.provisioning_root.reset();
    w.trust.lab_trust_on_first_use = true;
    auto s = w.setup(w.token());
    s.operator_certificate = sign_body(w.op.sign, context::operator_certificate, w.op.keys().encode());  // self-signed
    Flow f(w, std::move(s));
    REQUIRE(f.run(deliver(w.bundle())).ok());
    CHECK(*w.host.rec.owner == w.op.keys());
}

TEST_CASE("a device with a pinned owner ignores certificates and refuses transfer") {
    World w;
    w.trust.provisioning_root.reset();
    w.trust.pinned_owner = w.op.keys();
    Operator rogue;
    {
        auto s = w.setup(w.token({Operation::deliver_sealed}, kNow - 60, kNow + 3600, &rogue.sign));
        s.operator_certificate = certify_operator(w.root, rogue.keys());
        Flow f(w, std::move(s));
        auto resp = f.run(deliver(w.bundle()));
        REQUIRE_FALSE(resp.ok());
        CHECK(resp.error().code == ErrorCode::not_owner);
    }
    Flow f(w, w.setup(w.token({Operation::deliver_sealed, Operation::transfer})));
    REQUIRE(f.run(deliver(w.bundle())).ok());
    CHECK_FALSE(w.host.rec.owner);  // pinned, never adopted
    auto t = f.request({Operation::transfer, w.owner_command(OwnerCommandKind::transfer, rogue.keys().encode())});
    REQUIRE_FALSE(t.ok());
    CHECK(t.error().code == ErrorCode::mode_not_allowed);
}

TEST_CASE("a field authorisation where the token allows only sealed mode is refused") {
    World w;
    Flow f(w, w.setup(w.token({Operation::deliver_sealed}), true, kModeSealed | kModeField));
    auto resp = f.run(deliver(w.field_authorisation(), Operation::deliver_field));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::not_authorised);
    check_nothing_committed(w);
}

TEST_CASE("field mode is refused when the device policy forbids it or it was not negotiated") {
    SUBCASE("device policy") {
        World w;
        w.trust.field_mode_allowed = false;
        Flow f(w, w.setup(w.token({Operation::deliver_field}), true, kModeSealed | kModeField));
        auto resp = f.run(deliver(w.field_authorisation(), Operation::deliver_field));
        REQUIRE_FALSE(resp.ok());
        CHECK(resp.error().code == ErrorCode::mode_not_allowed);
        check_nothing_committed(w);
    }
    SUBCASE("not offered in ADa") {
        World w;
        Flow f(w, w.setup(w.token({Operation::deliver_field}), true, kModeSealed));
        auto resp = f.run(deliver(w.field_authorisation(), Operation::deliver_field));
        REQUIRE_FALSE(resp.ok());
        CHECK(resp.error().code == ErrorCode::mode_not_allowed);
    }
    SUBCASE("a bundle cannot be passed off as a field authorisation") {
        World w;
        Flow f(w, w.setup(w.token({Operation::deliver_field}), true, kModeSealed | kModeField));
        auto resp = f.run(deliver(w.bundle(), Operation::deliver_field));
        REQUIRE_FALSE(resp.ok());
        CHECK(resp.error().code == ErrorCode::not_owner);  // wrong signature context
    }
}

TEST_CASE("a field authorisation from another provisioner's pool is refused") {
    World w;
    FieldAuthorisation a;
    a.id = BundleId::random();
    a.provisioner_key_hash = digest(crypto::generate_signing_key().public_key);
    a.profile = test_profile();
    a.issued_at = kNow;
    a.not_after = kNow + 60;
    Flow f(w, w.setup(w.token({Operation::deliver_field}), true, kModeSealed | kModeField));
    auto resp = f.run(deliver(issue_field_authorisation(w.op.sign, a), Operation::deliver_field));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::not_authorised);
}

TEST_CASE("a bundle bound to another device is refused") {
    World w;
    auto other = DeviceIdentity::generate();
    Flow f(w, w.setup(w.token()));
    auto resp = f.run(deliver(w.bundle(1, other.id)));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::wrong_device);
    check_nothing_committed(w);
}

TEST_CASE("owner-signed objects cannot be replayed on another device or after a newer one") {
    World w;
    const std::vector<Operation> ops{Operation::deliver_sealed, Operation::reconfigure, Operation::deprovision};
    Flow f(w, w.setup(w.token(ops)));
    REQUIRE(f.run(deliver(w.bundle())).ok());
    SUBCASE("another device") {
        auto other = DeviceIdentity::generate();
        auto cmd = w.owner_command(OwnerCommandKind::deprovision, {}, std::nullopt, other.id);
        auto r = f.request({Operation::deprovision, cmd});
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == ErrorCode::wrong_device);
        CHECK(w.host.rec.credential);
    }
    SUBCASE("after a newer one") {
        auto older = w.owner_command(OwnerCommandKind::reconfigure, DeviceSettings{"a", {}, {}, {}}.encode());
        auto newer = w.owner_command(OwnerCommandKind::reconfigure, DeviceSettings{"b", {}, {}, {}}.encode());
        REQUIRE(f.request({Operation::reconfigure, newer}).ok());
        auto r = f.request({Operation::reconfigure, older});
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == ErrorCode::stale_counter);
        CHECK(w.host.rec.settings.label == std::optional<std::string>("b"));
    }
    SUBCASE("in another role: a reconfiguration re-labelled as deprovisioning") {
        auto cmd = w.owner_command(OwnerCommandKind::reconfigure, DeviceSettings{"x", {}, {}, {}}.encode());
        auto body = OwnerCommand::decode(cmd.body).value();
        body.kind = OwnerCommandKind::deprovision;
        body.payload.clear();
        SignedObject relabelled{body.encode(), cmd.signature};
        auto r = f.request({Operation::deprovision, relabelled});
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == ErrorCode::not_owner);
        CHECK(w.host.rec.credential);
    }
}

TEST_CASE("deprovisioning with a stale counter is refused, on the channel and over the network") {
    World w;
    const std::vector<Operation> ops{Operation::deliver_sealed, Operation::deprovision, Operation::reconfigure};
    Flow f(w, w.setup(w.token(ops)));
    REQUIRE(f.run(deliver(w.bundle())).ok());
    auto stale = w.owner_command(OwnerCommandKind::deprovision);  // counter 1
    REQUIRE(f.request({Operation::reconfigure, w.owner_command(OwnerCommandKind::reconfigure,
                                                               DeviceSettings{"y", {}, {}, {}}.encode())})
                .ok());  // counter 2 applied
    auto net = apply_network_deprovision(w.device, w.trust, w.host.rec, stale);
    REQUIRE_FALSE(net.ok());
    CHECK(net.error().code == ErrorCode::stale_counter);
    auto r = f.request({Operation::deprovision, stale});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::stale_counter);
    CHECK(w.host.rec.credential);
}

TEST_CASE("a forged network deprovisioning notice is refused") {
    World w;
    { Flow f(w, w.setup(w.token())); REQUIRE(f.run(deliver(w.bundle())).ok()); }
    Operator rogue;
    auto forged = w.owner_command(OwnerCommandKind::deprovision, {}, 99, std::nullopt, &rogue.sign);
    auto r = apply_network_deprovision(w.device, w.trust, w.host.rec, forged);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::not_owner);
    auto reconf = w.owner_command(OwnerCommandKind::reconfigure, DeviceSettings{"z", {}, {}, {}}.encode());
    auto r2 = apply_network_deprovision(w.device, w.trust, w.host.rec, reconf);
    REQUIRE_FALSE(r2.ok());
    CHECK(r2.error().code == ErrorCode::not_authorised);
    auto good = apply_network_deprovision(w.device, w.trust, w.host.rec, w.owner_command(OwnerCommandKind::deprovision));
    REQUIRE(good.ok());
    CHECK_FALSE(good->credential);
}

TEST_CASE("a bundle older than the last deprovisioning is refused") {
    World w;
    auto old_bundle = w.bundle(1);
    { Flow f(w, w.setup(w.token())); REQUIRE(f.run(deliver(w.bundle(1))).ok()); }
    auto next = apply_network_deprovision(w.device, w.trust, w.host.rec, w.owner_command(OwnerCommandKind::deprovision));
    REQUIRE(w.host.commit(*next, nullptr).ok());
    Flow f(w, w.setup(w.token()));
    auto resp = f.run(deliver(old_bundle));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::stale_counter);
    CHECK_FALSE(w.host.rec.credential);
}

TEST_CASE("a storage failure at commit means no receipt") {
    World w;
    w.host.fail_commit = true;
    Flow f(w, w.setup(w.token()));
    auto resp = f.run(deliver(w.bundle()));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::storage);
    CHECK_FALSE(w.host.rec.credential);
}

TEST_CASE("a man in the middle that swaps ADa to downgrade modes breaks the pairing") {
    World w;
    Flow f(w, w.setup(w.token({Operation::deliver_field}), true, kModeSealed | kModeField));
    f.tamper = [](std::size_t i, Bytes& m) {
        if (i != 0) return;
        auto m1 = PairRequest::decode(m).value();
        auto ad = ProvisionerAd::decode(m1.ada).value();
        ad.modes = kModeSealed;
        m1.ada = ad.encode();
        m = m1.encode();
    };
    auto resp = f.run(deliver(w.field_authorisation(), Operation::deliver_field));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::auth_failed);
    check_nothing_committed(w);
}

TEST_CASE("a man in the middle that re-keys with its own CPace share fails without the setup code") {
    World w;
    Flow f(w, w.setup(w.token()));
    auto mitm_code = std::move(SetupCode::parse("00000000")).value();
    f.tamper = [&](std::size_t i, Bytes& m) {
        if (i != 0) return;
        // Replace Ya with one computed from a guessed code.
        auto m1 = PairRequest::decode(m).value();
        auto g = cpace::calculate_generator(mitm_code.prs(), channel_identifier(TransportType::loopback, w.device.id), m1.sid);
        m1.ya = cpace::Ephemeral::generate(g).value().public_share();
        m = m1.encode();
    };
    auto resp = f.run(deliver(w.bundle()));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::auth_failed);
    check_nothing_committed(w);
}

TEST_CASE("the device's keys in M2 must match the label's device id") {
    World w;
    World impostor;  // same setup code, different identity
    ProvisionerSession p(w.setup(w.token(), /*keys_known=*/false), w.code);
    // The impostor answers with its own keys under the real device id's CI.
    impostor.device.id = w.device.id;
    DeviceSession d(impostor.device, impostor.trust, impostor.host, w.code, TransportType::loopback);
    auto m2 = d.handle(*p.start());
    auto st = p.read_pair_response(m2.reply);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == ErrorCode::wrong_device);
}

TEST_CASE("oversized, truncated and random input: typed error, session failed, nothing written") {
    World w;
    SUBCASE("oversized") {
        Bytes big(kMaxMessageBytes + 1, 0);
        DeviceSession d(w.device, w.trust, w.host, w.code, TransportType::loopback);
        auto step = d.handle(big);
        REQUIRE(step.error);
        CHECK((step.error->code == ErrorCode::oversized || step.error->code == ErrorCode::malformed));
        CHECK(d.failed());
    }
    SUBCASE("pair request with an oversized ADa") {
        PairRequest m1;
        m1.ada = Bytes(65, 0xa0);
        DeviceSession d(w.device, w.trust, w.host, w.code, TransportType::loopback);
        auto step = d.handle(m1.encode());
        REQUIRE(step.error);
        CHECK(step.error->code == ErrorCode::oversized);
        CHECK(d.failed());
    }
    SUBCASE("random") {
        std::array<std::uint8_t, 257> noise{};
        for (int i = 0; i < 200; ++i) {
            crypto::random_bytes(noise);
            const std::size_t len = noise[0] + 1u;
            DeviceSession d(w.device, w.trust, w.host, w.code, TransportType::loopback);
            auto step = d.handle(ByteView(noise).first(len));
            REQUIRE(step.error);
            CHECK(d.failed());
            // A failed session refuses everything afterwards.
            auto later = d.handle(ByteView(noise).first(len));
            CHECK(later.error);
        }
    }
    SUBCASE("empty") {
        DeviceSession d(w.device, w.trust, w.host, w.code, TransportType::loopback);
        auto step = d.handle({});
        REQUIRE(step.error);
        CHECK(step.error->code == ErrorCode::malformed);
    }
    check_nothing_committed(w);
}

TEST_CASE("an owner command without the device's local consent changes nothing") {
    World w;
    const std::vector<Operation> ops{Operation::deliver_sealed, Operation::deprovision};
    Flow f(w, w.setup(w.token(ops)));
    REQUIRE(f.run(deliver(w.bundle())).ok());
    w.host.withhold_consent_for = OwnerCommandKind::deprovision;
    const std::uint64_t counter = w.host.rec.owner_counter;
    auto r = f.request({Operation::deprovision, w.owner_command(OwnerCommandKind::deprovision)});
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::not_authorised);
    CHECK(w.host.rec.credential);
    CHECK(w.host.rec.owner_counter == counter);
}
