// The provisioner's flows (see provisioning.hpp).
#include "credprov/provisioner/provisioning.hpp"

#include <sodium.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <map>

#include "credprov/common/request_auth.hpp"
#include "credprov/protocol/provisioner_session.hpp"
#include "credprov/protocol/transport.hpp"
#include "credprov/transport/stream_transport.hpp"
#ifdef CREDPROV_HAVE_BLE
#include "credprov/transport/ble/central.hpp"
#include "credprov/transport/ble/gatt_profile.hpp"
#endif
#ifdef CREDPROV_HAVE_NFC
#include "credprov/transport/nfc/libnfc_device.hpp"
#endif

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

// One device session over a link: TCP or Unix stream, or BLE GATT or NFC-DEP
// when the build has them. Addresses: tcp://host:port, unix:/path,
// ble:[<device id>][@hciN] (the device id defaults to the target's),
// nfc:[<libnfc connstring>] (the device held to that reader).
class DeviceLink {
public:
    static Result<DeviceLink> connect(const std::string& address, const DeviceId& device) {
        if (address.rfind("ble:", 0) == 0) {
#ifdef CREDPROV_HAVE_BLE
            std::string text = address;
            if (text == "ble:" || text.rfind("ble:@", 0) == 0) text = "ble:" + device.to_string() + text.substr(4);
            auto target = transport::ble::BleTarget::parse(text);
            if (!target) return target.error();
            if (!(target->device == device)) return make_error(ErrorCode::malformed, "the BLE address names another device");
            transport::ble::CentralOptions options{target->adapter, true, {}};
            if (const char* t = std::getenv("CREDPROV_BLE_TRACE"); t != nullptr && *t != '\0' && *t != '0') {
                options.trace = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
            }
            auto conn = transport::ble::connect(options, device, 20s);
            if (!conn) return conn.error();
            DeviceLink l;
            l.type_ = TransportType::ble;
            l.ble_ = std::move(*conn);
            l.link_ = &l.ble_->link();
            return l;
#else
            (void)device;
            return make_error(ErrorCode::io, "this build of credprov has no BLE support (configure with -DCREDPROV_WITH_BLE=ON)");
#endif
        }
        if (address.rfind("nfc:", 0) == 0) {
#ifdef CREDPROV_HAVE_NFC
            auto connstring = transport::nfc::parse_nfc_address(address);
            if (!connstring) return connstring.error();
            auto link = transport::nfc::connect_initiator(*connstring, 10s);
            if (!link) return link.error();
            DeviceLink l;
            l.type_ = TransportType::nfc;
            l.nfc_ = std::move(*link);
            l.link_ = l.nfc_.get();
            return l;
#else
            return make_error(ErrorCode::io, "this build of credprov has no NFC support (configure with -DCREDPROV_WITH_NFC=ON)");
#endif
        }
        auto addr = transport::Address::parse(address);
        if (!addr) return addr.error();
        auto link = transport::StreamTransport::connect(*addr, 5s);
        if (!link) return link.error();
        DeviceLink l;
        l.stream_ = std::move(*link);
        l.link_ = l.stream_.get();
        return l;
    }
    DeviceLink(DeviceLink&& o) noexcept = default;
    Result<Bytes> exchange(const Bytes& m) {
        if (auto st = link_->send(m); !st) return st.error();
        return receive(*link_, 15s);
    }
    [[nodiscard]] TransportType type() const noexcept { return type_; }
    // What the link spent, for the record and the benchmarks.
    [[nodiscard]] json stats() const {
        json j{{"transport", type_ == TransportType::ble ? "ble" : type_ == TransportType::nfc ? "nfc" : "stream"}};
#ifdef CREDPROV_HAVE_NFC
        if (nfc_) j["exchanges"] = nfc_->exchanges();
#endif
#ifdef CREDPROV_HAVE_BLE
        if (ble_) {
            j["fragments_sent"] = ble_->link().fragments_sent();
            j["fragments_received"] = ble_->link().fragments_received();
            j["att_mtu"] = ble_->att_mtu();
            j["setup_round_trips"] = ble_->setup_round_trips();
        }
#endif
        return j;
    }

private:
    DeviceLink() = default;
    TransportType type_{TransportType::tcp};  // stream links (TCP and Unix) bind the same CPace channel id
    std::unique_ptr<Transport> stream_;
#ifdef CREDPROV_HAVE_BLE
    std::unique_ptr<transport::ble::BleConnection> ble_;
#endif
#ifdef CREDPROV_HAVE_NFC
    std::unique_ptr<transport::nfc::NfcInitiatorLink> nfc_;
#endif
    Transport* link_{nullptr};
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

// A token and the operator certificate that goes with it.
struct Grant {
    SignedObject token;
    std::optional<SignedObject> operator_certificate;
    json bundle;  // minted with the token (POST /v1/tokens "bundle": true), or null
};

// A paired session with one device.
struct Paired {
    DeviceLink link;
    std::unique_ptr<ProvisionerSession> session;
};

// Connects and pairs (M1/M2). On failure returns nothing and sets `why`.
// Offers field mode only when the technician asked for it (never a silent
// downgrade of sealed mode).
std::optional<Paired> pair(const Target& t, const Grant& grant, const crypto::SigningKey& key, FlowResult& why,
                           std::uint64_t modes = kModeSealed) {
    auto code = SetupCode::parse(t.code);
    if (!code) {
        why = fail(Outcome::usage, "the setup code must be 8 to 16 digits");
        return std::nullopt;
    }
    auto link = DeviceLink::connect(t.address, t.device);
    if (!link) {
        why = fail(Outcome::link, "cannot reach the device: " + link.error().message);
        return std::nullopt;
    }
    ProvisionerSetup setup;
    setup.device = t.device;
    setup.transport = link->type();
    setup.key = &key;
    setup.token = grant.token;
    setup.operator_certificate = grant.operator_certificate;
    setup.now = static_cast<std::uint64_t>(now());
    setup.modes = modes;
    Paired p{std::move(*link), std::make_unique<ProvisionerSession>(std::move(setup), *code)};
    auto m1 = p.session->start();
    if (!m1) {
        why = fail(Outcome::link, m1.error().message);
        return std::nullopt;
    }
    auto m2 = p.link.exchange(*m1);
    if (!m2) {
        why = fail(Outcome::link, "the link dropped during pairing: " + m2.error().message);
        return std::nullopt;
    }
    if (auto st = p.session->read_pair_response(*m2); !st) {
        const Error& e = st.error();
        why = fail(link_outcome(e), e.code == ErrorCode::auth_failed ? e.message : "pairing failed: " + e.message);
        // What a technician can act on: retype the code, or wait this long.
        if (e.code == ErrorCode::auth_failed) why.details["reason"] = "wrong_code";
        if (e.code == ErrorCode::backoff) {
            why.details["reason"] = "backoff";
            why.details["retry_after_s"] = p.session->retry_after_s().value_or(0);
        }
        return std::nullopt;
    }
    return p;
}

// One request over the paired session (M3/M4). A refusal by the device is a
// Response with ok == false; only link and protocol failures set `why`.
std::optional<Response> run_request(Paired& p, Request request, FlowResult& why) {
    auto m3 = p.session->authorise(std::move(request));
    if (!m3) {
        why = fail(Outcome::device_refused, m3.error().message);
        return std::nullopt;
    }
    auto m4 = p.link.exchange(*m3);
    if (!m4) {
        why = fail(Outcome::link, "the link dropped before the device answered (a retry converges): " + m4.error().message);
        return std::nullopt;
    }
    auto resp = p.session->read_response(*m4);
    if (!resp) {
        why = fail(link_outcome(resp.error()), "the device's answer failed: " + resp.error().message);
        return std::nullopt;
    }
    return std::move(*resp);
}

// The device's public keys (and attestation) as the backend reads them.
json device_json(const DeviceId& id, const ProvisionerSession& session) {
    const KnownDeviceKeys& keys = session.device_keys();
    json device{{"device_id", id.to_string()}, {"identity_key", to_hex(keys.identity)}, {"box_key", to_hex(keys.box)}};
    if (keys.box_signature) device["box_signature"] = to_hex(*keys.box_signature);
    if (session.device_attestation()) device["attestation"] = b64(session.device_attestation()->encode());
    return device;
}

Outcome refusal_outcome(const BackendReply& r) {
    return r.reachable && (r.status == 401 || r.status == 403) ? Outcome::not_enrolled : Outcome::backend;
}

}  // namespace

