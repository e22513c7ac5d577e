// Field readers shared by every decoder built on the canonical CBOR Reader
// (messages, signed objects, the agent's state): one implementation of "read
// this field into that member, or return the typed error".
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

#include "credprov/protocol/codec.hpp"

namespace credprov::cbor {

// Adapts a Status-returning field reader to read_map's Result<bool>.
[[nodiscard]] inline Result<bool> handled(Status s) {
    if (!s) return s.error();
    return true;
}

template <std::size_t N>
[[nodiscard]] Status read_fixed(Reader& v, ByteArray<N>& out) {
    auto b = v.fixed_bytes<N>();
    if (!b) return b.error();
    out = *b;
    return {};
}

[[nodiscard]] inline Status read_blob(Reader& v, std::size_t min, std::size_t max, Bytes& out) {
    auto b = v.bytes(min, max);
    if (!b) return b.error();
    out.assign(b->begin(), b->end());
    return {};
}

[[nodiscard]] inline Status read_u64(Reader& v, std::uint64_t& out,
                                     std::uint64_t max = std::numeric_limits<std::uint64_t>::max()) {
    auto x = v.uint(0, max);
    if (!x) return x.error();
    out = *x;
    return {};
}

[[nodiscard]] inline Status read_bool(Reader& v, bool& out) {
    auto b = v.boolean();
    if (!b) return b.error();
    out = *b;
    return {};
}

// Reads text and hands it to a validating parser (Imsi::parse, Plmn::parse...).
template <class T, class Parse>
[[nodiscard]] Status read_parsed(Reader& v, std::size_t max_len, T& out, Parse parse) {
    auto t = v.text(0, max_len);
    if (!t) return t.error();
    auto p = parse(*t);
    if (!p) return p.error();
    out = std::move(*p);
    return {};
}

[[nodiscard]] inline bool printable(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= 0x20 && c < 0x7f; });
}

[[nodiscard]] inline Status read_printable(Reader& v, std::size_t max, std::string& out) {
    auto t = v.text(0, max);
    if (!t) return t.error();
    if (!printable(*t)) return make_error(ErrorCode::malformed, "text field has non-printable characters");
    out = std::string(*t);
    return {};
}

}  // namespace credprov::cbor
