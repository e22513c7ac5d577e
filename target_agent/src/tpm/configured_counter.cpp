// The store's counter as the configuration asks for it; built with or
// without TPM support (CREDPROV_HAVE_TPM), so that the programs can ask.
#include "credprov/agent/tpm_counter.hpp"

namespace credprov::agent {

bool tpm_counter_available() noexcept {
#ifdef CREDPROV_HAVE_TPM
    return true;
#else
    return false;
#endif
}

Result<std::unique_ptr<MonotonicCounter>> open_configured_counter(const AgentConfig& cfg, bool define_if_missing) {
    if (!cfg.tpm) return std::unique_ptr<MonotonicCounter>{};
#ifdef CREDPROV_HAVE_TPM
    auto counter = TpmNvCounter::open(cfg.tpm->tcti, cfg.tpm->nv_index, define_if_missing);
    if (!counter) return counter.error();
    return std::unique_ptr<MonotonicCounter>(std::move(*counter));
#else
    (void)define_if_missing;
    return make_error(ErrorCode::storage,
                      "[tpm] is configured but this build has no TPM support (built without tpm2-tss, "
                      "libtss2-dev); remove [tpm] to run without rollback protection");
#endif
}

}  // namespace credprov::agent
