// Result<T>: the value-or-error type every fallible protocol call returns.
//
// Errors are values where failure is expected (bad input, wrong setup code,
// lost link). An Error carries a cause from a closed enum and a human message.
// The message must never contain key material, setup codes or other secrets:
// callers log it and show it to technicians.
#pragma once

#include <cassert>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace credprov {

enum class ErrorCode : std::uint8_t {
    malformed = 1,         // bytes do not parse or break the canonical encoding
    oversized = 2,         // a length or count is above its bound
    unsupported_version = 3,
    unknown_critical = 4,  // a critical field or message type this version does not know
    bad_state = 5,         // message or call not allowed in the current state
    auth_failed = 6,       // AEAD tag, MAC or key confirmation did not verify
    bad_signature = 7,     // an Ed25519 signature did not verify
    replay = 8,            // counter or nonce went backwards or repeated
    expired = 9,
    not_yet_valid = 10,
    not_authorised = 11,   // the token does not allow this operation / device
    wrong_device = 12,     // an object is bound to another device
    not_owner = 13,        // signed by a key that is not the device's owner
    untrusted_operator = 14,  // operator key not certified by the pinned root
    stale_counter = 15,    // owner-signed object older than one already applied
    mode_not_allowed = 16, // e.g. field mode without policy or token permission
    backoff = 17,          // too many failed pairing attempts: wait
    already_provisioned = 18,
    not_provisioned = 19,
    storage = 20,          // persistent store failed (agent side)
    io = 21,               // transport failed
    closed = 22,           // peer closed the link
    timeout = 23,
    crypto = 24,           // a primitive failed (invalid point, identity element)
    internal = 25,
};

[[nodiscard]] std::string_view to_string(ErrorCode code) noexcept;

struct Error {
    ErrorCode code{ErrorCode::internal};
    std::string message;  // human readable, never contains secrets
};

[[nodiscard]] inline Error make_error(ErrorCode code, std::string message) {
    return Error{code, std::move(message)};
}

template <class T>
class [[nodiscard]] Result {
public:
    Result(T value) : v_(std::move(value)) {}            // NOLINT(google-explicit-constructor)
    Result(Error error) : v_(std::move(error)) {}        // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool ok() const noexcept { return v_.index() == 0; }
    explicit operator bool() const noexcept { return ok(); }

    [[nodiscard]] T& value() & { assert(ok()); return std::get<0>(v_); }
    [[nodiscard]] const T& value() const& { assert(ok()); return std::get<0>(v_); }
    [[nodiscard]] T&& value() && { assert(ok()); return std::get<0>(std::move(v_)); }
    [[nodiscard]] const Error& error() const { assert(!ok()); return std::get<1>(v_); }

    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }
    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }

private:
    std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
public:
    Result() = default;
    Result(Error error) : error_(std::move(error)), ok_(false) {}  // NOLINT(google-explicit-constructor)

    [[nodiscard]] bool ok() const noexcept { return ok_; }
    explicit operator bool() const noexcept { return ok_; }
    [[nodiscard]] const Error& error() const { assert(!ok_); return error_; }

private:
    Error error_{};
    bool ok_{true};
};

using Status = Result<void>;

}  // namespace credprov
