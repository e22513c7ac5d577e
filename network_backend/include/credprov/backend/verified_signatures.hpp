// A bounded set of signatures this process has already seen verify, named by
// a hash of everything the verification covered (key, message, signature).
// A later check of exactly the same triple is answered from the set: the
// device's box-key signature comes with every bundle request for a device
// whose inventory import already verified it, and each Ed25519 verification
// costs about 66 µs. Anything not in the set is verified as before, so a
// wrong signature is never accepted. Full: emptied and filled again.
// Thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <mutex>
#include <set>

#include "credprov/protocol/bytes.hpp"

namespace credprov::backend {

class VerifiedSignatures {
public:
    using Name = ByteArray<32>;
    explicit VerifiedSignatures(std::size_t capacity = 65536) : capacity_(capacity) {}

    // The name of one verification: a hash of its inputs, in order.
    [[nodiscard]] static Name name_of(std::initializer_list<ByteView> inputs);

    [[nodiscard]] bool contains(const Name& n) const {
        std::lock_guard lock(mutex_);
        return names_.count(n) != 0;
    }
    void insert(const Name& n) {
        std::lock_guard lock(mutex_);
        if (names_.size() >= capacity_) names_.clear();
        names_.insert(n);
    }
    [[nodiscard]] std::size_t size() const {
        std::lock_guard lock(mutex_);
        return names_.size();
    }

private:
    std::size_t capacity_;
    mutable std::mutex mutex_;
    std::set<Name> names_;
};

}  // namespace credprov::backend
