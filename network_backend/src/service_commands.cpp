// Service: owner commands for delivery over a device link (reconfigure and
// diagnose). The backend holds the owner key, so a provisioner asks it for a
// signed command bound to the device and its next owner counter, then carries
// the command to the device inside a paired session.
#include "credprov/backend/service.hpp"
#include "request_fields.hpp"
#include "service_internal.hpp"

namespace credprov::backend {

using namespace detail;

namespace {

// Reads {"kind": "reconfigure", "settings": {...}} or {"kind": "diagnose",
// "diagnostics": [...]} into the command's kind and payload.
struct CommandRequest {
    OwnerCommandKind kind{OwnerCommandKind::reconfigure};
    Bytes payload;
};

std::optional<CommandRequest> read_command(Fields& f, const json& body, std::string& error) {
    auto kind = f.text("kind", 1, 16);
    if (!kind) return std::nullopt;
    CommandRequest r;
    if (*kind == "reconfigure") {
        r.kind = OwnerCommandKind::reconfigure;
        const json* s = f.get("settings", true);
        if (s == nullptr) return std::nullopt;
        Fields sf(*s);
        DeviceSettings settings;
        settings.label = sf.text("label", 1, 32, false);
        settings.field_mode_allowed = sf.boolean("field_mode_allowed", false);
        settings.advertise_when_provisioned = sf.boolean("advertise_when_provisioned", false);
        auto interval = sf.integer("attach_check_interval_s", 10, 7 * 24 * 3600, false);
        if (interval) settings.attach_check_interval_s = static_cast<std::uint64_t>(*interval);
        if (!sf.done()) {
            error = "field 'settings': " + sf.error();
            return std::nullopt;
        }
        if (settings == DeviceSettings{}) {
            error = "field 'settings' must change at least one setting";
            return std::nullopt;
        }
        r.payload = settings.encode();
        // The device reads the label as printable text; check it the same way here.
        if (!DeviceSettings::decode(r.payload)) {
            error = "field 'settings': 'label' must be printable text";
            return std::nullopt;
        }
        (void)body;
        return r;
    }
    if (*kind == "diagnose") {
        r.kind = OwnerCommandKind::diagnose;
        const json* d = f.get("diagnostics", true);
        if (d == nullptr) return std::nullopt;
        if (!d->is_array() || d->empty() || d->size() > kMaxDiagnostic) {
            error = "field 'diagnostics' must be a non-empty list of diagnostic names";
            return std::nullopt;
        }
        std::vector<Diagnostic> list;
        for (const auto& item : *d) {
            auto one = item.is_string() ? diagnostic_from_string(item.get_ref<const std::string&>()) : std::nullopt;
            if (!one) {
                error = "field 'diagnostics' lists an unknown diagnostic (known: self-test, store-check, aka-self-check, "
                        "transport-info)";
                return std::nullopt;
            }
            if (std::find(list.begin(), list.end(), *one) == list.end()) list.push_back(*one);
        }
        r.payload = encode_diagnostics(list);
        return r;
    }
    error = "field 'kind' must be reconfigure or diagnose";
    return std::nullopt;
}

}  // namespace

Reply Service::issue_owner_command(const Caller& c, const std::string& raw_id, const json& body) {
    auto id = DeviceId::parse(raw_id);
    if (!id) return bad_request("the device id must be 26 base32 characters");
    const std::string device_id = id->to_string();
    Fields f(body);
    auto request_id = f.text("request_id", 1, 64);
    std::string error;
    auto request = read_command(f, body, error);
    if (!f.done()) return bad_request(f.error());
    if (!request) return bad_request(error);
    const std::string kind(request->kind == OwnerCommandKind::reconfigure ? "reconfigure" : "diagnose");
    if (c.kind == Caller::Kind::provisioner) {
        const Provisioner& p = *c.provisioner;
        if (!enrolled_for(p, operation_of(request->kind)) || !fits_prefix(p, *id)) {
            return reject(c, "device.command", "device:" + device_id, 403, "not-authorised", "Forbidden",
                          "the provisioner is not enrolled to " + kind + " this device");
        }
    }
    json result;
    int status = 201;
    bool found = false;
    std::string conflict;
    auto st = db_.transact([&](Connection& conn) -> Status {
        auto dev = conn.query("SELECT owner_counter, owner_key, notice FROM devices WHERE device_id = ?" +
                                  std::string(conn.for_update()),
                              {device_id});
        if (!dev) return dev.error();
        if (dev->empty()) return {};
        found = true;
        auto again = conn.query("SELECT kind, counter, signed_object FROM owner_commands WHERE device_id = ? AND request_id = ?",
                                {device_id, *request_id});
        if (!again) return again.error();
        if (!again->empty()) {
            const Row& r = again->front();
            if (r.str(0) != kind) {
                conflict = "this request_id was already used for a " + r.str(0) + " command";
                return {};
            }
            status = 200;
            result = {{"device_id", device_id}, {"kind", kind}, {"counter", r.i64(1)}, {"command", r.str(2)}};
            return {};
        }
        const Row& d = dev->front();
        auto live = conn.query("SELECT imsi FROM subscribers WHERE device_id = ? AND state = 'active'", {device_id});
        if (!live) return live.error();
        if (live->empty()) {
            // Without an active subscription the device has no owner from this
            // backend yet, or it is deprovisioned and has still to apply its
            // notice: a newer counter delivered first would make the device
            // refuse that notice as a replay.
            conflict = d.is_null(2) ? "the device holds no active subscription from this operator"
                                    : "the device is deprovisioned; it must apply its deprovisioning notice first";
            return {};
        }
        crypto::SignPublicKey owner = keys_.current.sign.public_key;
        if (!d.is_null(1)) (void)key_from_hex(d.str(1), owner);
        const OperatorIdentity* signer = keys_.find(owner);
        if (signer == nullptr) return make_error(ErrorCode::internal, "the device's owner key is not in the keyring");
        const auto t = static_cast<std::int64_t>(now());
        OwnerCommand cmd;
        cmd.kind = request->kind;
        cmd.device = *id;
        cmd.counter = static_cast<std::uint64_t>(d.i64(0)) + 1;
        cmd.issued_at = static_cast<std::uint64_t>(t);
        cmd.payload = request->payload;
        const std::string signed_command = base64_encode(sign_owner_command(signer->sign, cmd).encode());
        const auto counter = static_cast<std::int64_t>(cmd.counter);
        auto ins = conn.exec("INSERT INTO owner_commands (device_id, request_id, kind, counter, issued_by, signed_object, "
                             "created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             {device_id, *request_id, kind, counter, c.actor(), signed_command, t});
        if (!ins) return ins.error();
        auto upd = conn.exec("UPDATE devices SET owner_counter = ? WHERE device_id = ?", {counter, device_id});
        if (!upd) return upd.error();
        if (auto au = audit(conn, c, "device.command", "device:" + device_id, "ok", kind + " counter " + std::to_string(counter));
            !au) {
            return au;
        }
        result = {{"device_id", device_id}, {"kind", kind}, {"counter", counter}, {"command", signed_command}};
        return {};
    });
    if (!st) return storage_failure(st.error());
    if (!found) return not_found("device");
    if (!conflict.empty()) return reject(c, "device.command", "device:" + device_id, 409, "conflict", "Conflict", conflict);
    return Reply::success(result, status);
}

}  // namespace credprov::backend
