// The provisioner's local state, in one folder (default
// $XDG_CONFIG_HOME/credprov, else ~/.config/credprov; CREDPROV_HOME or
// --home overrides):
//   provisioner.key   the provisioner's Ed25519 key (0600, common/key_file.hpp)
//   settings.json     backend URL, CA file, provisioner id and name
//   journal.db        SQLite: every operation and its outcome (history), the
//                     receipts waiting to be posted (queue), and the field
//                     pool: authorisations and device tokens fetched in
//                     advance for offline field-mode work
// Nothing here is written outside that folder; the key never leaves it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "credprov/protocol/crypto.hpp"
#include "credprov/protocol/result.hpp"

struct sqlite3;

namespace credprov::provisioner {

struct Settings {
    std::string backend;       // base URL
    std::string ca_file;       // PEM, optional
    std::string provisioner_id;
    std::string name;
    std::string operator_certificate;  // base64, cached from GET /v1/operator
};

[[nodiscard]] std::filesystem::path default_home();

class Workspace {
public:
    [[nodiscard]] static Result<Workspace> open(const std::filesystem::path& home);
    ~Workspace();
    Workspace(Workspace&& o) noexcept;
    Workspace& operator=(Workspace&&) = delete;
    Workspace(const Workspace&) = delete;

    [[nodiscard]] const std::filesystem::path& home() const noexcept { return home_; }
    [[nodiscard]] bool has_key() const;
    // Creates the key on first use; never replaces one.
    [[nodiscard]] Result<crypto::SigningKey> load_or_create_key();
    [[nodiscard]] Result<crypto::SigningKey> load_key() const;

    [[nodiscard]] Result<Settings> settings() const;  // empty Settings if none yet
    [[nodiscard]] Status save(const Settings& s);

    // ---- journal ---------------------------------------------------------------
    struct Operation {
        std::string id;  // attempt id
        std::int64_t started_at{0};
        std::string kind;  // provision, deprovision, query, ...
        std::string device_id;
        std::string state;  // started, delivered, active, queued, failed, done
        std::string imsi;
        std::string object_id;
        std::string detail;
        std::int64_t finished_at{0};
    };
    [[nodiscard]] Status record(const Operation& op);  // insert or replace by id
    [[nodiscard]] Result<std::vector<Operation>> history(std::size_t limit) const;

    struct PendingReceipt {
        std::string object_id;
        std::string attempt_id;
        std::string device_id;
        nlohmann::json request;  // the exact body of POST /v1/receipts
        std::int64_t queued_at{0};
    };
    [[nodiscard]] Status queue_receipt(const PendingReceipt& r);
    [[nodiscard]] Status drop_receipt(const std::string& object_id);
    [[nodiscard]] Result<std::vector<PendingReceipt>> pending_receipts() const;

    // ---- field pool ------------------------------------------------------------
    // A field authorisation's life here: available -> claimed (by one device,
    // before anything is sent) -> delivered (the device's receipt is queued)
    // -> synced (the backend took the receipt); or available -> returned.
    struct FieldAuthorisation {
        std::string id;
        std::string pool_id;
        std::string imsi;
        std::int64_t not_after{0};
        std::string authorisation;  // the signed object, base64
        std::string state;
        std::string device_id;      // once claimed
    };
    [[nodiscard]] Status store_pool(const std::vector<FieldAuthorisation>& list);  // keeps local states of known ids
    [[nodiscard]] Result<std::vector<FieldAuthorisation>> field_authorisations() const;
    // The authorisation already claimed for this device (a retry), else the
    // available one expiring first, claimed for it in one transaction.
    // Empty when the pool holds nothing usable.
    [[nodiscard]] Result<std::optional<FieldAuthorisation>> claim_authorisation(const std::string& device_id, std::int64_t now);
    [[nodiscard]] Status set_authorisation_state(const std::string& id, const std::string& state);

    struct FieldToken {
        std::string device_id;
        std::string token;                 // base64
        std::string operator_certificate;  // base64 or empty
        std::int64_t not_after{0};
    };
    [[nodiscard]] Status store_field_token(const FieldToken& t);
    [[nodiscard]] Result<std::optional<FieldToken>> field_token(const std::string& device_id, std::int64_t now) const;
    [[nodiscard]] Result<std::vector<FieldToken>> field_tokens() const;

    // Pool fetches are idempotent at the backend by request id: an
    // unfinished fetch (its answer lost) is retried with the same id.
    [[nodiscard]] Result<std::string> open_pool_request(const std::string& fresh_id, std::int64_t now);
    [[nodiscard]] Status close_pool_request(const std::string& request_id, const std::string& pool_id);

private:
    explicit Workspace(std::filesystem::path home, sqlite3* db) : home_(std::move(home)), db_(db) {}
    std::filesystem::path home_;
    sqlite3* db_{nullptr};
};

}  // namespace credprov::provisioner
