// The provisioner's flows (see provisioning.hpp).
#include "credprov/provisioner/provisioning.hpp"

#include <sodium.h>

#include <ctime>

#include "credprov/common/request_auth.hpp"
#include "credprov/protocol/provisioner_session.hpp"
#include "credprov/protocol/transport.hpp"
#include "credprov/transport/stream_transport.hpp"

namespace credprov::provisioner {
namespace {

using json = nlohmann::json;
using namespace std::chrono_literals;

std::int64_t now() { return static_cast<std::int64_t>(std::time(nullptr)); }

std::string attempt_id() {
    ByteArray<8> b{};
    crypto::random_bytes(b);
    return "att_" + to_hex(b);
}

std::string b64(ByteView data) {
    std::string out(sodium_base64_ENCODED_LEN(data.size(), sodium_base64_VARIANT_ORIGINAL), '\0');
    sodium_bin2base64(out.data(), out.size(), data.data(), data.size(), sodium_base64_VARIANT_ORIGINAL);
    out.resize(out.size() - 1);
    return out;
}

std::optional<SignedObject> signed_object_from_b64(const json& v) {
    if (!v.is_string()) return std::nullopt;
    const auto& s = v.get_ref<const std::string&>();
    Bytes raw(s.size());
    std::size_t len = 0;
    if (sodium_base642bin(raw.data(), raw.size(), s.data(), s.size(), nullptr, &len, nullptr, sodium_base64_VARIANT_ORIGINAL) != 0) {
        return std::nullopt;
    }
    raw.resize(len);
    auto obj = SignedObject::decode(raw);
    if (!obj) return std::nullopt;
    return *obj;
}

FlowResult fail(Outcome o, std::string message) { return FlowResult{o, std::move(message), json::object()}; }

// One device session over a stream link: pairs, then answers requests.
class DeviceLink {
public:
    static Result<DeviceLink> connect(const std::string& address) {
        auto addr = transport::Address::parse(address);
        if (!addr) return addr.error();
        auto link = transport::StreamTransport::connect(*addr, 5s);
        if (!link) return link.error();
        return DeviceLink(std::move(*link));
    }
    Result<Bytes> exchange(const Bytes& m) {
        if (auto st = link_->send(m); !st) return st.error();
        return receive(*link_, 15s);
    }

private:
    explicit DeviceLink(std::unique_ptr<Transport> l) : link_(std::move(l)) {}
    std::unique_ptr<Transport> link_;
};

Outcome link_outcome(const Error& e) {
    switch (e.code) {
        case ErrorCode::io:
        case ErrorCode::closed:
        case ErrorCode::timeout:
        case ErrorCode::auth_failed:  // wrong setup code
        case ErrorCode::backoff:
            return Outcome::link;
        default:
            return Outcome::device_refused;
    }
}

}  // namespace

Provisioner::Provisioner(Workspace& ws, Settings settings, const crypto::SigningKey& key, Progress progress)
    : ws_(ws), settings_(std::move(settings)), key_(key), progress_(std::move(progress)),
      backend_(settings_.backend, settings_.ca_file, &key_) {}

BackendReply Provisioner::post(const std::string& path, const json& body) { return backend_.post(path, body); }

FlowResult Provisioner::post_receipt(const Workspace::PendingReceipt& pending, Workspace::Operation& op) {
    auto r = post("/v1/receipts", pending.request);
    if (!r.reachable || r.status >= 500 || r.status == 429) {
        op.state = "queued";
        op.detail = "receipt queued: " + r.describe();
        (void)ws_.record(op);
        return fail(Outcome::queued, "the device is provisioned; its receipt waits in the queue (" + r.describe() +
                                         "); run 'credprov queue flush' when the backend is reachable");
    }
    (void)ws_.drop_receipt(pending.object_id);
    if (!r.ok()) {
        op.state = "failed";
        op.detail = "receipt refused: " + r.describe();
        op.finished_at = now();
        (void)ws_.record(op);
        return fail(Outcome::backend, "the backend refused the receipt: " + r.describe());
    }
    op.state = r.body.value("state", "") == "active" ? "active" : "done";
    op.imsi = r.body.value("imsi", op.imsi);
    op.detail = "subscriber " + r.body.value("state", std::string("?"));
    op.finished_at = now();
    (void)ws_.record(op);
    FlowResult ok{Outcome::ok, "subscriber " + op.imsi + " is " + r.body.value("state", std::string("?")), r.body};
    if (r.body.value("state", "") != "active") ok.outcome = Outcome::backend;
    return ok;
}

FlowResult Provisioner::provision(const Target& t) {
    constexpr int kSteps = 5;
    auto step = [&](int n, const std::string& what) {
        if (progress_) progress_(n, kSteps, what);
    };
    Workspace::Operation op{attempt_id(), now(), "provision", t.device.to_string(), "started", "", "", "", 0};
    if (auto st = ws_.record(op); !st) return fail(Outcome::storage, st.error().message);
    auto failed = [&](Outcome o, const std::string& message) {
        op.state = "failed";
        op.detail = message;
        op.finished_at = now();
        (void)ws_.record(op);
        return fail(o, message);
    };

    step(1, "authorisation token from the backend");
    auto tok = post("/v1/tokens", json{{"device_id", t.device.to_string()}, {"operations", {"deliver-sealed", "query"}}});
    if (!tok.ok()) {
        return failed(tok.reachable && (tok.status == 401 || tok.status == 403) ? Outcome::not_enrolled : Outcome::backend,
                      "no authorisation token: " + tok.describe());
    }
    auto token = signed_object_from_b64(tok.body["token"]);
    if (!token) return failed(Outcome::backend, "the backend's token does not decode");

    step(2, "pairing with the device at " + t.address);
    auto code = SetupCode::parse(t.code);
    if (!code) return failed(Outcome::usage, "the setup code must be 8 to 16 digits");
    auto link = DeviceLink::connect(t.address);
    if (!link) return failed(Outcome::link, "cannot reach the device: " + link.error().message);
    ProvisionerSetup setup;
    setup.device = t.device;
    setup.transport = TransportType::tcp;  // stream links (TCP and Unix) bind the same CPace channel id
    setup.key = &key_;
    setup.token = *token;
    setup.operator_certificate = signed_object_from_b64(tok.body.value("operator_certificate", json()));
    setup.now = static_cast<std::uint64_t>(now());
    ProvisionerSession session(std::move(setup), *code);
    auto m1 = session.start();
    if (!m1) return failed(Outcome::link, m1.error().message);
    auto m2 = link->exchange(*m1);
    if (!m2) return failed(Outcome::link, "the link dropped during pairing: " + m2.error().message);
    if (auto st = session.read_pair_response(*m2); !st) {
        return failed(link_outcome(st.error()), "pairing failed: " + st.error().message);
    }

    step(3, "sealed credential bundle from the backend");
    const KnownDeviceKeys& keys = session.device_keys();
    json device{{"device_id", t.device.to_string()}, {"identity_key", to_hex(keys.identity)}, {"box_key", to_hex(keys.box)}};
    if (keys.box_signature) device["box_signature"] = to_hex(*keys.box_signature);
    if (session.device_attestation()) device["attestation"] = b64(session.device_attestation()->encode());
    auto minted = post("/v1/bundles", json{{"device", device}});
    if (!minted.ok()) return failed(Outcome::backend, "no bundle: " + minted.describe());
    auto bundle = signed_object_from_b64(minted.body["bundle"]);
    if (!bundle) return failed(Outcome::backend, "the backend's bundle does not decode");
    op.imsi = minted.body.value("imsi", "");
    op.object_id = minted.body.value("object_id", "");
    (void)ws_.record(op);

    step(4, "delivering the bundle to the device");
    auto m3 = session.authorise(Request{Operation::deliver_sealed, *bundle});
    if (!m3) return failed(Outcome::device_refused, m3.error().message);
    auto m4 = link->exchange(*m3);
    if (!m4) return failed(Outcome::link, "the link dropped during delivery (retry: it converges): " + m4.error().message);
    auto resp = session.read_response(*m4);
    if (!resp) return failed(link_outcome(resp.error()), "delivery failed: " + resp.error().message);
    if (!resp->ok || !resp->receipt) return failed(Outcome::device_refused, "the device refused the bundle: " + resp->message);

    // The receipt is journalled before it is posted: a crash from here on
    // loses nothing (queue flush posts it).
    Workspace::PendingReceipt pending{op.object_id, op.id, t.device.to_string(),
                                      json{{"object_id", op.object_id}, {"receipt", b64(resp->receipt->encode())}}, now()};
    if (auto st = ws_.queue_receipt(pending); !st) return failed(Outcome::storage, st.error().message);
    op.state = "delivered";
    (void)ws_.record(op);

    step(5, "posting the device's receipt to the backend");
    auto result = post_receipt(pending, op);
    result.details["attempt_id"] = op.id;
    result.details["device_id"] = t.device.to_string();
    return result;
}

FlowResult Provisioner::query(const Target& t) {
    Workspace::Operation op{attempt_id(), now(), "query", t.device.to_string(), "started", "", "", "", 0};
    auto tok = post("/v1/tokens", json{{"device_id", t.device.to_string()}, {"operations", {"query"}}});
    if (!tok.ok()) return fail(Outcome::backend, "no authorisation token: " + tok.describe());
    auto token = signed_object_from_b64(tok.body["token"]);
    auto code = SetupCode::parse(t.code);
    if (!code) return fail(Outcome::usage, "the setup code must be 8 to 16 digits");
    if (!token) return fail(Outcome::backend, "the backend's token does not decode");
    auto link = DeviceLink::connect(t.address);
    if (!link) return fail(Outcome::link, "cannot reach the device: " + link.error().message);
    ProvisionerSetup setup;
    setup.device = t.device;
    setup.transport = TransportType::tcp;
    setup.key = &key_;
    setup.token = *token;
    setup.operator_certificate = signed_object_from_b64(tok.body.value("operator_certificate", json()));
    setup.now = static_cast<std::uint64_t>(now());
    ProvisionerSession session(std::move(setup), *code);
    auto m2 = link->exchange(session.start().value());
    if (!m2) return fail(Outcome::link, m2.error().message);
    if (auto st = session.read_pair_response(*m2); !st) return fail(link_outcome(st.error()), "pairing failed: " + st.error().message);
    auto m3 = session.authorise(Request{Operation::query, std::nullopt});
    if (!m3) return fail(Outcome::device_refused, m3.error().message);
    auto m4 = link->exchange(*m3);
    if (!m4) return fail(Outcome::link, m4.error().message);
    auto resp = session.read_response(*m4);
    if (!resp) return fail(link_outcome(resp.error()), resp.error().message);
    if (!resp->ok || !resp->info) return fail(Outcome::device_refused, "the device refused the query: " + resp->message);
    const DeviceInfo& i = *resp->info;
    json d{{"device_id", i.device.to_string()},
           {"owner", i.owner_state == OwnerState::unowned ? "unowned" : i.owner_state == OwnerState::owned ? "owned" : "pinned"},
           {"owner_counter", i.owner_counter},
           {"provisioned", i.provisioned},
           {"software", i.software}};
    if (i.profile) {
        d["imsi"] = i.profile->imsi.str();
        d["plmn"] = i.profile->plmn.str();
        d["network_name"] = i.profile->network_name.str();
    }
    op.state = "done";
    op.finished_at = now();
    (void)ws_.record(op);
    return FlowResult{Outcome::ok, i.provisioned ? "the device holds a credential" : "the device holds no credential", d};
}

FlowResult Provisioner::deprovision(const DeviceId& device, const std::string& reason) {
    Workspace::Operation op{attempt_id(), now(), "deprovision", device.to_string(), "started", "", "", reason, 0};
    auto r = post("/v1/devices/" + device.to_string() + "/deprovision", json{{"reason", reason}});
    op.finished_at = now();
    if (!r.ok()) {
        op.state = "failed";
        op.detail = r.describe();
        (void)ws_.record(op);
        return fail(r.reachable && (r.status == 401 || r.status == 403) ? Outcome::not_enrolled : Outcome::backend,
                    "deprovisioning refused: " + r.describe());
    }
    op.state = "done";
    (void)ws_.record(op);
    return FlowResult{Outcome::ok,
                      "deprovisioned through the network: the subscriber no longer authenticates; the device wipes its "
                      "credential when it next reaches the backend",
                      r.body};
}

FlowResult Provisioner::flush_queue() {
    auto pending = ws_.pending_receipts();
    if (!pending) return fail(Outcome::storage, pending.error().message);
    int posted = 0;
    for (const auto& p : *pending) {
        Workspace::Operation op{p.attempt_id, p.queued_at, "provision", p.device_id, "queued", "", p.object_id, "", 0};
        auto history = ws_.history(10000);
        if (history) {
            for (const auto& h : *history) {
                if (h.id == p.attempt_id) op = h;
            }
        }
        auto r = post_receipt(p, op);
        if (r.outcome == Outcome::queued) {
            return FlowResult{Outcome::queued, std::to_string(posted) + " receipt(s) posted; the backend is unreachable, " +
                                                   std::to_string(pending->size() - static_cast<std::size_t>(posted)) + " wait",
                              json{{"posted", posted}, {"waiting", pending->size() - static_cast<std::size_t>(posted)}}};
        }
        ++posted;
    }
    return FlowResult{Outcome::ok, std::to_string(posted) + " receipt(s) posted", json{{"posted", posted}, {"waiting", 0}}};
}

FlowResult enroll(Workspace& ws, const std::string& backend_url, const std::string& ca_file, const std::string& enrolment_token,
                  const std::string& name) {
    if (auto st = BackendClient::check_url(backend_url); !st) return fail(Outcome::usage, st.error().message);
    auto key = ws.load_or_create_key();
    if (!key) return fail(Outcome::storage, key.error().message);
    BackendClient backend(backend_url, ca_file, nullptr);
    json body{{"enrolment_token", enrolment_token},
              {"public_key", to_hex(key->public_key)},
              {"proof", to_hex(crypto::sign(*key, kEnrolmentContext, as_bytes(enrolment_token)))}};
    if (!name.empty()) body["name"] = name;
    auto r = backend.post("/v1/enrol", body);
    if (!r.ok()) {
        return fail(r.reachable && r.status < 500 ? Outcome::not_enrolled : Outcome::backend, "enrolment refused: " + r.describe());
    }
    auto op = backend.get("/v1/operator");
    Settings s;
    s.backend = backend_url;
    s.ca_file = ca_file;
    s.provisioner_id = r.body.value("id", "");
    s.name = r.body.value("name", "");
    if (op.ok() && op.body.contains("certificate") && op.body["certificate"].is_string()) {
        s.operator_certificate = op.body["certificate"].get<std::string>();
    }
    if (auto st = ws.save(s); !st) return fail(Outcome::storage, st.error().message);
    return FlowResult{Outcome::ok, "enrolled as provisioner " + s.provisioner_id + " (" + s.name + ")", r.body};
}

}  // namespace credprov::provisioner
