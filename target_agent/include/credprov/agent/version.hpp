// The agent's version string, reported by --version and in query answers:
// the project version (common/version.hpp.in), kept in one place.
#pragma once

#include "credprov/version.hpp"

namespace credprov::agent {
inline constexpr const char* kAgentVersion = credprov::kVersion;
}  // namespace credprov::agent