Provisioner::Provisioner(Workspace& ws, Settings settings, const crypto::SigningKey& key, Progress progress)
    : ws_(ws), settings_(std::move(settings)), key_(key), progress_(std::move(progress)),
      backend_(settings_.backend, settings_.ca_file, &key_) {}

BackendReply Provisioner::post(const std::string& path, const json& body) { return backend_.post(path, body); }

std::vector<BackendReply> Provisioner::post_each(const std::string& path, const std::vector<json>& bodies) {
    std::vector<BackendReply> replies;
    bool batches = bodies.size() > 1;
    while (replies.size() < bodies.size()) {
        const std::size_t at = replies.size();
        if (batches) {
            std::vector<std::pair<std::string, json>> requests;
            for (std::size_t i = at; i < std::min(bodies.size(), at + BackendClient::kBatchMax); ++i) requests.emplace_back(path, bodies[i]);
            auto b = backend_.batch(requests, [&](std::uint64_t seconds) {
                if (progress_) {
                    progress_(static_cast<int>(at), static_cast<int>(bodies.size()),
                              "the backend's rate limit: waiting " + std::to_string(seconds) + " s");
                }
            });
            // Refused whole (404: a backend older than POST /v1/batch; any
            // other 4xx but 429: a batch it will not take as sent): one at a
            // time then, so that each body gets its own answer and nothing
            // is dropped for a fault of the batch's.
            if (b.whole.reachable && b.whole.status >= 400 && b.whole.status < 500 && b.whole.status != 429) {
                batches = false;
                continue;
            }
            if (!b.whole.ok()) {
                replies.resize(bodies.size(), b.whole);
                break;
            }
            for (auto& r : b.each) replies.push_back(std::move(r));
            continue;
        }
        auto r = post(path, bodies[at]);
        if (!r.reachable) {
            replies.resize(bodies.size(), r);
            break;
        }
        replies.push_back(std::move(r));
    }
    return replies;
}

