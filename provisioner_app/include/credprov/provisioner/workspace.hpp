// The provisioner's local state, in one folder (default
// $XDG_CONFIG_HOME/credprov, else ~/.config/credprov; CREDPROV_HOME or
// --home overrides):
//   provisioner.key   the provisioner's Ed25519 key (0600, common/key_file.hpp)
//   settings.json     backend URL, CA file, provisioner id and name
//   journal.db        SQLite: every operation and its outcome (history), and
//                     the receipts waiting to be posted (queue)
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

private:
    explicit Workspace(std::filesystem::path home, sqlite3* db) : home_(std::move(home)), db_(db) {}
    std::filesystem::path home_;
    sqlite3* db_{nullptr};
};

}  // namespace credprov::provisioner
