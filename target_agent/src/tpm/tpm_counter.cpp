// TpmNvCounter: the store's monotonic counter on a TPM 2.0 NV counter index,
// through tpm2-tss's ESAPI over the TCTI loader. One connection per
// operation, released on every path (Esys_Finalize, Tss2_TctiLdr_Finalize);
// every TSS return code becomes an ErrorCode::storage Error, never an
// exception, and no failure is retried behind the caller's back.
#include "credprov/agent/tpm_counter.hpp"

#include <array>
#include <cstdio>
#include <string_view>
#include <utility>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_tctildr.h>

namespace credprov::agent {

namespace {

constexpr std::uint16_t kCounterBytes = 8;
constexpr TPMA_NV kCounterType = static_cast<TPMA_NV>(TPM2_NT_COUNTER) << TPMA_NV_TPM2_NT_SHIFT;
// What the agent defines, and what it requires of an index it finds.
constexpr TPMA_NV kRequired = TPMA_NV_AUTHREAD | TPMA_NV_AUTHWRITE | TPMA_NV_NO_DA;

std::string hex32(std::uint32_t v) {
    std::array<char, 16> buf{};
    std::snprintf(buf.data(), buf.size(), "0x%08x", static_cast<unsigned>(v));
    return buf.data();
}

std::string decode(TSS2_RC rc) {
    const char* text = Tss2_RC_Decode(rc);  // a thread-local buffer: copy at once
    return text != nullptr ? std::string(text) : "TSS2_RC " + hex32(rc);
}

struct TctiCloser {
    void operator()(TSS2_TCTI_CONTEXT* tcti) const noexcept { Tss2_TctiLdr_Finalize(&tcti); }
};
struct EsysCloser {
    void operator()(ESYS_CONTEXT* esys) const noexcept { Esys_Finalize(&esys); }
};
struct EsysFreer {
    void operator()(void* p) const noexcept { Esys_Free(p); }
};
template <class T>
using EsysPtr = std::unique_ptr<T, EsysFreer>;

// One connection to the TPM, and the counter's index in it.
class Connection {
public:
    static Result<Connection> connect(const std::string& tcti_conf, std::uint32_t index) {
        Connection c(index);
        TSS2_TCTI_CONTEXT* tcti = nullptr;
        if (TSS2_RC rc = Tss2_TctiLdr_Initialize(tcti_conf.c_str(), &tcti); rc != TSS2_RC_SUCCESS) {
            return c.fail("cannot reach the TPM at '" + tcti_conf + "'", rc);
        }
        c.tcti_.reset(tcti);
        ESYS_CONTEXT* esys = nullptr;
        if (TSS2_RC rc = Esys_Initialize(&esys, tcti, nullptr); rc != TSS2_RC_SUCCESS) {
            return c.fail("cannot start an ESAPI context on the TPM at '" + tcti_conf + "'", rc);
        }
        c.esys_.reset(esys);
        return c;
    }

    // Whether the index exists (TPM2_GetCapability of handles, no error when not).
    Result<bool> defined() {
        TPMI_YES_NO more = TPM2_NO;
        TPMS_CAPABILITY_DATA* raw = nullptr;
        TSS2_RC rc = Esys_GetCapability(esys_.get(), ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, TPM2_CAP_HANDLES,
                                        index_, 1, &more, &raw);
        EsysPtr<TPMS_CAPABILITY_DATA> data(raw);
        if (rc != TSS2_RC_SUCCESS) return fail("cannot list the TPM's NV indices", rc);
        return data->data.handles.count > 0 && data->data.handles.handle[0] == index_;
    }

    // Defines the index as an 8-byte counter with an empty auth value, in the
    // owner hierarchy (empty owner auth), and increments it once so that it
    // can be read. Another process defining it at the same moment is fine.
    Status define() {
        TPM2B_AUTH auth{};
        TPM2B_NV_PUBLIC pub{};
        pub.nvPublic.nvIndex = index_;
        pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
        pub.nvPublic.attributes = kCounterType | kRequired;
        pub.nvPublic.dataSize = kCounterBytes;
        ESYS_TR handle = ESYS_TR_NONE;
        TSS2_RC rc = Esys_NV_DefineSpace(esys_.get(), ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                         &auth, &pub, &handle);
        if (rc == TPM2_RC_NV_DEFINED) return attach();
        if (rc != TSS2_RC_SUCCESS) {
            return fail("cannot define the index in the owner hierarchy (needs an empty owner auth value)", rc);
        }
        nv_ = handle;
        return {};
    }

    Status attach() {
        if (nv_ != ESYS_TR_NONE) return {};
        ESYS_TR handle = ESYS_TR_NONE;
        TSS2_RC rc = Esys_TR_FromTPMPublic(esys_.get(), index_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &handle);
        if (rc != TSS2_RC_SUCCESS) return fail("cannot open the index", rc);
        nv_ = handle;
        return {};
    }