FlowResult Provisioner::post_receipt(const Workspace::PendingReceipt& pending, Workspace::Operation& op) {
    return settle_receipt(pending, op, post("/v1/receipts", pending.request));
}

FlowResult Provisioner::settle_receipt(const Workspace::PendingReceipt& pending, Workspace::Operation& op, const BackendReply& r) {
    if (!r.reachable || r.status >= 500 || r.status == 429) {
        op.state = "queued";
        op.detail = "receipt queued: " + r.describe();
        (void)ws_.record(op);
        return fail(Outcome::queued, "the device is provisioned; its receipt waits in the queue (" + r.describe() +
                                         "); run 'credprov queue flush' when the backend is reachable");
    }
    (void)ws_.drop_receipt(pending.object_id);
    // A field authorisation's receipt has reached the backend (no-op for bundles).
    (void)ws_.set_authorisation_state(pending.object_id, r.ok() ? "synced" : "refused");
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

namespace {

// Asks the backend for a token for these operations on this device.
// With `with_bundle`, the backend mints the device's sealed bundle in the same
// call when it knows the device (decision 0013).
std::optional<Grant> online_grant(BackendClient& backend, const DeviceId& device, const json& operations, FlowResult& why,
                                  bool with_bundle = false) {
    json ask{{"device_id", device.to_string()}, {"operations", operations}};
    if (with_bundle) ask["bundle"] = true;
    auto tok = backend.post("/v1/tokens", ask);
    if (!tok.ok()) {
        why = fail(refusal_outcome(tok), "no authorisation token: " + tok.describe());
        return std::nullopt;
    }
    auto token = signed_object_from_b64(tok.body["token"]);
    if (!token) {
        why = fail(Outcome::backend, "the backend's token does not decode");
        return std::nullopt;
    }
    return Grant{*token, signed_object_from_b64(tok.body.value("operator_certificate", json())),
                 tok.body.value("bundle", json())};
}

}  // namespace

FlowResult Provisioner::provision(const Target& t, const ProvisionOptions& options) {
    if (options.mode == Mode::field) return provision_field(t, options);
    if (options.offline) return fail(Outcome::usage, "only field mode works offline (sealed bundles come from the backend)");
    constexpr int kSteps = 5;
    auto step = [&](int n, const std::string& what) {
        if (progress_) progress_(n, kSteps, what);
    };
    Workspace::Operation op{attempt_id(), now(), "provision", t.device.to_string(), "started", "", "", "", 0};
    if (auto st = ws_.record(op); !st) return fail(Outcome::storage, st.error().message);
    auto failed = [&](FlowResult r) {
        op.state = "failed";
        op.detail = r.message;
        op.finished_at = now();
        (void)ws_.record(op);
        return r;
    };
    FlowResult why;

    step(1, "authorisation token and sealed bundle from the backend");
    auto grant = online_grant(backend_, t.device, json{"deliver-sealed", "query"}, why, true);
    if (!grant) return failed(why);

    step(2, "pairing with the device at " + t.address);
    const auto connect_started = std::chrono::steady_clock::now();
    auto paired = pair(t, *grant, key_, why);
    if (!paired) return failed(why);

    // The bundle came with the token when the backend knew the device, sealed
    // to the box key it recorded; a device that shows another key, or one the
    // backend did not know, is vouched for now by the keys (and attestation)
    // it showed.
    BackendReply minted{true, 201, grant->bundle, {}};
    if (grant->bundle.is_object() && grant->bundle.value("box_key", "") == to_hex(paired->session->device_keys().box)) {
        step(3, "sealed credential bundle: came with the token");
    } else {
        step(3, "sealed credential bundle from the backend");
        minted = post("/v1/bundles", json{{"device", device_json(t.device, *paired->session)}});
        if (!minted.ok()) return failed(fail(Outcome::backend, "no bundle: " + minted.describe()));
    }
    auto bundle = signed_object_from_b64(minted.body["bundle"]);
    if (!bundle) return failed(fail(Outcome::backend, "the backend's bundle does not decode"));
    op.imsi = minted.body.value("imsi", "");
    op.object_id = minted.body.value("object_id", "");
    (void)ws_.record(op);

    step(4, "delivering the bundle to the device");
    auto resp = run_request(*paired, Request{Operation::deliver_sealed, *bundle}, why);
    if (!resp) return failed(why);
    if (!resp->ok || !resp->receipt) return failed(fail(Outcome::device_refused, "the device refused the bundle: " + resp->message));

    // The receipt is journalled before it is posted: a crash from here on
    // loses nothing (queue flush posts it).
    Workspace::PendingReceipt pending{op.object_id, op.id, t.device.to_string(),
                                      json{{"object_id", op.object_id}, {"receipt", b64(resp->receipt->encode())}}, now()};
    if (auto st = ws_.queue_receipt(pending); !st) return failed(fail(Outcome::storage, st.error().message));
    op.state = "delivered";
    (void)ws_.record(op);

    step(5, "posting the device's receipt to the backend");
    auto result = post_receipt(pending, op);
    result.details["attempt_id"] = op.id;
    result.details["device_id"] = t.device.to_string();
    // From the connection attempt to the backend's "active".
    result.details["elapsed_ms"] =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - connect_started).count();
    result.details["link"] = paired->link.stats();
    return result;
}

