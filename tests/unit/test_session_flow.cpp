// The whole pair -> authorise -> deliver -> receipt flow between the two
// state machines in memory, in both bundle variants, and the operations that
// follow on the channel: query, reconfigure, diagnose, deprovision.
#include <doctest/doctest.h>

#include "flow.hpp"

using namespace credprov;
using namespace credprov::testing;

TEST_CASE("sealed delivery: two round trips, receipt verifies, device commits and adopts its owner") {
    World w;
    auto bundle = w.bundle();
    Flow f(w, w.setup(w.token()));
    auto resp = f.run(deliver(bundle));
    REQUIRE_MESSAGE(resp.ok(), resp.error().message);
    CHECK(f.ex.round_trips == 2);
    CHECK(f.ex.messages.size() == 4);
    REQUIRE(resp->receipt);
    CHECK(resp->receipt->result == ReceiptResult::committed);
    // The backend's view: the receipt verifies against what it issued.
    CHECK(verify_receipt(*resp->receipt, w.device.identity.public_key, w.device.id, bundle.hash(),
                         digest(w.provisioner.public_key))
              .ok());
    REQUIRE(w.host.rec.credential);
    CHECK(w.host.k == w.last_k);  // the device opened the sealed K
    REQUIRE(w.host.rec.owner);
    CHECK(*w.host.rec.owner == w.op.keys());
    CHECK(w.host.pending_failures == 0);  // confirmation cleared the attempt
    CHECK(f.d.state() == DeviceSession::State::ready);
}

TEST_CASE("sealed delivery with device keys learned in M2, backend call between the round trips") {
    World w;
    Flow f(w, w.setup(w.token(), /*keys_known=*/false));
    REQUIRE(f.pair().ok());
    // The provisioner now knows the device's box key and can fetch the bundle.
    CHECK(f.p.device_keys().box == w.device.box.public_key);
    auto bundle = w.bundle();
    auto resp = f.authorise(deliver(bundle));
    REQUIRE_MESSAGE(resp.ok(), resp.error().message);
    CHECK(w.host.k == w.last_k);
}

TEST_CASE("field mode: device generates K and OPc and seals them to the operator in its receipt") {
    World w;
    auto auth = w.field_authorisation();
    Flow f(w, w.setup(w.token({Operation::deliver_field}), true, kModeSealed | kModeField));
    auto resp = f.run(deliver(auth, Operation::deliver_field));
    REQUIRE_MESSAGE(resp.ok(), resp.error().message);
    REQUIRE(resp->receipt);
    REQUIRE(resp->receipt->field_keys);
    // The operator opens the keys; the provisioner could not (it has no box key).
    ReceiptContent content;
    content.device = w.device.id;
    content.object_id = resp->receipt->object_id;
    content.object_hash = auth.hash();
    content.provisioner_key_hash = digest(w.provisioner.public_key);
    content.field_salt = resp->receipt->field_salt;
    REQUIRE(content.field_salt);
    auto keys = open_keys(context::seal_field, w.op.box, w.op.box.public_key, w.device.box.public_key,
                          content.encode_header(), *resp->receipt->field_keys);
    REQUIRE(keys.ok());
    CHECK(Bytes(keys->k.data(), keys->k.data() + 16) == w.host.k);
    CHECK(Bytes(keys->opc.data(), keys->opc.data() + 16) == w.host.opc);
    CHECK(w.host.rec.credential->field_mode);
}

TEST_CASE("re-delivery of the same bundle returns the stored receipt, byte for byte") {
    World w;
    auto bundle = w.bundle();
    Bytes first;
    {
        Flow f(w, w.setup(w.token()));
        auto resp = f.run(deliver(bundle));
        REQUIRE(resp.ok());
        first = resp->receipt->encode();
    }
    const int commits = w.host.commits;
    Flow again(w, w.setup(w.token()));
    auto resp = again.run(deliver(bundle));
    REQUIRE_MESSAGE(resp.ok(), resp.error().message);
    CHECK(resp->receipt->encode() == first);
    CHECK(w.host.commits == commits);  // nothing written twice
}

