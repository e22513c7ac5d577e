// How a provisioner authenticates a request to the backend: an Ed25519
// signature by its enrolled key over the method, the request target, a
// timestamp and the hash of the body, under its own context string.
//
//   Authorization: Credprov-Signature key=<64 hex>, ts=<unix seconds>, sig=<128 hex>
//   signed: "credprov/v1 backend-request" || 0x00 ||
//           METHOD || "\n" || target || "\n" || ts || "\n" || hex(SHA-512(body))
//
// The backend accepts a timestamp within its clock-skew window. A replay
// inside that window repeats an idempotent step and changes nothing.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/crypto.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov {

inline constexpr std::string_view kRequestContext = "credprov/v1 backend-request";
// A provisioner proves it holds the key it enrols: Ed25519 over the
// enrolment token's text under this context.
inline constexpr std::string_view kEnrolmentContext = "credprov/v1 provisioner-enrolment";
inline constexpr std::string_view kSignatureScheme = "Credprov-Signature";

struct RequestSignature {
    crypto::SignPublicKey key{};
    std::uint64_t timestamp{0};
    crypto::Signature signature{};
};

[[nodiscard]] Bytes request_signing_input(std::string_view method, std::string_view target, std::uint64_t timestamp,
                                          std::string_view body);
[[nodiscard]] std::string sign_request(const crypto::SigningKey& key, std::string_view method, std::string_view target,
                                       std::uint64_t timestamp, std::string_view body);
[[nodiscard]] Result<RequestSignature> parse_signature_header(std::string_view header);
[[nodiscard]] Status verify_request(const RequestSignature& sig, std::string_view method, std::string_view target,
                                    std::string_view body);

}  // namespace credprov
