// Known-answer tests for the libsodium wrappers (RFC 4231 HMAC-SHA-512) and
// the HKDF construction on top of it.
#include <doctest/doctest.h>

#include <algorithm>

#include "credprov/protocol/crypto.hpp"
#include "credprov/protocol/secret.hpp"

using namespace credprov;

namespace {
Bytes hex(std::string_view s) {
    Bytes b;
    REQUIRE(from_hex(s, b));
    return b;
}
}  // namespace

TEST_CASE("RFC 4231 4.2 test case 1: HMAC-SHA-512") {
    const Bytes key(20, 0x0b);
    std::array<std::uint8_t, 64> mac{};
    crypto::hmac_sha512(key, as_bytes("Hi There"), mac);
    CHECK(to_hex(mac) ==
          "87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde"
          "daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854");
}

TEST_CASE("RFC 4231 4.3 test case 2: HMAC-SHA-512 with a short key") {
    std::array<std::uint8_t, 64> mac{};
    crypto::hmac_sha512(as_bytes("Jefe"), as_bytes("what do ya want for nothing?"), mac);
    CHECK(to_hex(mac) ==
          "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554"
          "9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737");
}

TEST_CASE("HKDF-SHA-512 expand is the RFC 5869 chain T(1) || T(2) ...") {
    const Bytes ikm = hex("0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b0b");
    const Bytes salt = hex("000102030405060708090a0b0c");
    const Bytes info = hex("f0f1f2f3f4f5f6f7f8f9");
    std::array<std::uint8_t, 64> prk{};
    crypto::hkdf_extract(salt, ikm, prk);
    std::array<std::uint8_t, 64> expected_prk{};
    crypto::hmac_sha512(salt, ikm, expected_prk);
    CHECK(prk == expected_prk);

    std::array<std::uint8_t, 100> okm{};
    crypto::hkdf_expand(prk, info, okm);
    // T(1) = HMAC(PRK, info || 0x01); T(2) = HMAC(PRK, T(1) || info || 0x02)
    Bytes in1 = info;
    in1.push_back(1);
    std::array<std::uint8_t, 64> t1{};
    crypto::hmac_sha512(prk, in1, t1);
    Bytes in2(t1.begin(), t1.end());
    append(in2, info);
    in2.push_back(2);
    std::array<std::uint8_t, 64> t2{};
    crypto::hmac_sha512(prk, in2, t2);
    CHECK(std::equal(okm.begin(), okm.begin() + 64, t1.begin()));
    CHECK(std::equal(okm.begin() + 64, okm.end(), t2.begin()));
}

TEST_CASE("signatures are bound to their context string") {
    auto key = crypto::generate_signing_key();
    const auto sig = crypto::sign(key, "credprov/v1 test-a", as_bytes("message"));
    CHECK(crypto::verify(key.public_key, "credprov/v1 test-a", as_bytes("message"), sig).ok());
    const auto other = crypto::verify(key.public_key, "credprov/v1 test-b", as_bytes("message"), sig);
    REQUIRE_FALSE(other.ok());
    CHECK(other.error().code == ErrorCode::bad_signature);
    CHECK_FALSE(crypto::verify(key.public_key, "credprov/v1 test-a", as_bytes("messagf"), sig).ok());
}

TEST_CASE("AEAD rejects a modified ciphertext, nonce or associated data") {
    std::array<std::uint8_t, 32> key{};
    crypto::random_bytes(key);
    std::array<std::uint8_t, 12> nonce{};
    const Bytes ct = crypto::aead_encrypt(key, nonce, as_bytes("ad"), as_bytes("secret payload"));
    auto pt = crypto::aead_decrypt(key, nonce, as_bytes("ad"), ct);
    REQUIRE(pt.ok());
    CHECK(std::string(pt->view().begin(), pt->view().end()) == "secret payload");

    Bytes bad = ct;
    bad[0] ^= 1;
    CHECK(crypto::aead_decrypt(key, nonce, as_bytes("ad"), bad).error().code == ErrorCode::auth_failed);
    CHECK_FALSE(crypto::aead_decrypt(key, nonce, as_bytes("ae"), ct).ok());
    nonce[11] = 1;
    CHECK_FALSE(crypto::aead_decrypt(key, nonce, as_bytes("ad"), ct).ok());
    CHECK(crypto::aead_decrypt(key, nonce, as_bytes("ad"), ByteView(ct).first(10)).error().code ==
          ErrorCode::malformed);
}

TEST_CASE("a released Secret's guarded block is wiped, then reused with nothing of its old contents") {
    const std::uint8_t* first = nullptr;
    {
        Secret<24> a;
        std::fill(a.data(), a.data() + a.size(), std::uint8_t{0xab});
        first = a.data();
    }
    Secret<24> b;
    CHECK(b.data() == first);  // the same block, its guard pages and lock kept
    CHECK(std::all_of(b.data(), b.data() + b.size(), [](std::uint8_t x) { return x == 0; }));

    // A moved-from Secret releases nothing; the pool keeps a bounded number.
    Secret<24> c(std::move(b));
    CHECK_FALSE(b.valid());
    std::vector<Secret<23>> many(detail::GuardedPool<23>::kKeep + 10);
    many.clear();
    CHECK(detail::GuardedPool<23>::kept() == detail::GuardedPool<23>::kKeep);
}
