// The append-only, hash-chained audit log: every state change and every
// rejected attempt (who, what, when, from where, outcome).
//
// Entry n stores hash_n = SHA-512/256(prev_hash || canonical CBOR of the
// entry). Appends lock the single audit_head row, so entries are totally
// ordered even when several backend nodes share one PostgreSQL database.
// Details are short, secret-free strings written by the service.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "credprov/backend/database.hpp"

namespace credprov::backend {

struct AuditEntry {
    std::int64_t seq{0};
    std::int64_t at{0};
    std::string actor;    // "admin:<token id>", "provisioner:<id>", "device", "cli", "system"
    std::string action;   // e.g. "subscriber.activate"
    std::string target;   // e.g. "imsi:001010000000001"
    std::string outcome;  // "ok" or "rejected:<reason>"
    std::string detail;
    std::string remote;   // peer address, or "local"
    std::string prev_hash;
    std::string hash;
};

// Appends inside the caller's transaction; fills seq, prev_hash and hash.
[[nodiscard]] Status append_audit(Connection& c, AuditEntry& e);
// The same for several entries, chained in order, in one INSERT.
[[nodiscard]] Status append_audit(Connection& c, std::vector<AuditEntry>& entries);

struct AuditVerdict {
    bool ok{true};
    std::int64_t entries{0};
    std::string head_hash;
    std::optional<std::int64_t> first_bad;  // first sequence number that does not verify
    std::string problem;
};
// Walks the whole chain and the head row.
[[nodiscard]] Result<AuditVerdict> verify_audit(Connection& c);

[[nodiscard]] Result<std::vector<AuditEntry>> list_audit(Connection& c, std::int64_t after, std::int64_t limit);

}  // namespace credprov::backend
