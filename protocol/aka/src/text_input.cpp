// Hex parsing of AKA parameters (text_input.hpp). Messages name the field and
// the expected length, never the input. Key hex is decoded into wiped memory.
#include "credprov/aka/text_input.hpp"

#include <algorithm>
#include <string>

#include <sodium.h>

namespace credprov::aka {
namespace {

Error wrong_field(std::string_view field, std::size_t octets) {
    return make_error(ErrorCode::malformed,
                      std::string(field) + " must be " + std::to_string(octets * 2) + " hex digits");
}

template <std::size_t N>
bool parse_public(std::string_view hex, ByteArray<N>& out) {
    Bytes decoded;
    if (hex.size() != N * 2 || !from_hex(hex, decoded)) return false;
    std::copy(decoded.begin(), decoded.end(), out.begin());
    return true;
}

template <class T>
Result<T> parse_fixed(std::string_view hex, std::string_view field) {
    T value{};
    if (!parse_public(hex, value.bytes)) return wrong_field(field, T::kBytes);
    return value;
}

// Decodes secret hex without an intermediate std::vector (sodium_hex2bin is
// constant time in the digits).
bool parse_secret(std::string_view hex, std::span<std::uint8_t, SubscriberKeys::kKeyBytes> out) {
    std::size_t written = 0;
    const char* end = nullptr;
    const bool ok = hex.size() == out.size() * 2 &&
                    sodium_hex2bin(out.data(), out.size(), hex.data(), hex.size(), nullptr, &written, &end) == 0 &&
                    written == out.size() && end == hex.data() + hex.size();
    if (!ok) sodium_memzero(out.data(), out.size());  // a failed parse leaves nothing behind
    return ok;
}

template <class Make>
Result<SubscriberKeys> parse_keys(std::string_view k_hex, std::string_view second_hex, std::string_view second_name,
                                  Make make) {
    WipedArray<SubscriberKeys::kKeyBytes> k;
    WipedArray<SubscriberKeys::kKeyBytes> second;
    if (!parse_secret(k_hex, k.span())) return wrong_field("K", SubscriberKeys::kKeyBytes);
    if (!parse_secret(second_hex, second.span())) return wrong_field(second_name, SubscriberKeys::kKeyBytes);
    return make(k.span(), second.span());
}

}  // namespace

Result<Rand> parse_rand(std::string_view hex) { return parse_fixed<Rand>(hex, "RAND"); }
Result<Autn> parse_autn(std::string_view hex) { return parse_fixed<Autn>(hex, "AUTN"); }
Result<Auts> parse_auts(std::string_view hex) { return parse_fixed<Auts>(hex, "AUTS"); }
Result<Amf> parse_amf(std::string_view hex) { return parse_fixed<Amf>(hex, "AMF"); }

Result<Sqn> parse_sqn(std::string_view hex) {
    ByteArray<Sqn::kBytes> bytes{};
    if (!parse_public(hex, bytes)) return wrong_field("SQN", Sqn::kBytes);
    return Sqn::from_bytes(bytes);
}

Result<SubscriberKeys> parse_keys_with_opc(std::string_view k_hex, std::string_view opc_hex) {
    return parse_keys(k_hex, opc_hex, "OPc", [](auto k, auto opc) { return SubscriberKeys::from_k_and_opc(k, opc); });
}

Result<SubscriberKeys> parse_keys_with_op(std::string_view k_hex, std::string_view op_hex) {
    return parse_keys(k_hex, op_hex, "OP", [](auto k, auto op) { return SubscriberKeys::from_k_and_op(k, op); });
}

}  // namespace credprov::aka
