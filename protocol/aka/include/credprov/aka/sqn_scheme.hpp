// Sequence number management, 3GPP TS 33.102 Annex C (C.1.1, C.1.2, C.2.1,
// C.2.2, C.3.4), in the form credprov uses on both ends.
//
// Layout: SQN (48 bits) = SEQ (43 bits) || IND (5 bits). IND is an index
// 0..31 the network chooses per serving node (osmo-hlr's default layout too,
// so a soft-USIM also works against osmo-hlr's vectors); SEQ is the counter.
//
// Network (HE/AuC), C.1.2: keeps SQN_HE, the highest SQN it has issued. A new
// vector gets SEQ_HE + 1 with the IND the caller chooses (next_sqn). On a
// resynchronisation (6.3.5, C.3.4) the network keeps SQN_HE if the USIM would
// accept the next vector from it; otherwise it takes SQN_MS recovered from
// AUTS as its new SQN_HE, so the next vector carries SEQ_MS + 1
// (resynchronised_sqn). So SQN_HE never goes back below vectors already
// issued to other serving nodes after the USIM computed its AUTS.
//
// USIM, C.2.1 and C.2.2: keeps SEQ_MS(i), the highest SEQ accepted with
// IND = i, for all 32 values of i. A received SQN = SEQ || i is fresh iff
//   (a) SEQ > SEQ_MS(i)  -- a replay, or an older vector with the same IND,
//                           is rejected; vectors issued for other serving nodes
//                           may still arrive out of order;
//   (b) SEQ - SEQ_MS <= delta, where SEQ_MS is the highest SEQ_MS(i) --
//                           the network may not jump ahead so far that the
//                           counter could be exhausted (wrap-around, C.2.2).
// The optional age limit L of C.2.2 is not used. On rejection the USIM
// reports in AUTS SQN_MS = the highest SQN it has accepted (SEQ_MS || IND).
//
// A fresh USIM has every SEQ_MS(i) = 0, so SEQ 0 is never fresh: the first
// SQN a network sends must be at least 32 (SEQ 1). next_sqn starts there, as
// osmo-hlr and open5gs do. A network that simply counts SQN up by one from 32
// is accepted too: each IND slot then sees its SEQ grow every 32 vectors.
//
// Pure value types: no clock, no I/O, nothing here is secret key material.
#pragma once

#include <array>
#include <cassert>
#include <cstddef>
#include <cstdint>

#include "credprov/aka/parameters.hpp"
#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov::aka {

inline constexpr unsigned kIndBits = 5;
inline constexpr std::size_t kIndSlots = std::size_t{1} << kIndBits;
inline constexpr std::uint64_t kSeqMax = (std::uint64_t{1} << (48 - kIndBits)) - 1;
// Delta of C.2.2; TS 33.102 gives 2^28 as its example value.
inline constexpr std::uint64_t kDefaultSeqDelta = std::uint64_t{1} << 28;

[[nodiscard]] constexpr std::uint64_t seq_of(Sqn sqn) noexcept { return sqn.value() >> kIndBits; }
[[nodiscard]] constexpr unsigned ind_of(Sqn sqn) noexcept {
    return static_cast<unsigned>(sqn.value() & (kIndSlots - 1));
}
// SEQ above 43 bits or IND above 31 is a programming error.
[[nodiscard]] constexpr Sqn make_sqn(std::uint64_t seq, unsigned ind) noexcept {
    assert(seq <= kSeqMax && ind < kIndSlots);
    return Sqn((seq << kIndBits) | ind);
}

// Network side: the SQN of the next vector after `highest_issued` (SQN_HE, or
// SQN_MS after a resync) for serving-node index `ind`. ErrorCode::oversized
// once SEQ would leave its 43 bits.
[[nodiscard]] Result<Sqn> next_sqn(Sqn highest_issued, unsigned ind);

struct SqnPolicy {
    std::uint64_t seq_delta = kDefaultSeqDelta;  // delta of C.2.2, in SEQ steps
};

// Network side, TS 33.102 6.3.5: SQN_HE after a resynchronisation that
// recovered `sqn_ms` (verified AUTS). SQN_HE stays when the next SQN from it
// is fresh for a USIM whose highest accepted SQN is `sqn_ms` (its SEQ above
// SEQ_MS and at most delta ahead); otherwise it becomes `sqn_ms`.
[[nodiscard]] Sqn resynchronised_sqn(Sqn sqn_he, Sqn sqn_ms, const SqnPolicy& policy = {}) noexcept;

// USIM side: SEQ_MS(i) for every IND. Immutable per authentication: an
// accepted SQN yields a new state for the caller to persist.
class UsimSqnState {
public:
    static constexpr std::size_t kPersistedBytes = kIndSlots * Sqn::kBytes;

    UsimSqnState() = default;  // a fresh USIM: every SEQ_MS(i) = 0

    [[nodiscard]] std::uint64_t seq_ms(unsigned ind) const noexcept { return seq_[ind]; }
    // SQN_MS: the highest SQN accepted so far (highest SEQ, then highest IND);
    // 0 for a fresh USIM.
    [[nodiscard]] Sqn highest() const noexcept;
    [[nodiscard]] bool is_fresh(Sqn sqn, const SqnPolicy& policy = {}) const noexcept;
    // The state after accepting `sqn`; only meaningful if is_fresh(sqn).
    [[nodiscard]] UsimSqnState accepted(Sqn sqn) const noexcept;

    // Persisted form: SEQ_MS(0..31) as 32 big-endian 6-octet numbers.
    [[nodiscard]] ByteArray<kPersistedBytes> to_bytes() const noexcept;
    // ErrorCode::malformed on a wrong length or a SEQ above 43 bits.
    [[nodiscard]] static Result<UsimSqnState> from_bytes(ByteView bytes);

    friend bool operator==(const UsimSqnState&, const UsimSqnState&) = default;

private:
    std::array<std::uint64_t, kIndSlots> seq_{};
};

}  // namespace credprov::aka
