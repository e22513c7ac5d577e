// Self-wiping containers for key material.
//
// Secret<N>: a fixed-size secret in sodium_malloc'd guarded memory (guard
// pages, mlock'd, wiped on release). Move-only. Use it for keys that live
// longer than one function: identity keys, session keys, the ISK. Released
// blocks are wiped and kept for reuse (GuardedPool below), so a server that
// opens keys per request does not pay sodium_malloc's system calls each time.
//
// InlineSecret<N>: a movable fixed-size secret stored inline (stack or
// enclosing object), wiped on destruction and when moved from. For per-session
// and per-computation values (CPace scalar, generator, K, ISK, MAC and channel
// keys) whose lifetime is one session: guarded pages would cost eight system
// calls each, more than the primitives they hold keys for (see
// docs/decisions/0003-secret-memory.md).
//
// WipedArray<N>: a stack array that wipes itself on scope exit, for short-lived
// temporaries inside one computation (as libsodium itself does internally);
// guarded pages cost two mprotect calls each, too much per temporary.
//
// SecretBytes: variable-length secret (setup codes, decrypted payloads) on the
// heap, wiped with sodium_memzero before release.
//
// None of these types is printable, and none may ever be logged.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <new>
#include <span>
#include <utility>
#include <vector>

#include <sodium.h>

namespace credprov {

// sodium_malloc needs an initialised libsodium; so does everything else.
inline void ensure_sodium() {
    static const int rc = sodium_init();
    if (rc < 0) std::abort();  // no entropy source: nothing here can be safe
}

namespace detail {

// Guarded blocks of N bytes, wiped when released and kept (up to kKeep) for
// the next Secret<N>. sodium_malloc and sodium_free cost about eight system
// calls (mmap, mprotect of the guard pages, mlock; munlock, munmap), and each
// mprotect or munmap interrupts the other cores to flush their TLBs: in the
// backend, which opens K and OPc per request, that was a fifth of its CPU. A
// reused block keeps its guard pages and its lock; only zeros are kept.
template <std::size_t N>
class GuardedPool {
public:
    static std::uint8_t* acquire() {
        GuardedPool& pool = instance();
        {
            std::lock_guard lock(pool.mutex_);
            if (!pool.free_.empty()) {
                std::uint8_t* block = pool.free_.back();
                pool.free_.pop_back();
                return block;
            }
        }
        ensure_sodium();
        auto* block = static_cast<std::uint8_t*>(sodium_malloc(N));
        if (block == nullptr) throw std::bad_alloc();
        sodium_memzero(block, N);
        return block;
    }
    static void release(std::uint8_t* block) noexcept {
        if (block == nullptr) return;
        sodium_memzero(block, N);
        GuardedPool& pool = instance();
        {
            std::lock_guard lock(pool.mutex_);
            if (pool.free_.size() < kKeep) {
                pool.free_.push_back(block);  // capacity reserved: never allocates
                return;
            }
        }
        sodium_free(block);
    }
    [[nodiscard]] static std::size_t kept() {
        GuardedPool& pool = instance();
        std::lock_guard lock(pool.mutex_);
        return pool.free_.size();
    }
    static constexpr std::size_t kKeep = 256;

private:
    GuardedPool() { free_.reserve(kKeep); }
    // Never destroyed: a Secret in a static may be released after this
    // pool's destructor would have run.
    static GuardedPool& instance() {
        static GuardedPool* pool = new GuardedPool();
        return *pool;
    }
    std::mutex mutex_;
    std::vector<std::uint8_t*> free_;
};

}  // namespace detail

template <std::size_t N>
class Secret {
public:
    Secret() : p_(detail::GuardedPool<N>::acquire()) {}
    explicit Secret(std::span<const std::uint8_t, N> src) : Secret() {
        std::copy(src.begin(), src.end(), p_);
    }
    ~Secret() { detail::GuardedPool<N>::release(p_); }
    Secret(const Secret&) = delete;
    Secret& operator=(const Secret&) = delete;
    Secret(Secret&& o) noexcept : p_(std::exchange(o.p_, nullptr)) {}
    Secret& operator=(Secret&& o) noexcept {
        if (this != &o) { detail::GuardedPool<N>::release(p_); p_ = std::exchange(o.p_, nullptr); }
        return *this;
    }

