// Byte containers used across the protocol library.
//
// Bytes is for public data only (public keys, ciphertexts, encodings).
// Anything secret lives in Secret<N> or SecretBytes (secret.hpp).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace credprov {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

template <std::size_t N>
using ByteArray = std::array<std::uint8_t, N>;

// Lower-case hex of public data (uses libsodium's constant-time encoder).
[[nodiscard]] std::string to_hex(ByteView data);
// Parses hex; returns false on odd length or a non-hex character.
[[nodiscard]] bool from_hex(std::string_view hex, Bytes& out);

[[nodiscard]] inline ByteView as_bytes(std::string_view s) noexcept {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

inline void append(Bytes& out, ByteView data) { out.insert(out.end(), data.begin(), data.end()); }

// Constant-time equality for equal-length inputs (sodium_memcmp); false when
// the lengths differ (lengths are public).
[[nodiscard]] bool ct_equal(ByteView a, ByteView b) noexcept;

}  // namespace credprov