    // The index's attributes, checked: an 8-byte counter that the agent can
    // read and increment with the empty auth value without touching the
    // TPM's dictionary-attack counter. Returns whether it was written.
    Result<bool> check_public() {
        TPM2B_NV_PUBLIC* raw_pub = nullptr;
        TPM2B_NAME* raw_name = nullptr;
        TSS2_RC rc = Esys_NV_ReadPublic(esys_.get(), nv_, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &raw_pub,
                                        &raw_name);
        EsysPtr<TPM2B_NV_PUBLIC> pub(raw_pub);
        EsysPtr<TPM2B_NAME> name(raw_name);
        if (rc != TSS2_RC_SUCCESS) return fail("cannot read the index's public area", rc);
        const TPMA_NV attrs = pub->nvPublic.attributes;
        if ((attrs & TPMA_NV_TPM2_NT_MASK) != kCounterType || pub->nvPublic.dataSize != kCounterBytes ||
            (attrs & kRequired) != kRequired) {
            return make_error(ErrorCode::storage,
                              prefix() + ": the index exists but is not an 8-byte NV counter with auth read, auth "
                                         "write and no-DA (attributes " +
                                  hex32(attrs) + "): another program's index? Choose another [tpm] nv_index");
        }
        return (attrs & TPMA_NV_WRITTEN) != 0;
    }

    Status increment() {
        TSS2_RC rc = Esys_NV_Increment(esys_.get(), nv_, nv_, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE);
        if (rc != TSS2_RC_SUCCESS) return fail("cannot increment", rc);
        return {};
    }

    Result<std::uint64_t> value() {
        TPM2B_MAX_NV_BUFFER* raw = nullptr;
        TSS2_RC rc = Esys_NV_Read(esys_.get(), nv_, nv_, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, kCounterBytes,
                                  0, &raw);
        EsysPtr<TPM2B_MAX_NV_BUFFER> data(raw);
        if (rc != TSS2_RC_SUCCESS) return fail("cannot read", rc);
        if (data->size != kCounterBytes) {
            return make_error(ErrorCode::storage, prefix() + ": read " + std::to_string(data->size) +
                                                      " bytes instead of " + std::to_string(kCounterBytes));
        }
        std::uint64_t v = 0;
        for (std::size_t i = 0; i < kCounterBytes; ++i) v = (v << 8) | data->buffer[i];  // big-endian
        return v;
    }

    [[nodiscard]] std::string prefix() const { return "TPM NV counter " + hex32(index_); }

private:
    explicit Connection(std::uint32_t index) : index_(index) {}

    [[nodiscard]] Error fail(std::string_view what, TSS2_RC rc) const {
        return make_error(ErrorCode::storage, prefix() + ": " + std::string(what) + ": " + decode(rc));
    }

    // Destroyed in reverse order: the ESAPI context (and with it every
    // ESYS_TR) before the TCTI it uses.
    std::unique_ptr<TSS2_TCTI_CONTEXT, TctiCloser> tcti_;
    std::unique_ptr<ESYS_CONTEXT, EsysCloser> esys_;
    std::uint32_t index_;
    ESYS_TR nv_{ESYS_TR_NONE};
};

// Connects and opens the (existing) index.
Result<Connection> attached(const std::string& tcti, std::uint32_t index) {
    auto c = Connection::connect(tcti, index);
    if (!c) return c.error();
    if (auto s = c->attach(); !s) return s.error();
    return c;
}

}  // namespace

Result<std::unique_ptr<TpmNvCounter>> TpmNvCounter::open(std::string tcti, std::uint32_t nv_index,
                                                         bool define_if_missing) {
    auto c = Connection::connect(tcti, nv_index);
    if (!c) return c.error();
    auto defined = c->defined();
    if (!defined) return defined.error();
    if (!*defined) {
        if (!define_if_missing) {
            return make_error(ErrorCode::storage,
                              c->prefix() + " is not defined in the TPM at '" + tcti +
                                  "': it is defined when the store is created (factory-init or the daemon's first "
                                  "start); an existing store without it was created without [tpm], or the TPM was "
                                  "cleared");
        }
        if (auto s = c->define(); !s) return s.error();
    } else if (auto s = c->attach(); !s) {
        return s.error();
    }
    auto written = c->check_public();
    if (!written) return written.error();
    // A counter cannot be read before its first increment (TPM_RC_NV_UNINITIALIZED).
    // Raising a counter never weakens it, so this is done whoever defined it.
    if (!*written) {
        if (auto s = c->increment(); !s) return s.error();
    }
    if (auto v = c->value(); !v) return v.error();
    return std::unique_ptr<TpmNvCounter>(new TpmNvCounter(std::move(tcti), nv_index));
}

Result<std::optional<std::uint64_t>> TpmNvCounter::read() {
    auto c = attached(tcti_, nv_index_);
    if (!c) return c.error();
    auto v = c->value();
    if (!v) return v.error();
    return std::optional<std::uint64_t>(*v);
}

Status TpmNvCounter::advance_to(std::uint64_t value) {
    auto c = attached(tcti_, nv_index_);
    if (!c) return c.error();
    auto current = c->value();
    if (!current) return current.error();
    if (*current >= value) return {};
    if (value - *current > kMaxSteps) {
        return make_error(ErrorCode::storage, c->prefix() + " is at " + std::to_string(*current) +
                                                  ", far below the store's generation " + std::to_string(value) +
                                                  ": refusing to increment it " + std::to_string(value - *current) +
                                                  " times (is [tpm] nv_index the store's own index?)");
    }
    for (std::uint64_t step = 0; *current < value; ++step) {
        if (step == kMaxSteps) {
            return make_error(ErrorCode::storage, c->prefix() + " does not reach " + std::to_string(value) +
                                                      " after " + std::to_string(kMaxSteps) + " increments");
        }
        if (auto s = c->increment(); !s) return s;
        current = c->value();
        if (!current) return current.error();
    }
    return {};
}

}  // namespace credprov::agent
