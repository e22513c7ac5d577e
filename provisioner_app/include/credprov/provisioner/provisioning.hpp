// The provisioner role end to end: pairs with a device over a transport,
// gets the authorisation and the sealed bundle from the backend, delivers,
// and posts the device's receipt so the backend activates the subscriber.
//
// Resumable and idempotent: every attempt has an id in the journal; the
// backend returns the same pending bundle for the same device, the device
// returns its stored receipt for the same bundle, and a receipt that could
// not be posted waits in the journal's queue (flush_queue) — so a retry after
// a dropped link, a crash or an unreachable backend converges to one active
// subscriber both sides agree on. Field mode works the same from a pool
// fetched in advance: the authorisation is claimed for the device before
// anything is sent, so a retry delivers the same one. No Qt, no printing: progress goes to a
// callback. Never logs or returns key material.
#pragma once

#include <functional>
#include <string>

#include <nlohmann/json.hpp>

#include "credprov/protocol/identifiers.hpp"
#include "credprov/protocol/signed_objects.hpp"
#include "credprov/provisioner/backend_client.hpp"
#include "credprov/provisioner/workspace.hpp"

namespace credprov::provisioner {

// Failure classes; the CLI's exit codes.
enum class Outcome : int {
    ok = 0,
    usage = 1,          // bad arguments
    not_enrolled = 2,   // no key or settings, or the backend refuses this provisioner
    backend = 3,        // the backend is unreachable or refused a step
    link = 4,           // the device is unreachable, the link dropped, or pairing failed
    device_refused = 5, // the device refused the operation
    queued = 6,         // provisioned, but the receipt waits in the queue for the backend
    storage = 7,        // the local journal or key failed
};

struct FlowResult {
    Outcome outcome{Outcome::ok};
    std::string message;  // one plain sentence
    nlohmann::json details = nlohmann::json::object();
};

struct Target {
    DeviceId device;
    std::string code;     // setup code digits (kept only for the session)
    std::string address;  // tcp://host:port or unix:/path
};

enum class Mode : std::uint8_t {
    sealed,  // the backend mints a bundle sealed to the device (online)
    field,   // an authorisation from the local pool; the device makes its own keys
};

struct ProvisionOptions {
    Mode mode{Mode::sealed};
    // Field mode only: do not try the backend at all; the receipt waits in
    // the queue for 'queue flush' (the sync).
    bool offline{false};
};

// (step, of, what)
using Progress = std::function<void(int, int, const std::string&)>;

class Provisioner {
public:
    Provisioner(Workspace& ws, Settings settings, const crypto::SigningKey& key, Progress progress = {});

    [[nodiscard]] FlowResult provision(const Target& t, const ProvisionOptions& options = {});
    [[nodiscard]] FlowResult query(const Target& t);
    // Owner commands over the device link: the backend signs them, the
    // device checks the operator's signature and counter.
    [[nodiscard]] FlowResult diagnose(const Target& t, const std::vector<Diagnostic>& which);
    [[nodiscard]] FlowResult reconfigure(const Target& t, const DeviceSettings& settings);
    [[nodiscard]] FlowResult deprovision(const DeviceId& device, const std::string& reason);
    // Posts every queued receipt; stops counting at the first unreachable answer.
    [[nodiscard]] FlowResult flush_queue();

    // Field pool: reserve `count` authorisations and fetch, for each listed
    // device, a token for deliver-field and query that lasts as long as they
    // do, so the devices can be provisioned without connectivity.
    [[nodiscard]] FlowResult fetch_pool(std::int64_t count, const std::vector<DeviceId>& devices);
    // Hands every unused authorisation back to the backend.
    [[nodiscard]] FlowResult return_pool();

private:
    BackendReply post(const std::string& path, const nlohmann::json& body);
    // The same POST for each body, 64 to a POST /v1/batch (decision 0014), or
    // one at a time when the backend refuses the batch itself with a 4xx (an
    // older backend's 404); a reply per body, in order.
    // A batch that got no answer, or a request that found no backend one at
    // a time, gives its reply to every body not yet answered.
    std::vector<BackendReply> post_each(const std::string& path, const std::vector<nlohmann::json>& bodies);
    FlowResult post_receipt(const Workspace::PendingReceipt& pending, Workspace::Operation& op);
    // What the backend's reply to a receipt means for the queue and journal.
    FlowResult settle_receipt(const Workspace::PendingReceipt& pending, Workspace::Operation& op, const BackendReply& r);
    FlowResult provision_field(const Target& t, const ProvisionOptions& options);
    // Runs one owner command (reconfigure or diagnose) end to end.
    FlowResult owner_command(const Target& t, const std::string& kind, const nlohmann::json& command_body, Operation op);

    Workspace& ws_;
    Settings settings_;
    const crypto::SigningKey& key_;
    Progress progress_;
    BackendClient backend_;
};

// What the local field pool holds (no backend needed).
[[nodiscard]] FlowResult pool_status(const Workspace& ws);

// A label's payload (CP1:...) read from the NFC sticker (a Type 4 tag) held
// to the reader of `address` (nfc:[<libnfc connstring>]); waits 10 s for it.
// The caller wipes the text after parsing it: it holds the setup code.
[[nodiscard]] Result<std::string> read_nfc_label(const std::string& address);

// Enrols this provisioner's key with an admin-issued enrolment token and
// saves the settings. Idempotent for the same key and token.
[[nodiscard]] FlowResult enroll(Workspace& ws, const std::string& backend_url, const std::string& ca_file,
                                const std::string& enrolment_token, const std::string& name);

}  // namespace credprov::provisioner