    static constexpr std::size_t size() noexcept { return N; }
    [[nodiscard]] std::uint8_t* data() noexcept { return p_; }
    [[nodiscard]] const std::uint8_t* data() const noexcept { return p_; }
    [[nodiscard]] std::span<std::uint8_t, N> span() noexcept { return std::span<std::uint8_t, N>(p_, N); }
    [[nodiscard]] std::span<const std::uint8_t, N> span() const noexcept {
        return std::span<const std::uint8_t, N>(p_, N);
    }
    void wipe() noexcept { if (p_ != nullptr) sodium_memzero(p_, N); }
    [[nodiscard]] bool valid() const noexcept { return p_ != nullptr; }

private:
    std::uint8_t* p_;
};

template <std::size_t N>
class InlineSecret {
public:
    InlineSecret() noexcept = default;
    explicit InlineSecret(std::span<const std::uint8_t, N> src) noexcept { std::copy(src.begin(), src.end(), a_.begin()); }
    ~InlineSecret() { sodium_memzero(a_.data(), N); }
    InlineSecret(const InlineSecret&) = delete;
    InlineSecret& operator=(const InlineSecret&) = delete;
    InlineSecret(InlineSecret&& o) noexcept : a_(o.a_) { sodium_memzero(o.a_.data(), N); }
    InlineSecret& operator=(InlineSecret&& o) noexcept {
        if (this != &o) { a_ = o.a_; sodium_memzero(o.a_.data(), N); }
        return *this;
    }

    static constexpr std::size_t size() noexcept { return N; }
    [[nodiscard]] std::uint8_t* data() noexcept { return a_.data(); }
    [[nodiscard]] const std::uint8_t* data() const noexcept { return a_.data(); }
    [[nodiscard]] std::span<std::uint8_t, N> span() noexcept { return a_; }
    [[nodiscard]] std::span<const std::uint8_t, N> span() const noexcept { return a_; }
    void wipe() noexcept { sodium_memzero(a_.data(), N); }
    [[nodiscard]] bool valid() const noexcept { return true; }

private:
    std::array<std::uint8_t, N> a_{};
};

template <std::size_t N>
class WipedArray {
public:
    WipedArray() noexcept = default;
    ~WipedArray() { sodium_memzero(a_.data(), N); }
    WipedArray(const WipedArray&) = delete;
    WipedArray& operator=(const WipedArray&) = delete;
    WipedArray(WipedArray&&) = delete;
    WipedArray& operator=(WipedArray&&) = delete;

    static constexpr std::size_t size() noexcept { return N; }
    [[nodiscard]] std::uint8_t* data() noexcept { return a_.data(); }
    [[nodiscard]] const std::uint8_t* data() const noexcept { return a_.data(); }
    [[nodiscard]] std::span<std::uint8_t, N> span() noexcept { return a_; }
    [[nodiscard]] std::span<const std::uint8_t, N> span() const noexcept { return a_; }

private:
    std::array<std::uint8_t, N> a_{};
};

class SecretBytes {
public:
    SecretBytes() = default;
    explicit SecretBytes(std::size_t n) : v_(n, 0) {}
    SecretBytes(const std::uint8_t* p, std::size_t n) : v_(p, p + n) {}
    ~SecretBytes() { wipe(); }
    SecretBytes(const SecretBytes&) = delete;
    SecretBytes& operator=(const SecretBytes&) = delete;
    SecretBytes(SecretBytes&& o) noexcept : v_(std::move(o.v_)) { o.v_.clear(); }
    SecretBytes& operator=(SecretBytes&& o) noexcept {
        if (this != &o) { wipe(); v_ = std::move(o.v_); o.v_.clear(); }
        return *this;
    }

    [[nodiscard]] std::size_t size() const noexcept { return v_.size(); }
    [[nodiscard]] bool empty() const noexcept { return v_.empty(); }
    [[nodiscard]] std::uint8_t* data() noexcept { return v_.data(); }
    [[nodiscard]] const std::uint8_t* data() const noexcept { return v_.data(); }
    [[nodiscard]] std::span<const std::uint8_t> view() const noexcept { return v_; }
    // Shrinks without reallocating, wiping the cut-off tail.
    void truncate(std::size_t n) noexcept {
        if (n < v_.size()) { sodium_memzero(v_.data() + n, v_.size() - n); v_.resize(n); }
    }
    void wipe() noexcept {
        if (!v_.empty()) sodium_memzero(v_.data(), v_.size());
        v_.clear();
        v_.shrink_to_fit();
    }

private:
    std::vector<std::uint8_t> v_;
};

}  // namespace credprov
