// AKA self-check diagnostic (placeholder until the Milenage library lands).
#include "credprov/agent/aka_check.hpp"

namespace credprov::agent {
Status aka_self_check() { return make_error(ErrorCode::internal, "Milenage library not built"); }
}  // namespace credprov::agent
