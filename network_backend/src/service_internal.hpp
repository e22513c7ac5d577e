// Helpers shared by the service's translation units. Internal.
#pragma once

#include <algorithm>
#include <string>

#include <nlohmann/json.hpp>

#include "credprov/backend/encoding.hpp"
#include "credprov/backend/service.hpp"
#include "credprov/protocol/bytes.hpp"

namespace credprov::backend::detail {

[[nodiscard]] std::string random_id(std::string_view prefix);  // prefix + 16 random bytes in hex
[[nodiscard]] nlohmann::json operations_json(const std::vector<Operation>& ops);
[[nodiscard]] std::string operations_text(const std::vector<Operation>& ops);   // stored form "1,2,6"
[[nodiscard]] std::vector<Operation> operations_from_text(const std::string& s);
[[nodiscard]] bool fits_prefix(const Provisioner& p, const DeviceId& d);
[[nodiscard]] inline bool enrolled_for(const Provisioner& p, Operation op) {
    return std::find(p.operations.begin(), p.operations.end(), op) != p.operations.end();
}
// Reads a fixed-size key stored as hex; false if malformed.
template <std::size_t N>
bool key_from_hex(const std::string& hex, ByteArray<N>& out) {
    Bytes b;
    if (!from_hex(hex, b) || b.size() != N) return false;
    std::copy(b.begin(), b.end(), out.begin());
    return true;
}

inline Reply bad_request(const std::string& detail) {
    return Reply::problem(400, "invalid-request", "The request is not valid", detail);
}
inline Reply not_found(std::string_view what) {
    return Reply::problem(404, "not-found", "Not found", std::string(what) + " does not exist");
}

}  // namespace credprov::backend::detail
