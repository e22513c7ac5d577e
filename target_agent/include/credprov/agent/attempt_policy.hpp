// Back-off for setup-code guesses: the answer to online guessing.
//
// Every pairing attempt is counted durably before the device answers, and
// cleared only when the provisioner's confirmation verifies. After a few free
// attempts each further unconfirmed one doubles the wait, up to a cap. There
// is no permanent lock: anyone in radio range could otherwise disable the
// device. Pure: the caller passes the clock.
#pragma once

#include <cstdint>

#include "credprov/agent/agent_state.hpp"
#include "credprov/protocol/device_session.hpp"

namespace credprov::agent {

struct BackoffPolicy {
    std::uint32_t free_attempts{5};  // unconfirmed attempts allowed without waiting
    std::uint64_t base_s{2};         // wait after the first attempt past the free ones
    std::uint64_t max_s{3600};       // cap: at most one guess an hour, forever
};

// Seconds a device must wait after `unconfirmed` unconfirmed attempts.
[[nodiscard]] std::uint64_t backoff_delay(const BackoffPolicy& policy, std::uint32_t unconfirmed) noexcept;

// Whether a new attempt may start at `now_unix`. A clock that went backwards
// (now before the last attempt) restarts the wait from now.
[[nodiscard]] AttemptDecision decide_attempt(const BackoffPolicy& policy, const AttemptState& state,
                                             std::uint64_t now_unix) noexcept;

}  // namespace credprov::agent
