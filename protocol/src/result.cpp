// Names of error causes, used in messages and logs.
#include "credprov/protocol/result.hpp"

namespace credprov {

std::string_view to_string(ErrorCode code) noexcept {
    switch (code) {
        case ErrorCode::malformed: return "malformed";
        case ErrorCode::oversized: return "oversized";
        case ErrorCode::unsupported_version: return "unsupported-version";
        case ErrorCode::unknown_critical: return "unknown-critical";
        case ErrorCode::bad_state: return "bad-state";
        case ErrorCode::auth_failed: return "auth-failed";
        case ErrorCode::bad_signature: return "bad-signature";
        case ErrorCode::replay: return "replay";
        case ErrorCode::expired: return "expired";
        case ErrorCode::not_yet_valid: return "not-yet-valid";
        case ErrorCode::not_authorised: return "not-authorised";
        case ErrorCode::wrong_device: return "wrong-device";
        case ErrorCode::not_owner: return "not-owner";
        case ErrorCode::untrusted_operator: return "untrusted-operator";
        case ErrorCode::stale_counter: return "stale-counter";
        case ErrorCode::mode_not_allowed: return "mode-not-allowed";
        case ErrorCode::backoff: return "backoff";
        case ErrorCode::already_provisioned: return "already-provisioned";
        case ErrorCode::not_provisioned: return "not-provisioned";
        case ErrorCode::storage: return "storage";
        case ErrorCode::io: return "io";
        case ErrorCode::closed: return "closed";
        case ErrorCode::timeout: return "timeout";
        case ErrorCode::crypto: return "crypto";
        case ErrorCode::internal: return "internal";
    }
    return "unknown";
}

}  // namespace credprov
