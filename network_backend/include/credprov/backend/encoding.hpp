// Text encodings of binary values in the REST API and the key/certificate
// files: standard base64 (RFC 4648 section 4) through libsodium's
// constant-time codec. Signed CBOR objects travel as base64; keys and ids as
// lower-case hex.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "credprov/protocol/bytes.hpp"

namespace credprov::backend {

[[nodiscard]] std::string base64_encode(ByteView data);
// Ignores ASCII whitespace (files end with a newline); nullopt if malformed
// or longer than max_bytes once decoded.
[[nodiscard]] std::optional<Bytes> base64_decode(std::string_view text, std::size_t max_bytes = 1 << 16);

}  // namespace credprov::backend