FlowResult Provisioner::provision_field(const Target& t, const ProvisionOptions& options) {
    constexpr int kSteps = 4;
    auto step = [&](int n, const std::string& what) {
        if (progress_) progress_(n, kSteps, what);
    };
    Workspace::Operation op{attempt_id(), now(), "provision-field", t.device.to_string(), "started", "", "", "", 0};
    if (auto st = ws_.record(op); !st) return fail(Outcome::storage, st.error().message);
    auto failed = [&](FlowResult r) {
        op.state = "failed";
        op.detail = r.message;
        op.finished_at = now();
        (void)ws_.record(op);
        return r;
    };
    FlowResult why;

    step(1, "field authorisation and token from the local pool");
    std::optional<Grant> grant;
    auto stored = ws_.field_token(t.device.to_string(), now());
    if (!stored) return failed(fail(Outcome::storage, stored.error().message));
    if (*stored) {
        auto token = signed_object_from_b64(json((*stored)->token));
        if (!token) return failed(fail(Outcome::storage, "the stored token for this device does not decode"));
        grant = Grant{*token, signed_object_from_b64(json((*stored)->operator_certificate)), json()};
    } else if (options.offline) {
        return failed(fail(Outcome::not_enrolled,
                           "no token for this device in the local pool: fetch one in advance with 'credprov pool fetch --device "
                           + t.device.to_string() + "'"));
    } else {
        grant = online_grant(backend_, t.device, json{"deliver-field", "query"}, why);
        if (!grant) return failed(why);
    }
    auto claimed = ws_.claim_authorisation(t.device.to_string(), now());
    if (!claimed) return failed(fail(Outcome::storage, claimed.error().message));
    if (!*claimed) {
        return failed(fail(Outcome::not_enrolled, "the local field pool holds no unused, unexpired authorisation: run 'credprov "
                                                  "pool fetch' while connected"));
    }
    const Workspace::FieldAuthorisation auth = **claimed;
    auto object = signed_object_from_b64(json(auth.authorisation));
    if (!object) return failed(fail(Outcome::storage, "the stored field authorisation does not decode"));
    op.imsi = auth.imsi;
    op.object_id = auth.id;
    (void)ws_.record(op);

    step(2, "pairing with the device at " + t.address);
    auto paired = pair(t, *grant, key_, why, kModeSealed | kModeField);
    if (!paired) return failed(why);

    step(3, "delivering the field authorisation; the device generates its keys");
    auto resp = run_request(*paired, Request{Operation::deliver_field, *object}, why);
    if (!resp && why.outcome == Outcome::device_refused) {
        // The device answered with a refusal: it committed nothing, so the
        // authorisation is free again. After a link failure the claim stays:
        // the device may have committed, and a retry must deliver the same one.
        (void)ws_.set_authorisation_state(auth.id, "available");
        return failed(why);
    }
    if (!resp) return failed(why);
    if (!resp->ok || !resp->receipt) {
        // The device said no: it committed nothing, so the authorisation is free again.
        (void)ws_.set_authorisation_state(auth.id, "available");
        return failed(fail(Outcome::device_refused, "the device refused field mode: " + resp->message));
    }
    Workspace::PendingReceipt pending{
        auth.id, op.id, t.device.to_string(),
        json{{"object_id", auth.id}, {"receipt", b64(resp->receipt->encode())}, {"device", device_json(t.device, *paired->session)}},
        now()};
    if (auto st = ws_.queue_receipt(pending); !st) return failed(fail(Outcome::storage, st.error().message));
    (void)ws_.set_authorisation_state(auth.id, "delivered");
    op.state = "delivered";
    (void)ws_.record(op);

    if (options.offline) {
        op.state = "queued";
        op.detail = "receipt queued for sync";
        (void)ws_.record(op);
        FlowResult r = fail(Outcome::queued, "the device holds subscriber " + auth.imsi +
                                                 "; its receipt waits in the queue: run 'credprov queue flush' when connected");
        r.details = json{{"attempt_id", op.id}, {"device_id", t.device.to_string()}, {"imsi", auth.imsi}, {"mode", "field"}};
        return r;
    }
    step(4, "posting the device's receipt to the backend");
    auto result = post_receipt(pending, op);
    result.details["attempt_id"] = op.id;
    result.details["device_id"] = t.device.to_string();
    return result;
}

