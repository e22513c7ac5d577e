// The backend's operations, independent of HTTP: identities and roles,
// provisioner enrolment, authorisation tokens, two-phase registration
// (sealed bundles and field pools), receipts, network-only deprovisioning,
// AKA vectors and the attach check, and the audit log.
//
// Every state change runs in one database transaction together with its
// audit entry; a failed request writes nothing but, for rejections of an
// identified caller, an audit entry of its own. Every step is idempotent by
// its id, so a client may retry after a lost response. Replies never carry
// K or OPc (a sealed bundle carries them encrypted to the device), and no
// message or log line carries a secret.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "credprov/backend/audit.hpp"
#include "credprov/backend/config.hpp"
#include "credprov/backend/core_connector.hpp"
#include "credprov/backend/database.hpp"
#include "credprov/backend/keys.hpp"
#include "credprov/backend/metrics.hpp"
#include "credprov/backend/request_auth.hpp"
#include "credprov/backend/verified_signatures.hpp"
#include "credprov/protocol/identifiers.hpp"

namespace credprov::backend {

using json = nlohmann::json;

enum class Role : std::uint8_t { admin, auditor, provisioner_manager, core_network };
[[nodiscard]] std::string_view to_string(Role r) noexcept;
[[nodiscard]] std::optional<Role> parse_role(std::string_view s) noexcept;

struct Provisioner {
    std::string id;
    std::string name;
    crypto::SignPublicKey key{};
    std::vector<Operation> operations;
    Bytes device_prefix;  // empty: any device
    bool revoked{false};
};

// Who is asking. Admin-token callers carry a role; provisioners are
// authenticated by request signature; devices on the network path are
// anonymous (AKA itself authenticates them); the command line is local.
struct Caller {
    enum class Kind : std::uint8_t { anonymous, admin, provisioner, local };
    Kind kind{Kind::anonymous};
    std::string id;
    Role role{Role::admin};
    std::optional<Provisioner> provisioner;
    std::string remote{"local"};
    [[nodiscard]] std::string actor() const;
};

// An HTTP-shaped answer: a JSON body, or an RFC 9457 problem when status >= 400.
struct Reply {
    int status{200};
    json body;
    std::uint64_t retry_after_s{0};
    [[nodiscard]] bool ok() const noexcept { return status < 400; }
    [[nodiscard]] static Reply success(json body, int status = 200);
    [[nodiscard]] static Reply problem(int status, std::string_view slug, std::string_view title, std::string detail);
};

struct OperatorKeyring {
    OperatorIdentity current;
    std::vector<OperatorIdentity> retired;  // still sign notices for devices they own
    [[nodiscard]] const OperatorIdentity* find(const crypto::SignPublicKey& key) const;
};

struct SubscriberQuery {
    std::string state, device, provisioner;
    std::int64_t since{0}, until{0};
    std::int64_t limit{50};
    std::string cursor;  // the last IMSI of the previous page
};

class Service {
public:
    Service(BackendConfig config, Database& db, OperatorKeyring keys, DataKey data_key, Metrics& metrics,
            std::function<std::uint64_t()> clock = {});

    // Records this node's operator key and data key id in the database if
    // none are recorded, and refuses (ErrorCode::not_owner, with what to do)
    // when the database records others: a node started with keys that do not
    // belong to the deployment. A recorded operator key among this node's
    // retired keys means `operator rotate` ran here: the record moves on.
    [[nodiscard]] Status claim_deployment_keys();

    // Derives every new subscriber's OPc from its K and this OP
    // ([subscribers] op_file, read by load_op_file); without it OPc is random.
    void use_op(Secret<16> op) { op_ = std::move(op); }

    // ---- identities -----------------------------------------------------------
    [[nodiscard]] Result<Caller> authenticate_admin(std::string_view bearer, const std::string& remote);
    // Verifies the signature, the clock window and that the key is enrolled and not revoked.
    [[nodiscard]] Result<Caller> authenticate_provisioner(std::string_view header, std::string_view method,
                                                          std::string_view target, std::string_view body,
                                                          const std::string& remote);
    // Records a rejected authentication (audit and metrics).
    void record_auth_failure(std::string_view kind, const std::string& remote, std::string_view detail);