TEST_CASE("a second, different bundle is refused while a credential is held") {
    World w;
    { Flow f(w, w.setup(w.token())); REQUIRE(f.run(deliver(w.bundle())).ok()); }
    Flow f(w, w.setup(w.token()));
    auto resp = f.run(deliver(w.bundle()));
    REQUIRE_FALSE(resp.ok());
    CHECK(resp.error().code == ErrorCode::already_provisioned);
}

TEST_CASE("query, reconfigure, diagnose and deprovision on the channel after delivery") {
    World w;
    auto bundle = w.bundle();
    const std::vector<Operation> all{Operation::deliver_sealed, Operation::query, Operation::reconfigure,
                                     Operation::diagnose, Operation::deprovision};
    Flow f(w, w.setup(w.token(all)));
    REQUIRE(f.run(deliver(bundle)).ok());

    auto q = f.request(query());
    REQUIRE_MESSAGE(q.ok(), q.error().message);
    REQUIRE(q->info);
    CHECK(q->info->device == w.device.id);
    CHECK(q->info->provisioned);
    CHECK(q->info->owner_state == OwnerState::owned);
    REQUIRE(q->info->profile);
    CHECK(q->info->profile->imsi.str() == "001010123456789");
    CHECK(q->info->software == "credprov-test 0");

    DeviceSettings s;
    s.label = "pump 7";
    s.attach_check_interval_s = 600;
    auto rc = f.request({Operation::reconfigure, w.owner_command(OwnerCommandKind::reconfigure, s.encode())});
    REQUIRE_MESSAGE(rc.ok(), rc.error().message);
    CHECK(w.host.rec.settings.label == std::optional<std::string>("pump 7"));
    CHECK(w.host.rec.owner_counter == 1);

    auto dg = f.request({Operation::diagnose,
                         w.owner_command(OwnerCommandKind::diagnose,
                                         encode_diagnostics({Diagnostic::self_test, Diagnostic::store_check}))});
    REQUIRE_MESSAGE(dg.ok(), dg.error().message);
    REQUIRE(dg->diagnostics.size() == 2);
    CHECK(dg->diagnostics[1].id == Diagnostic::store_check);

    auto dp = f.request({Operation::deprovision, w.owner_command(OwnerCommandKind::deprovision)});
    REQUIRE_MESSAGE(dp.ok(), dp.error().message);
    CHECK_FALSE(w.host.rec.credential);
    CHECK(w.host.k.empty());
    CHECK(w.host.rec.deprovision_epoch == 3);
    CHECK(dp->counter == std::optional<std::uint64_t>(3));

    auto q2 = f.request(query());
    REQUIRE(q2.ok());
    CHECK_FALSE(q2->info->provisioned);
}

TEST_CASE("query alone on an unowned device does not adopt the operator") {
    World w;
    Flow f(w, w.setup(w.token({Operation::query})));
    auto q = f.run(query());
    REQUIRE_MESSAGE(q.ok(), q.error().message);
    CHECK(q->info->owner_state == OwnerState::unowned);
    CHECK_FALSE(w.host.rec.owner);
    CHECK(w.host.commits == 0);
}

TEST_CASE("after deprovisioning, a fresh bundle with a newer epoch provisions again") {
    World w;
    { Flow f(w, w.setup(w.token())); REQUIRE(f.run(deliver(w.bundle(1))).ok()); }
    auto notice = w.owner_command(OwnerCommandKind::deprovision);
    auto next = apply_network_deprovision(w.device, w.trust, w.host.rec, notice);
    REQUIRE(next.ok());
    REQUIRE(w.host.commit(*next, nullptr).ok());
    Flow f(w, w.setup(w.token()));
    auto resp = f.run(deliver(w.bundle(2)));
    REQUIRE_MESSAGE(resp.ok(), resp.error().message);
}