FlowResult Provisioner::query(const Target& t) {
    Workspace::Operation op{attempt_id(), now(), "query", t.device.to_string(), "started", "", "", "", 0};
    FlowResult why;
    std::optional<Grant> grant;
    if (auto stored = ws_.field_token(t.device.to_string(), now()); stored && *stored) {
        // A device in the field pool can be queried offline too.
        auto token = signed_object_from_b64(json((*stored)->token));
        if (token) grant = Grant{*token, signed_object_from_b64(json((*stored)->operator_certificate)), json()};
    }
    if (!grant) grant = online_grant(backend_, t.device, json{"query"}, why);
    if (!grant) return why;
    auto paired = pair(t, *grant, key_, why);
    if (!paired) return why;
    auto resp = run_request(*paired, Request{Operation::query, std::nullopt}, why);
    if (!resp) return why;
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
    json settings = json::object();
    if (i.settings.label) settings["label"] = *i.settings.label;
    if (i.settings.field_mode_allowed) settings["field_mode_allowed"] = *i.settings.field_mode_allowed;
    if (i.settings.advertise_when_provisioned) settings["advertise_when_provisioned"] = *i.settings.advertise_when_provisioned;
    if (i.settings.attach_check_interval_s) settings["attach_check_interval_s"] = *i.settings.attach_check_interval_s;
    d["settings"] = settings;
    op.state = "done";
    op.finished_at = now();
    (void)ws_.record(op);
    return FlowResult{Outcome::ok, i.provisioned ? "the device holds a credential" : "the device holds no credential", d};
}

