// Hex and constant-time helpers for public byte strings.
#include "credprov/protocol/bytes.hpp"

#include <sodium.h>

namespace credprov {

std::string to_hex(ByteView data) {
    std::string out(data.size() * 2 + 1, '\0');
    sodium_bin2hex(out.data(), out.size(), data.data(), data.size());
    out.pop_back();
    return out;
}

bool from_hex(std::string_view hex, Bytes& out) {
    if (hex.size() % 2 != 0) return false;
    out.assign(hex.size() / 2, 0);
    std::size_t written = 0;
    const char* end = nullptr;
    if (sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &written, &end) != 0 ||
        written != out.size() || end != hex.data() + hex.size()) {
        out.clear();
        return false;
    }
    return true;
}

bool ct_equal(ByteView a, ByteView b) noexcept {
    if (a.size() != b.size()) return false;
    if (a.empty()) return true;
    return sodium_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace credprov
