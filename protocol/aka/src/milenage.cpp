// Milenage f1..f5* (3GPP TS 35.206 4.1) over the AES-128 kernel of
// aes128_block.cpp. Every intermediate block is a WipedArray; outputs go to
// wiped types. Never logs and never branches on secret data.
#include "credprov/aka/milenage.hpp"

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "aes128_block.hpp"

namespace credprov::aka::milenage {
namespace {

using detail::Block;
using detail::ConstBlock;
using detail::kBlockBytes;
using TempBlock = WipedArray<kBlockBytes>;

// The constants of TS 35.206 4.1: rotations r1..r5 in bits and the last octet
// of c1..c5 (all other octets of c_i are zero).
constexpr unsigned kR1 = 64, kR2 = 0, kR3 = 32, kR4 = 64, kR5 = 96;
constexpr std::uint8_t kC1 = 0x00, kC2 = 0x01, kC3 = 0x02, kC4 = 0x04, kC5 = 0x08;

// out = rot(in, r): cyclic left rotation by r bits, r a multiple of 8.
void rotate_left(ConstBlock in, unsigned r_bits, Block out) noexcept {
    const std::size_t shift = (r_bits / 8) % kBlockBytes;
    for (std::size_t i = 0; i < kBlockBytes; ++i) out[i] = in[(i + shift) % kBlockBytes];
}

// The kernel E_K keyed once, plus OPc: what every f-function needs.
class Kernel {
public:
    explicit Kernel(const SubscriberKeys& keys) : aes_(keys.k().span()), opc_(keys.opc().span()) {}

    // TEMP = E_K(RAND xor OPc)
    void temp(const Rand& rand, Block out) {
        TempBlock in;
        for (std::size_t i = 0; i < kBlockBytes; ++i) in.span()[i] = rand.bytes[i] ^ opc_[i];
        aes_.encrypt(in.span(), out);
    }

    // OUT1 = E_K(TEMP xor rot(IN1 xor OPc, r1) xor c1) xor OPc,
    // IN1 = SQN || AMF || SQN || AMF.
    void out1(ConstBlock temp, Sqn sqn, const Amf& amf, Block out) {
        TempBlock in1;
        const auto sqn_bytes = sqn.to_bytes();
        auto* p = in1.data();
        for (int half = 0; half < 2; ++half) {
            p = std::copy(sqn_bytes.begin(), sqn_bytes.end(), p);
            p = std::copy(amf.bytes.begin(), amf.bytes.end(), p);
        }
        for (std::size_t i = 0; i < kBlockBytes; ++i) in1.span()[i] ^= opc_[i];
        TempBlock rotated;
        rotate_left(in1.span(), kR1, rotated.span());
        for (std::size_t i = 0; i < kBlockBytes; ++i) rotated.span()[i] ^= temp[i];
        rotated.span()[kBlockBytes - 1] ^= kC1;
        finish(rotated.span(), out);
    }

    // OUTn = E_K(rot(TEMP xor OPc, rn) xor cn) xor OPc, n = 2..5.
    void out_n(ConstBlock temp, unsigned r_bits, std::uint8_t c_last, Block out) {
        TempBlock masked;
        for (std::size_t i = 0; i < kBlockBytes; ++i) masked.span()[i] = temp[i] ^ opc_[i];
        TempBlock rotated;
        rotate_left(masked.span(), r_bits, rotated.span());
        rotated.span()[kBlockBytes - 1] ^= c_last;
        finish(rotated.span(), out);
    }

private:
    // out = E_K(in) xor OPc
    void finish(ConstBlock in, Block out) {
        aes_.encrypt(in, out);
        for (std::size_t i = 0; i < kBlockBytes; ++i) out[i] ^= opc_[i];
    }

    detail::Aes128Block aes_;
    std::span<const std::uint8_t, kBlockBytes> opc_;
};

template <std::size_t N>
void take(ConstBlock from, std::size_t offset, std::span<std::uint8_t, N> to) noexcept {
    std::copy_n(from.begin() + static_cast<std::ptrdiff_t>(offset), N, to.begin());
}

void compute_out1(const SubscriberKeys& keys, const Rand& rand, Sqn sqn, const Amf& amf, Block out) {
    Kernel kernel(keys);
    TempBlock temp;
    kernel.temp(rand, temp.span());
    kernel.out1(temp.span(), sqn, amf, out);
}

void compute_out_n(const SubscriberKeys& keys, const Rand& rand, unsigned r_bits, std::uint8_t c_last, Block out) {
    Kernel kernel(keys);
    TempBlock temp;
    kernel.temp(rand, temp.span());
    kernel.out_n(temp.span(), r_bits, c_last, out);
}

}  // namespace

MacA f1(const SubscriberKeys& keys, const Rand& rand, Sqn sqn, const Amf& amf) {
    TempBlock out1;
    compute_out1(keys, rand, sqn, amf, out1.span());
    MacA mac;
    take(out1.span(), 0, std::span(mac.bytes));  // OUT1[0..63]
    return mac;
}

MacS f1_star(const SubscriberKeys& keys, const Rand& rand, Sqn sqn, const Amf& amf) {
    TempBlock out1;
    compute_out1(keys, rand, sqn, amf, out1.span());
    MacS mac;
    take(out1.span(), 8, std::span(mac.bytes));  // OUT1[64..127]
    return mac;
}

Res f2(const SubscriberKeys& keys, const Rand& rand) {
    TempBlock out2;
    compute_out_n(keys, rand, kR2, kC2, out2.span());
    Res res;
    take(out2.span(), 8, res.span());  // OUT2[64..127]
    return res;
}

Ck f3(const SubscriberKeys& keys, const Rand& rand) {
    TempBlock out3;
    compute_out_n(keys, rand, kR3, kC3, out3.span());
    Ck ck;
    take(out3.span(), 0, ck.span());
    return ck;
}

Ik f4(const SubscriberKeys& keys, const Rand& rand) {
    TempBlock out4;
    compute_out_n(keys, rand, kR4, kC4, out4.span());
    Ik ik;
    take(out4.span(), 0, ik.span());
    return ik;
}

Ak f5(const SubscriberKeys& keys, const Rand& rand) {
    TempBlock out2;
    compute_out_n(keys, rand, kR2, kC2, out2.span());
    Ak ak;
    take(out2.span(), 0, ak.span());  // OUT2[0..47]
    return ak;
}

AkStar f5_star(const SubscriberKeys& keys, const Rand& rand) {
    TempBlock out5;
    compute_out_n(keys, rand, kR5, kC5, out5.span());
    AkStar ak;
    take(out5.span(), 0, ak.span());  // OUT5[0..47]
    return ak;
}

F2345 f2345(const SubscriberKeys& keys, const Rand& rand) {
    Kernel kernel(keys);
    TempBlock temp;
    kernel.temp(rand, temp.span());
    F2345 out;
    TempBlock block;
    kernel.out_n(temp.span(), kR2, kC2, block.span());
    take(block.span(), 8, out.res.span());
    take(block.span(), 0, out.ak.span());
    kernel.out_n(temp.span(), kR3, kC3, block.span());
    take(block.span(), 0, out.ck.span());
    kernel.out_n(temp.span(), kR4, kC4, block.span());
    take(block.span(), 0, out.ik.span());
    return out;
}

}  // namespace credprov::aka::milenage