FlowResult Provisioner::owner_command(const Target& t, const std::string& kind, const json& command_body, Operation operation) {
    constexpr int kSteps = 3;
    auto step = [&](int n, const std::string& what) {
        if (progress_) progress_(n, kSteps, what);
    };
    Workspace::Operation op{attempt_id(), now(), kind, t.device.to_string(), "started", "", "", "", 0};
    if (auto st = ws_.record(op); !st) return fail(Outcome::storage, st.error().message);
    auto failed = [&](FlowResult r) {
        op.state = "failed";
        op.detail = r.message;
        op.finished_at = now();
        (void)ws_.record(op);
        return r;
    };
    FlowResult why;
    step(1, "signed " + kind + " command and token from the backend");
    json body = command_body;
    body["request_id"] = op.id;  // a retried request gets the same command
    body["kind"] = kind;
    auto issued = post("/v1/devices/" + t.device.to_string() + "/commands", body);
    if (!issued.ok()) return failed(fail(refusal_outcome(issued), "no " + kind + " command: " + issued.describe()));
    auto command = signed_object_from_b64(issued.body["command"]);
    if (!command) return failed(fail(Outcome::backend, "the backend's command does not decode"));
    auto grant = online_grant(backend_, t.device, json{std::string(to_string(operation))}, why);
    if (!grant) return failed(why);
    step(2, "pairing with the device at " + t.address);
    auto paired = pair(t, *grant, key_, why);
    if (!paired) return failed(why);
    step(3, "running the " + kind + " command on the device");
    auto resp = run_request(*paired, Request{operation, *command}, why);
    if (!resp) return failed(why);
    if (!resp->ok) return failed(fail(Outcome::device_refused, "the device refused the " + kind + " command: " + resp->message));
    json d{{"device_id", t.device.to_string()}, {"counter", resp->counter.value_or(0)}};
    bool all_ok = true;
    if (operation == Operation::diagnose) {
        json list = json::array();
        for (const auto& r : resp->diagnostics) {
            list.push_back({{"name", std::string(to_string(r.id))}, {"ok", r.ok}, {"detail", r.detail}});
            all_ok = all_ok && r.ok;
        }
        d["diagnostics"] = list;
    }
    op.state = "done";
    op.detail = operation == Operation::diagnose ? (all_ok ? "all diagnostics passed" : "a diagnostic failed") : "applied";
    op.finished_at = now();
    (void)ws_.record(op);
    if (operation == Operation::diagnose) {
        FlowResult r{all_ok ? Outcome::ok : Outcome::device_refused,
                     all_ok ? "every diagnostic passed" : "the device reports a failed diagnostic", d};
        return r;
    }
    return FlowResult{Outcome::ok, "the device applied the new settings", d};
}

FlowResult Provisioner::diagnose(const Target& t, const std::vector<Diagnostic>& which) {
    json names = json::array();
    for (Diagnostic d : which) names.push_back(std::string(to_string(d)));
    return owner_command(t, "diagnose", json{{"diagnostics", names}}, Operation::diagnose);
}

FlowResult Provisioner::reconfigure(const Target& t, const DeviceSettings& s) {
    json settings = json::object();
    if (s.label) settings["label"] = *s.label;
    if (s.field_mode_allowed) settings["field_mode_allowed"] = *s.field_mode_allowed;
    if (s.advertise_when_provisioned) settings["advertise_when_provisioned"] = *s.advertise_when_provisioned;
    if (s.attach_check_interval_s) settings["attach_check_interval_s"] = *s.attach_check_interval_s;
    if (settings.empty()) return fail(Outcome::usage, "give at least one setting to change");
    return owner_command(t, "reconfigure", json{{"settings", settings}}, Operation::reconfigure);
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
    auto history = ws_.history(10000);
    std::vector<json> bodies;
    for (const auto& p : *pending) bodies.push_back(p.request);
    const auto replies = post_each("/v1/receipts", bodies);
    const std::size_t total = pending->size();
    std::size_t posted = 0, refused = 0, waiting = 0;
    for (std::size_t i = 0; i < total; ++i) {
        const auto& p = (*pending)[i];
        if (progress_) progress_(static_cast<int>(i + 1), static_cast<int>(total), "receipt for device " + p.device_id);
        // The journal's entry of the receipt's attempt, or a new one.
        Workspace::Operation op{p.attempt_id, p.queued_at, "provision", p.device_id, "queued", "", p.object_id, "", 0};
        if (history) {
            for (const auto& h : *history) {
                if (h.id == p.attempt_id) op = h;
            }
        }
        // A receipt the backend refused leaves the queue (retrying cannot
        // change the answer); its reason is in the history. One that found
        // no backend waits.
        const auto r = settle_receipt(p, op, replies[i]);
        if (r.outcome == Outcome::queued) {
            ++waiting;
        } else if (r.outcome == Outcome::ok) {
            ++posted;
        } else {
            ++refused;
        }
    }
    if (waiting > 0) {
        return FlowResult{Outcome::queued,
                          std::to_string(posted) + " receipt(s) posted; the backend is unreachable, " + std::to_string(waiting) +
                              " wait",
                          json{{"posted", posted}, {"refused", refused}, {"waiting", waiting}}};
    }
    if (refused > 0) {
        return FlowResult{Outcome::backend,
                          std::to_string(posted) + " receipt(s) posted, " + std::to_string(refused) +
                              " refused by the backend (see 'credprov history')",
                          json{{"posted", posted}, {"refused", refused}, {"waiting", 0}}};
    }
    return FlowResult{Outcome::ok, std::to_string(posted) + " receipt(s) posted", json{{"posted", posted}, {"refused", 0}, {"waiting", 0}}};
}