    [[nodiscard]] Reply create_admin_token(const Caller& c, const json& body);
    [[nodiscard]] Reply list_admin_tokens(const Caller& c);
    [[nodiscard]] Reply revoke_admin_token(const Caller& c, const std::string& id);

    [[nodiscard]] Reply enrol_provisioner(const Caller& c, const json& body);
    [[nodiscard]] Reply list_provisioners(const Caller& c);
    [[nodiscard]] Reply get_provisioner(const Caller& c, const std::string& id);
    [[nodiscard]] Reply revoke_provisioner(const Caller& c, const std::string& id, const json& body);

    // One-time enrolment tokens: issued by an admin for a technician, spent
    // by the technician's tool to register its own key (proving possession).
    [[nodiscard]] Reply create_enrolment_token(const Caller& c, const json& body);
    [[nodiscard]] Reply enrol_with_token(const Caller& c, const json& body);

    [[nodiscard]] Reply add_manufacturer(const Caller& c, const json& body);
    [[nodiscard]] Reply list_manufacturers(const Caller& c);
    [[nodiscard]] Reply import_inventory(const Caller& c, const json& body);

    // ---- subscribers ----------------------------------------------------------
    [[nodiscard]] Reply list_subscribers(const Caller& c, const SubscriberQuery& q);
    [[nodiscard]] Reply get_subscriber(const Caller& c, const std::string& imsi);
    [[nodiscard]] Reply get_device(const Caller& c, const std::string& device_id);
    [[nodiscard]] Reply deprovision_device(const Caller& c, const std::string& device_id, const json& body);
    [[nodiscard]] Reply device_notice(const Caller& c, const std::string& device_id);
    // An owner-signed reconfigure or diagnose command with the device's next
    // counter, for a provisioner to deliver over the device link.
    [[nodiscard]] Reply issue_owner_command(const Caller& c, const std::string& device_id, const json& body);

    // ---- provisioners ---------------------------------------------------------
    [[nodiscard]] Reply issue_token(const Caller& c, const json& body);
    [[nodiscard]] Reply mint_bundle(const Caller& c, const json& body);
    [[nodiscard]] Reply submit_receipt(const Caller& c, const json& body);
    [[nodiscard]] Reply reserve_field_pool(const Caller& c, const json& body);
    [[nodiscard]] Reply return_field_pool(const Caller& c, const std::string& pool_id, const json& body);

    // ---- AKA ------------------------------------------------------------------
    [[nodiscard]] Reply vectors(const Caller& c, const std::string& imsi, const json& body);
    // Vectors for up to kMaxVectorBatch subscribers in one call and one
    // transaction (a Diameter/GSUP gateway batching its serving nodes' asks);
    // each entry answers on its own (vectors, or a problem).
    static constexpr std::size_t kMaxVectorBatch = 64;
    [[nodiscard]] Reply vectors_batch(const Caller& c, const json& body);
    [[nodiscard]] Reply resync(const Caller& c, const std::string& imsi, const json& body);
    [[nodiscard]] Reply attach_challenge(const Caller& c, const json& body);
    [[nodiscard]] Reply attach_response(const Caller& c, const json& body);

    // ---- audit, status --------------------------------------------------------
    [[nodiscard]] Reply audit_list(const Caller& c, std::int64_t after, std::int64_t limit);
    [[nodiscard]] Reply audit_verify(const Caller& c);
    [[nodiscard]] Reply operator_info() const;
    [[nodiscard]] Reply health();
    [[nodiscard]] std::vector<Metrics::Gauge> gauges();

    // Expires pending subscribers, field authorisations and attach challenges
    // past their time. Returns how many subscribers expired.
    [[nodiscard]] Result<std::int64_t> sweep();

