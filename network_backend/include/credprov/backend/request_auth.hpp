// The provisioner request signature scheme lives in common/ (the provisioner
// signs, the backend verifies); the backend uses it under its own namespace.
#pragma once

#include "credprov/common/request_auth.hpp"

namespace credprov::backend {
using credprov::kEnrolmentContext;
using credprov::kRequestContext;
using credprov::kSignatureScheme;
using credprov::parse_signature_header;
using credprov::request_signing_input;
using credprov::RequestSignature;
using credprov::sign_request;
using credprov::verify_request;
}  // namespace credprov::backend