FlowResult Provisioner::fetch_pool(std::int64_t count, const std::vector<DeviceId>& devices) {
    if (count < 0 || count > 10000) return fail(Outcome::usage, "--count must be between 0 and 10000");
    if (count == 0 && devices.empty()) return fail(Outcome::usage, "give --count, or devices to fetch tokens for, or both");
    const int steps = (count > 0 ? 1 : 0) + static_cast<int>(devices.size());
    int done = 0;
    std::int64_t reserved = 0;
    std::int64_t latest = 0;  // when the pool's authorisations expire: the tokens need not outlive them
    if (count > 0) {
        auto request_id = ws_.open_pool_request(attempt_id(), now());
        if (!request_id) return fail(Outcome::storage, request_id.error().message);
        if (progress_) progress_(++done, steps, "reserving " + std::to_string(count) + " field authorisation(s)");
        auto r = post("/v1/field-pools", json{{"request_id", *request_id}, {"count", count}});
        if (!r.ok()) return fail(refusal_outcome(r), "no field pool: " + r.describe());
        const std::string pool_id = r.body.value("pool_id", "");
        std::vector<Workspace::FieldAuthorisation> list;
        for (const auto& a : r.body.value("authorisations", json::array())) {
            if (!a.is_object() || a.value("state", "") != "reserved") continue;
            Workspace::FieldAuthorisation fa{a.value("id", ""), pool_id, a.value("imsi", ""), a.value("not_after", std::int64_t{0}),
                                             a.value("authorisation", ""), "available", ""};
            if (fa.id.empty() || !signed_object_from_b64(json(fa.authorisation))) {
                return fail(Outcome::backend, "the backend's field pool does not decode");
            }
            latest = std::max(latest, fa.not_after);
            list.push_back(std::move(fa));
        }
        if (auto st = ws_.store_pool(list); !st) return fail(Outcome::storage, st.error().message);
        if (auto st = ws_.close_pool_request(*request_id, pool_id); !st) return fail(Outcome::storage, st.error().message);
        reserved = static_cast<std::int64_t>(list.size());
    }
    if (latest == 0) {
        auto existing = ws_.field_authorisations();
        if (!existing) return fail(Outcome::storage, existing.error().message);
        for (const auto& a : *existing) {
            if (a.state == "available") latest = std::max(latest, a.not_after);
        }
    }
    const std::int64_t ttl = latest - now();
    if (!devices.empty() && ttl < 60) {
        return fail(Outcome::usage, "the local pool has no unexpired authorisation to go with device tokens: add --count");
    }
    int tokens = 0;
    std::vector<json> asks;
    for (const auto& d : devices) {
        asks.push_back(json{{"device_id", d.to_string()}, {"operations", {"deliver-field", "query"}}, {"ttl_s", ttl}});
    }
    if (progress_ && !devices.empty()) {
        progress_(done, steps, "asking for " + std::to_string(devices.size()) + " device token(s)");
    }
    const auto replies = post_each("/v1/tokens", asks);
    for (std::size_t i = 0; i < devices.size(); ++i) {
        const DeviceId& d = devices[i];
        const BackendReply& r = replies[i];
        if (progress_) progress_(++done, steps, "token for device " + d.to_string());
        if (!r.ok()) {
            return fail(refusal_outcome(r), "no field token for device " + d.to_string() + " (" + std::to_string(tokens) +
                                                " fetched before it): " + r.describe());
        }
        Workspace::FieldToken t{d.to_string(), r.body.value("token", ""),
                                r.body["operator_certificate"].is_string() ? r.body["operator_certificate"].get<std::string>() : "",
                                r.body.value("not_after", std::int64_t{0})};
        if (!signed_object_from_b64(json(t.token))) return fail(Outcome::backend, "the backend's token does not decode");
        if (auto st = ws_.store_field_token(t); !st) return fail(Outcome::storage, st.error().message);
        ++tokens;
    }
    auto summary = pool_status(ws_);
    summary.message = std::to_string(reserved) + " authorisation(s) reserved, " + std::to_string(tokens) +
                      " device token(s) fetched; " + summary.message;
    return summary;
}

