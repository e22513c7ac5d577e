// Exponential back-off for unconfirmed pairing attempts.
#include "credprov/agent/attempt_policy.hpp"

#include <algorithm>

namespace credprov::agent {

std::uint64_t backoff_delay(const BackoffPolicy& policy, std::uint32_t unconfirmed) noexcept {
    if (unconfirmed <= policy.free_attempts) return 0;
    const std::uint32_t doublings = std::min<std::uint32_t>(unconfirmed - policy.free_attempts - 1, 40);
    const std::uint64_t delay = policy.base_s << doublings;
    return std::min(delay, policy.max_s);
}

AttemptDecision decide_attempt(const BackoffPolicy& policy, const AttemptState& state, std::uint64_t now_unix) noexcept {
    const std::uint64_t delay = backoff_delay(policy, state.unconfirmed);
    if (delay == 0) return AttemptDecision{true, 0};
    if (now_unix < state.last_attempt_unix) return AttemptDecision{false, delay};
    const std::uint64_t ready_at = state.last_attempt_unix + delay;
    if (now_unix >= ready_at) return AttemptDecision{true, 0};
    return AttemptDecision{false, ready_at - now_unix};
}

}  // namespace credprov::agent
