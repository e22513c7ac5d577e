// The agent's version string, reported by --version and in query answers.
#pragma once

namespace credprov::agent {
inline constexpr const char* kAgentVersion = "0.1.0";
}  // namespace credprov::agent