FlowResult Provisioner::return_pool() {
    auto all = ws_.field_authorisations();
    if (!all) return fail(Outcome::storage, all.error().message);
    std::map<std::string, std::vector<std::string>> by_pool;
    for (const auto& a : *all) {
        if (a.state == "available") by_pool[a.pool_id].push_back(a.id);
    }
    std::int64_t returned = 0;
    for (const auto& [pool, ids] : by_pool) {
        auto r = post("/v1/field-pools/" + pool + "/return", json{{"ids", ids}});
        if (!r.ok()) {
            return fail(refusal_outcome(r), std::to_string(returned) + " authorisation(s) returned, then: " + r.describe());
        }
        for (const auto& id : ids) (void)ws_.set_authorisation_state(id, "returned");
        returned += static_cast<std::int64_t>(ids.size());
    }
    return FlowResult{Outcome::ok, std::to_string(returned) + " unused authorisation(s) returned to the backend",
                      json{{"returned", returned}}};
}

Result<std::string> read_nfc_label(const std::string& address) {
#ifdef CREDPROV_HAVE_NFC
    auto connstring = transport::nfc::parse_nfc_address(address);
    if (!connstring) return connstring.error();
    auto text = transport::nfc::read_label(*connstring, std::chrono::seconds(10));
    // Only the address is the caller's bad input (malformed); whatever the
    // tag holds is a failed read.
    if (!text)
        return make_error(text.error().code == ErrorCode::malformed ? ErrorCode::io : text.error().code,
                          "reading the NFC label: " + text.error().message);
    return text;
#else
    (void)address;
    return make_error(ErrorCode::malformed, "this build has no NFC support (configure with -DCREDPROV_WITH_NFC=ON)");
#endif
}

FlowResult pool_status(const Workspace& ws) {
    auto all = ws.field_authorisations();
    if (!all) return fail(Outcome::storage, all.error().message);
    auto tokens = ws.field_tokens();
    if (!tokens) return fail(Outcome::storage, tokens.error().message);
    const std::int64_t t = now();
    std::map<std::string, std::int64_t> counts{{"available", 0}, {"claimed", 0}, {"delivered", 0}, {"synced", 0},
                                               {"returned", 0},  {"refused", 0}, {"expired", 0}};
    json items = json::array();
    for (const auto& a : *all) {
        const std::string state = a.state == "available" && a.not_after <= t ? "expired" : a.state;
        ++counts[state];
        items.push_back({{"id", a.id}, {"pool_id", a.pool_id}, {"imsi", a.imsi}, {"state", state}, {"not_after", a.not_after},
                         {"device_id", a.device_id}});
    }
    json token_items = json::array();
    std::int64_t usable_tokens = 0;
    for (const auto& tk : *tokens) {
        token_items.push_back({{"device_id", tk.device_id}, {"not_after", tk.not_after}, {"expired", tk.not_after <= t}});
        if (tk.not_after > t) ++usable_tokens;
    }
    json d{{"counts", counts}, {"authorisations", items}, {"tokens", token_items}};
    return FlowResult{Outcome::ok,
                      std::to_string(counts["available"]) + " authorisation(s) available, " + std::to_string(counts["delivered"]) +
                          " waiting to sync, " + std::to_string(usable_tokens) + " device token(s) usable",
                      d};
}

FlowResult enroll(Workspace& ws, const std::string& backend_url, const std::string& ca_file, const std::string& enrolment_token,
                  const std::string& name) {
    if (auto st = BackendClient::check_url(backend_url); !st) return fail(Outcome::usage, st.error().message);
    // Saved as an absolute path: later commands run from other folders.
    std::error_code ec;
    const std::string ca = ca_file.empty() ? std::string() : std::filesystem::absolute(ca_file, ec).string();
    if (ec) return fail(Outcome::usage, "--ca " + ca_file + ": " + ec.message());
    auto key = ws.load_or_create_key();
    if (!key) return fail(Outcome::storage, key.error().message);
    BackendClient backend(backend_url, ca, nullptr);
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
    s.ca_file = ca;
    s.provisioner_id = r.body.value("id", "");
    s.name = r.body.value("name", "");
    if (op.ok() && op.body.contains("certificate") && op.body["certificate"].is_string()) {
        s.operator_certificate = op.body["certificate"].get<std::string>();
    }
    if (auto st = ws.save(s); !st) return fail(Outcome::storage, st.error().message);
    return FlowResult{Outcome::ok, "enrolled as provisioner " + s.provisioner_id + " (" + s.name + ")", r.body};
}

}  // namespace credprov::provisioner