    // ---- core network (decision 0011) -------------------------------------------
    // Delivers due rows of the core outbox through `core`: claims up to
    // `max_rows` with a lease in the name of `node`, oldest first and only
    // the oldest pending row of each IMSI, decrypts keys at delivery time,
    // marks rows done or schedules a retry with capped exponential back-off.
    struct CoreDelivery {
        std::int64_t delivered{0}, superseded{0}, failed{0};
        std::string last_error;  // of the last failure; never a key
    };
    [[nodiscard]] Result<CoreDelivery> deliver_core_outbox(CoreConnector& core, const std::string& node,
                                                           std::size_t max_rows = 32);
    // Outbox depth, failing rows, oldest pending age.
    [[nodiscard]] Result<json> core_status();
    // Compares active subscribers with the core's view; with `repair`,
    // queues the fixes in the outbox (re-checked in one transaction) and
    // delivers them before returning. Keys are compared, never shown.
    [[nodiscard]] Result<json> core_reconcile(const Caller& c, CoreConnector& core, bool repair, const std::string& node);

    [[nodiscard]] std::uint64_t now() const { return clock_(); }
    [[nodiscard]] const BackendConfig& config() const noexcept { return config_; }

private:
    Reply reject(const Caller& c, std::string_view action, const std::string& target, int status,
                 std::string_view slug, std::string_view title, std::string detail);
    Status audit(Connection& conn, const Caller& c, std::string_view action, const std::string& target,
                 std::string_view outcome, const std::string& detail = {});
    AuditEntry audit_entry(const Caller& c, std::string_view action, const std::string& target, std::string_view outcome,
                           const std::string& detail = {});
    Reply storage_failure(const Error& e);
    Result<std::string> allocate_imsi(Connection& conn);
    // Queues a change for the core connector in the caller's transaction;
    // does nothing when no [core] is configured. op: "upsert" or "remove".
    Status enqueue_core(Connection& conn, const std::string& imsi, std::string_view op, std::string_view reason);
    Result<json> core_drift(CoreConnector& core);
    void core_gauges(std::vector<Metrics::Gauge>& out);
    Result<SubscriberKeys> new_subscriber_keys() const;
    struct VectorAsk;
    struct VectorGrant;
    Result<std::vector<VectorGrant>> grant_vectors(const Caller& c, const std::vector<VectorAsk>& asks);
    struct Vouched;
    struct ClaimedDevice;
    Result<ClaimedDevice> claim_device(const json& device) const;
    // The device's box key signed by its identity key: verified once per
    // process and triple, then answered from verified_box_keys_.
    [[nodiscard]] bool box_key_signed(const crypto::SignPublicKey& identity, const crypto::BoxPublicKey& box,
                                      const crypto::Signature& signature) const;
    Result<std::optional<Vouched>> recorded_device(Connection& conn, const DeviceId& id);
    Result<Vouched> vouch_device(Connection& conn, const Caller& c, const ClaimedDevice& claim, std::string& refusal);
    struct Minted;
    // X25519 of the operator's box key with a device's, computed before the
    // write transaction, outside the serial commit; mint_in uses it when the
    // device's recorded box key is the one it was computed for.
    struct SealAhead;
    Status mint_in(Connection& conn, const Caller& c, const Vouched& v, const SubscriberKeys& keys, Minted& out,
                   const SealAhead* ahead);
    std::optional<Reply> mint_refused(const Caller& c, const std::string& target, const std::string& refusal,
                                      const Minted& minted);
    Result<Vouched> vouch_device(Connection& conn, const Caller& c, const json& device, std::string& refusal);

    BackendConfig config_;
    Database& db_;
    OperatorKeyring keys_;
    DataKey data_key_;
    Metrics& metrics_;
    std::function<std::uint64_t()> clock_;
    std::optional<Secret<16>> op_;  // operator variant OP, when OPc is derived from it
    mutable VerifiedSignatures verified_box_keys_;
};

// Reads the 16-byte OP from a 0600 file holding 32 hex digits.
[[nodiscard]] Result<Secret<16>> load_op_file(const std::filesystem::path& path);

}  // namespace credprov::backend
