// The "AKA self-check" diagnostic: runs Milenage on a 3GPP test set and
// compares with the published values. Uses no device secret.
#pragma once

#include "credprov/protocol/result.hpp"

namespace credprov::agent {
[[nodiscard]] Status aka_self_check();
}  // namespace credprov::agent
