// The store's hardware monotonic counter on a TPM 2.0 NV counter index
// (STORE.md "Rollback"), through tpm2-tss (ESAPI and the TCTI loader).
//
// TpmNvCounter is in the library credprov_agent_tpm, built only when
// tpm2-tss is found (CREDPROV_HAVE_TPM is then defined for its users).
// open_configured_counter() is in credprov_agent_counter, always built: it
// picks the counter the configuration asks for, and says so plainly when
// [tpm] is configured but this build has no TPM support.
//
// The index: an 8-byte NV counter (TPM2_NT_COUNTER) with an empty auth
// value (TPMA_NV_AUTHREAD | TPMA_NV_AUTHWRITE | TPMA_NV_NO_DA), defined in
// the owner hierarchy with the (empty) owner auth. The value is not secret;
// what matters is that a TPM counter never goes back, not even through
// deleting and redefining the index.
//
// Each read() and advance_to() connects to the TPM and disconnects again, so
// the agent holds no TPM connection between commits (a single-client swtpm
// or /dev/tpm0 stays usable by credprov-agentctl while the daemon runs).
// Every failure is ErrorCode::storage naming the index and tpm2-tss's reason.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "credprov/agent/config.hpp"
#include "credprov/agent/store.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov::agent {

class TpmNvCounter final : public MonotonicCounter {
public:
    // Connects to the TPM at `tcti` (tpm2-tss syntax: "device:/dev/tpmrm0",
    // "swtpm:host=127.0.0.1,port=2321", "tabrmd:"), checks that `nv_index` is
    // such a counter and readable. A missing index is defined (and
    // incremented once, so that it can be read) if `define_if_missing`,
    // refused otherwise. An index that exists with another type, size or
    // authorisation is refused, never redefined.
    [[nodiscard]] static Result<std::unique_ptr<TpmNvCounter>> open(std::string tcti, std::uint32_t nv_index,
                                                                    bool define_if_missing);

    // The counter's current value (never nullopt).
    [[nodiscard]] Result<std::optional<std::uint64_t>> read() override;
    // Increments until the counter is >= `value` (one increment per commit
    // normally); a counter already there is left alone. Refuses to step more
    // than kMaxSteps in one call (a sign of a wrong index, not of commits).
    [[nodiscard]] Status advance_to(std::uint64_t value) override;

    [[nodiscard]] std::uint32_t nv_index() const noexcept { return nv_index_; }
    [[nodiscard]] const std::string& tcti() const noexcept { return tcti_; }

    static constexpr std::uint64_t kMaxSteps = 1024;

private:
    TpmNvCounter(std::string tcti, std::uint32_t nv_index) : tcti_(std::move(tcti)), nv_index_(nv_index) {}

    std::string tcti_;
    std::uint32_t nv_index_;
};

// Whether this build has TPM support (credprov_agent_tpm).
[[nodiscard]] bool tpm_counter_available() noexcept;

// The store's counter as `cfg` asks for it: a TpmNvCounter when [tpm] is
// configured, nullptr (use no_counter()) when not. `define_if_missing` is for
// the commands that create a store (factory-init, the daemon's first start):
// an existing store never gets a fresh index silently. ErrorCode::storage
// when [tpm] is configured and the counter cannot be used or this build has
// no TPM support.
[[nodiscard]] Result<std::unique_ptr<MonotonicCounter>> open_configured_counter(const AgentConfig& cfg,
                                                                                bool define_if_missing);

}  // namespace credprov::agent
