// Parsing AKA parameters from hexadecimal text, for command lines such as
// `aka --rand HEX --autn HEX` and for configuration files.
//
// Every parse checks the exact length and returns ErrorCode::malformed with a
// message naming the field, never echoing the input: for K and OPc the input
// is a secret. Key hex is decoded straight into wiped memory (libsodium's
// constant-time decoder); public fields use from_hex.
#pragma once

#include <string_view>

#include "credprov/aka/parameters.hpp"
#include "credprov/aka/subscriber_keys.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov::aka {

[[nodiscard]] Result<Rand> parse_rand(std::string_view hex);
[[nodiscard]] Result<Autn> parse_autn(std::string_view hex);
[[nodiscard]] Result<Auts> parse_auts(std::string_view hex);
[[nodiscard]] Result<Amf> parse_amf(std::string_view hex);
// 12 hex digits, big-endian, as in TS 35.208.
[[nodiscard]] Result<Sqn> parse_sqn(std::string_view hex);
// 32 hex digits each.
[[nodiscard]] Result<SubscriberKeys> parse_keys_with_opc(std::string_view k_hex, std::string_view opc_hex);
[[nodiscard]] Result<SubscriberKeys> parse_keys_with_op(std::string_view k_hex, std::string_view op_hex);

}  // namespace credprov::aka
