// VerifiedSignatures (see verified_signatures.hpp).
#include "credprov/backend/verified_signatures.hpp"

#include <algorithm>

#include "credprov/protocol/crypto.hpp"

namespace credprov::backend {

VerifiedSignatures::Name VerifiedSignatures::name_of(std::initializer_list<ByteView> inputs) {
    const auto h = crypto::sha512(inputs);
    Name n{};
    std::copy_n(h.begin(), n.size(), n.begin());
    return n;
}

}  // namespace credprov::backend
