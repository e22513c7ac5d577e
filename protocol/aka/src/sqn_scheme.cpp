// SQN = SEQ || IND management of TS 33.102 Annex C (see sqn_scheme.hpp for
// the rules chosen). No clock, no I/O.
#include "credprov/aka/sqn_scheme.hpp"

#include <algorithm>
#include <string>

namespace credprov::aka {

Result<Sqn> next_sqn(Sqn highest_issued, unsigned ind) {
    assert(ind < kIndSlots);
    const std::uint64_t seq = seq_of(highest_issued);
    if (seq >= kSeqMax) return make_error(ErrorCode::oversized, "AKA sequence number space exhausted");
    return make_sqn(seq + 1, ind);
}

Sqn resynchronised_sqn(Sqn sqn_he, Sqn sqn_ms, const SqnPolicy& policy) noexcept {
    // The next vector's SEQ is SEQ_HE + 1 whatever its IND; a USIM takes it
    // if it is above every SEQ_MS(i), which SEQ_MS bounds (C.2.2 (a)), and
    // not more than delta above SEQ_MS (C.2.2 (b)).
    const std::uint64_t next = seq_of(sqn_he) + 1;
    const std::uint64_t ms = seq_of(sqn_ms);
    if (next > ms && next - ms <= policy.seq_delta) return sqn_he;
    return sqn_ms;
}

Sqn UsimSqnState::highest() const noexcept {
    // The numerically highest SQN accepted: highest SEQ, highest IND on ties,
    // so that a network which simply adds one to SQN_MS lands on a slot that
    // has not seen this SEQ yet. A fresh USIM reports SQN_MS = 0.
    Sqn best;
    for (unsigned i = 0; i < kIndSlots; ++i) {
        if (seq_[i] != 0) best = std::max(best, make_sqn(seq_[i], i));
    }
    return best;
}

bool UsimSqnState::is_fresh(Sqn sqn, const SqnPolicy& policy) const noexcept {
    const std::uint64_t seq = seq_of(sqn);
    if (seq <= seq_[ind_of(sqn)]) return false;                 // C.2.2 (a): replay or stale
    const std::uint64_t seq_ms = seq_of(highest());
    return seq <= seq_ms || seq - seq_ms <= policy.seq_delta;   // C.2.2 (b): not too far ahead
}

UsimSqnState UsimSqnState::accepted(Sqn sqn) const noexcept {
    UsimSqnState next = *this;
    next.seq_[ind_of(sqn)] = seq_of(sqn);
    return next;
}

ByteArray<UsimSqnState::kPersistedBytes> UsimSqnState::to_bytes() const noexcept {
    ByteArray<kPersistedBytes> out{};
    for (std::size_t i = 0; i < kIndSlots; ++i) {
        const auto slot = Sqn(seq_[i]).to_bytes();
        std::copy(slot.begin(), slot.end(), out.begin() + static_cast<std::ptrdiff_t>(i * Sqn::kBytes));
    }
    return out;
}

Result<UsimSqnState> UsimSqnState::from_bytes(ByteView bytes) {
    if (bytes.size() != kPersistedBytes) {
        return make_error(ErrorCode::malformed, "USIM SQN state must be " + std::to_string(kPersistedBytes) + " octets");
    }
    UsimSqnState state;
    for (std::size_t i = 0; i < kIndSlots; ++i) {
        const auto seq = Sqn::from_bytes(bytes.subspan(i * Sqn::kBytes).first<Sqn::kBytes>()).value();
        if (seq > kSeqMax) return make_error(ErrorCode::malformed, "USIM SQN state holds a SEQ above 43 bits");
        state.seq_[i] = seq;
    }
    return state;
}

}  // namespace credprov::aka
