// AKA self-check diagnostic: Milenage on 3GPP TS 35.208 test set 1 (public
// test data, no device secret), compared in constant time.
#include "credprov/agent/aka_check.hpp"

#include "credprov/aka/milenage.hpp"

namespace credprov::agent {

namespace {
template <std::size_t N>
ByteArray<N> hex_array(std::string_view hex) {
    Bytes b;
    ByteArray<N> out{};
    if (from_hex(hex, b) && b.size() == N) std::copy(b.begin(), b.end(), out.begin());
    return out;
}
}  // namespace

Status aka_self_check() {
    // TS 35.208 section 4.3, test set 1.
    const auto k = hex_array<16>("465b5ce8b199b49faa5f0a2ee238a6bc");
    const auto op = hex_array<16>("cdc202d5123e20f62b6d676ac72cb318");
    aka::Rand rand;
    rand.bytes = hex_array<16>("23553cbe9637a89d218ae64dae47bf35");
    aka::Amf amf;
    amf.bytes = hex_array<2>("b9b9");
    const auto sqn = aka::Sqn::from_bytes(hex_array<6>("ff9bb4d0b607"));
    const auto keys = aka::SubscriberKeys::from_k_and_op(k, op);
    const auto mac = aka::milenage::f1(keys, rand, sqn, amf);
    const auto out = aka::milenage::f2345(keys, rand);
    const bool ok = ct_equal(mac.bytes, hex_array<8>("4a9ffac354dfafb3")) &&
                    ct_equal(out.res.span(), hex_array<8>("a54211d5e3ba50bf")) &&
                    ct_equal(out.ck.span(), hex_array<16>("b40ba9a3c58b2a05bbf0d987b21bf8cb")) &&
                    ct_equal(out.ik.span(), hex_array<16>("f769bcd751044604127672711c6d3441")) &&
                    ct_equal(out.ak.span(), hex_array<6>("aa689c648370"));
    if (!ok) return make_error(ErrorCode::crypto, "Milenage does not reproduce TS 35.208 test set 1");
    return {};
}

}  // namespace credprov::agent
