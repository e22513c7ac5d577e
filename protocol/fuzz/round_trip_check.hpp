// Checks shared by the decoder fuzz harnesses: a decoder that accepts input
// must have read its canonical encoding, and a decoder that refuses must say
// why with a decode-class cause.
//
// Decoders skip unknown extension fields (map keys >= 64) by design, so for
// input carrying one the re-encoding is shorter; then it must at least be
// stable (decode -> encode is a fixed point). Never keeps state between
// runs; writes to stderr only when a requirement fails, just before aborting.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <utility>

#include "credprov/protocol/codec.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov::fuzz {

// Aborts, naming the broken requirement (the only output a harness makes).
inline void require_at(bool condition, const char* what, const char* file, int line) {
    if (condition) return;
    std::fprintf(stderr, "%s:%d: requirement failed: %s\n", file, line, what);
    std::abort();
}
#define CREDPROV_FUZZ_REQUIRE(condition) ::credprov::fuzz::require_at((condition), #condition, __FILE__, __LINE__)

// Walks one data item; nullopt if the Reader cannot read it. True if some
// map key in it is an extension key, looking into byte strings that are
// themselves one data item (nested encodings such as settings in device info).
inline std::optional<bool> walk_for_extension(cbor::Reader& r, int depth) {
    if (depth > 16) return std::nullopt;
    auto kind = r.peek();
    if (!kind) return std::nullopt;
    switch (*kind) {
        case cbor::Kind::uint:
            if (!r.uint()) return std::nullopt;
            return false;
        case cbor::Kind::boolean:
            if (!r.boolean()) return std::nullopt;
            return false;
        case cbor::Kind::text:
            if (!r.text(0, SIZE_MAX)) return std::nullopt;
            return false;
        case cbor::Kind::bytes: {
            auto b = r.bytes(0, SIZE_MAX);
            if (!b) return std::nullopt;
            cbor::Reader nested(*b);
            auto found = walk_for_extension(nested, depth + 1);
            return found.value_or(false);
        }
        case cbor::Kind::array: {
            auto n = r.array(0, SIZE_MAX);
            if (!n) return std::nullopt;
            bool found = false;
            for (std::size_t i = 0; i < *n; ++i) {
                auto f = walk_for_extension(r, depth + 1);
                if (!f) return std::nullopt;
                found = found || *f;
            }
            return found;
        }
        case cbor::Kind::map: {
            auto n = r.map(0, SIZE_MAX);
            if (!n) return std::nullopt;
            bool found = false;
            for (std::size_t i = 0; i < *n; ++i) {
                auto key_kind = r.peek();
                if (key_kind && *key_kind == cbor::Kind::uint) {
                    auto key = r.uint();
                    if (!key) return std::nullopt;
                    found = found || *key >= cbor::kFirstExtensionKey;
                } else {
                    auto f = walk_for_extension(r, depth + 1);
                    if (!f) return std::nullopt;
                    found = found || *f;
                }
                auto v = walk_for_extension(r, depth + 1);
                if (!v) return std::nullopt;
                found = found || *v;
            }
            return found;
        }
        default:
            return std::nullopt;
    }
}

inline bool has_extension_key(ByteView in) {
    cbor::Reader r(in);
    return walk_for_extension(r, 0).value_or(false);
}

// The causes a decoder may give: nothing about keys, signatures or state
// beyond "this message is not the expected type".
inline void require_decode_error(const Error& e) {
    CREDPROV_FUZZ_REQUIRE(!e.message.empty());
    CREDPROV_FUZZ_REQUIRE(e.code == ErrorCode::malformed || e.code == ErrorCode::oversized ||
            e.code == ErrorCode::unsupported_version || e.code == ErrorCode::unknown_critical ||
            e.code == ErrorCode::bad_state);
}

// decode(in) either fails with a decode-class error, or re-encodes to `in`
// (or, when `in` carries extension fields, to a fixed point). Returns the
// decoded value for further checks.
template <class T, class Decode, class Encode>
std::optional<T> check_round_trip(ByteView in, Decode decode, Encode encode) {
    auto v = decode(in);
    if (!v) {
        require_decode_error(v.error());
        return std::nullopt;
    }
    const Bytes again = encode(*v);
    if (!(ByteView(again).size() == in.size() && std::equal(again.begin(), again.end(), in.begin()))) {
        CREDPROV_FUZZ_REQUIRE(has_extension_key(in));
        auto w = decode(again);
        CREDPROV_FUZZ_REQUIRE(w.ok());
        CREDPROV_FUZZ_REQUIRE(encode(*w) == again);
    }
    return std::move(*v);
}

template <class T>
std::optional<T> check_round_trip(ByteView in) {
    return check_round_trip<T>(
        in, [](ByteView b) { return T::decode(b); }, [](const T& v) { return v.encode(); });
}

}  // namespace credprov::fuzz