TEST_CASE("ownership transfer: the new owner's tokens work, the old owner's no longer do") {
    World w;
    { Flow f(w, w.setup(w.token({Operation::deliver_sealed, Operation::transfer}))); 
      REQUIRE(f.run(deliver(w.bundle())).ok());
      Operator next_op;
      auto t = f.request({Operation::transfer, w.owner_command(OwnerCommandKind::transfer, next_op.keys().encode())});
      REQUIRE_MESSAGE(t.ok(), t.error().message);
      CHECK(*w.host.rec.owner == next_op.keys());
      w.op.sign = std::move(next_op.sign);  // from now on the world's operator is the new one
      w.op.box = std::move(next_op.box);
    }
    Flow f(w, w.setup(w.token({Operation::query})));
    CHECK(f.run(query()).ok());
}

TEST_CASE("label bootstrap payload: round trip, upper-case QR alphabet, strict parse") {
    auto id = DeviceIdentity::generate().id;
    BootstrapPayload p{id, std::move(SetupCode::parse("0123456789")).value(), kBootstrapTcp | kBootstrapBle};
    const SecretBytes text = p.encode();
    const std::string s(text.view().begin(), text.view().end());
    CHECK(s.rfind("CP1:", 0) == 0);
    CHECK(s.substr(s.size() - 13) == ":0123456789:3");
    for (char c : s) CHECK(((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':'));
    auto back = BootstrapPayload::parse(s);
    REQUIRE(back.ok());
    CHECK(back->device == id);
    CHECK(back->transports == 3);
    CHECK(back->code.reveal() == "0123456789");
    for (const char* bad : {"", "CP2:AAAA:12345678:1", "CP1:", "CP1:abc:12345678:1"}) {
        CHECK_FALSE(BootstrapPayload::parse(bad).ok());
    }
    auto wrong_digits = BootstrapPayload::parse(s.substr(0, s.size() - 1) + "9");
    CHECK_FALSE(wrong_digits.ok());
    auto short_code = BootstrapPayload::parse("CP1:" + s.substr(4, 26) + ":1234:1");
    REQUIRE_FALSE(short_code.ok());
    CHECK(short_code.error().message.find("1234") == std::string::npos);
}

TEST_CASE("field mode delivered twice (after deprovisioning) never reuses a sealing key") {
    World w;
    auto auth = w.field_authorisation();
    const std::vector<Operation> ops{Operation::deliver_field};
    std::optional<SealedKeys> first;
    {
        Flow f(w, w.setup(w.token(ops), true, kModeSealed | kModeField));
        auto resp = f.run(deliver(auth, Operation::deliver_field));
        REQUIRE(resp.ok());
        first = resp->receipt->field_keys;
    }
    auto next = apply_network_deprovision(w.device, w.trust, w.host.rec, w.owner_command(OwnerCommandKind::deprovision));
    REQUIRE(w.host.commit(*next, nullptr).ok());
    Flow f(w, w.setup(w.token(ops), true, kModeSealed | kModeField));
    auto resp = f.run(deliver(auth, Operation::deliver_field));
    REQUIRE(resp.ok());
    // Same authorisation, same device, same provisioner: the salts differ, so
    // the two ciphertexts are under different keys (no keystream reuse).
    REQUIRE(resp->receipt->field_salt);
    CHECK(*resp->receipt->field_keys != *first);
    ReceiptContent c;
    c.device = w.device.id;
    c.object_id = resp->receipt->object_id;
    c.object_hash = auth.hash();
    c.provisioner_key_hash = digest(w.provisioner.public_key);
    c.field_salt = resp->receipt->field_salt;
    auto keys = open_keys(context::seal_field, w.op.box, w.op.box.public_key, w.device.box.public_key,
                          c.encode_header(), *resp->receipt->field_keys);
    REQUIRE(keys.ok());
    CHECK(Bytes(keys->k.data(), keys->k.data() + 16) == w.host.k);
}

TEST_CASE("a sealed bundle re-delivered by another provisioner converges: a receipt for that provisioner") {
    World w;
    auto bundle = w.bundle();
    { Flow f(w, w.setup(w.token())); REQUIRE(f.run(deliver(bundle)).ok()); }
    const int commits = w.host.commits;
    w.provisioner = crypto::generate_signing_key();  // a colleague retries after the first link dropped
    Flow f(w, w.setup(w.token()));
    auto resp = f.run(deliver(bundle));
    REQUIRE_MESSAGE(resp.ok(), resp.error().message);
    CHECK(verify_receipt(*resp->receipt, w.device.identity.public_key, w.device.id, bundle.hash(),
                         digest(w.provisioner.public_key))
              .ok());
    CHECK(w.host.commits == commits);
}

TEST_CASE("manufacturer attestation travels with the device keys and verifies for exactly those keys") {
    World w;
    auto manufacturer = crypto::generate_signing_key();
    w.device.attestation = attest_device(
        manufacturer, DeviceAttestation{w.device.identity.public_key, w.device.box.public_key, "Acme Meters"});
    Flow f(w, w.setup(w.token(), /*keys_known=*/false));
    REQUIRE(f.pair().ok());
    REQUIRE(f.p.device_attestation());
    auto a = verify_attestation(*f.p.device_attestation(), manufacturer.public_key, f.p.device_keys().identity,
                                f.p.device_keys().box);
    REQUIRE(a.ok());
    CHECK(a->manufacturer == "Acme Meters");
    auto other = crypto::generate_signing_key();
    CHECK(verify_attestation(*f.p.device_attestation(), other.public_key, f.p.device_keys().identity,
                             f.p.device_keys().box)
              .error()
              .code == ErrorCode::bad_signature);
    auto impostor = DeviceIdentity::generate();
    CHECK(verify_attestation(*f.p.device_attestation(), manufacturer.public_key, impostor.identity.public_key,
                             impostor.box.public_key)
              .error()
              .code == ErrorCode::wrong_device);
}

TEST_CASE("a bundle sealed with the X25519 value computed ahead is the bundle sealed in one go, and the device opens it") {
    World w;
    CredentialBundle b;
    b.id = BundleId::random();
    b.device = w.device.id;
    b.profile = test_profile();
    b.issued_at = kNow;
    b.not_after = kNow + 86400;
    auto keys = SubscriberKeys::random();
    auto shared = seal_shared(w.op.box, w.device.box.public_key);
    REQUIRE(shared.ok());
    auto ahead = issue_bundle(w.op.sign, w.op.box.public_key, *shared, w.device.box.public_key, b, keys);
    auto at_once = issue_bundle(w.op.sign, w.op.box, w.device.box.public_key, b, keys);
    REQUIRE(ahead.ok());
    REQUIRE(at_once.ok());
    CHECK(ahead->encode() == at_once->encode());  // Ed25519 and the sealing are deterministic
    auto opened = verify_bundle(*ahead, w.op.sign.public_key);
    REQUIRE(opened.ok());
    auto device_keys = open_keys(context::seal_bundle, w.device.box, w.op.box.public_key, w.device.box.public_key,
                                 opened->encode_header(), opened->sealed);
    REQUIRE(device_keys.ok());
    CHECK(Bytes(device_keys->k.data(), device_keys->k.data() + 16) == Bytes(keys.k.data(), keys.k.data() + 16));
    // Computed for another device's key, it does not open for this one.
    auto other = crypto::generate_box_key();
    auto wrong = seal_shared(w.op.box, other.public_key);
    REQUIRE(wrong.ok());
    auto misdirected = issue_bundle(w.op.sign, w.op.box.public_key, *wrong, w.device.box.public_key, b, keys);
    REQUIRE(misdirected.ok());
    auto mis = verify_bundle(*misdirected, w.op.sign.public_key);
    REQUIRE(mis.ok());
    CHECK_FALSE(open_keys(context::seal_bundle, w.device.box, w.op.box.public_key, w.device.box.public_key, mis->encode_header(),
                          mis->sealed)
                    .ok());
}
