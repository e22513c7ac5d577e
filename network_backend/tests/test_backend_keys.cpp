// Key files, the data key and provisioner request signatures.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>

#include "credprov/backend/keys.hpp"
#include "credprov/backend/request_auth.hpp"
#include "credprov/backend/verified_signatures.hpp"

using namespace credprov;
using namespace credprov::backend;

namespace {

std::filesystem::path temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "credprov-keys-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    return tmpl;
}

bool same(const Secret<32>& a, const Secret<32>& b) { return ct_equal(ByteView(a.data(), 32), ByteView(b.data(), 32)); }

}  // namespace

TEST_CASE("key file: written 0600, read back, never overwritten") {
    const auto dir = temp_dir();
    const auto path = dir / "operator.key";
    const KeySeeds seeds = KeySeeds::random();
    REQUIRE(write_key_file(path, seeds).ok());
    struct stat st {};
    REQUIRE(::stat(path.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
    auto back = read_key_file(path);
    REQUIRE(back.ok());
    CHECK(same(back->sign, seeds.sign));
    CHECK(same(back->box, seeds.box));
    CHECK_FALSE(write_key_file(path, KeySeeds::random()).ok());
    auto still = read_key_file(path);
    REQUIRE(still.ok());
    CHECK(same(still->sign, seeds.sign));
    std::filesystem::remove_all(dir);
}

TEST_CASE("key file: passphrase protection (Argon2id), wrong or missing passphrase refused") {
    const auto dir = temp_dir();
    const auto path = dir / "operator.key";
    const KeySeeds seeds = KeySeeds::random();
    REQUIRE(write_key_file(path, seeds, "correct horse battery staple").ok());
    // The seeds are not in the file in the clear.
    std::ifstream in(path, std::ios::binary);
    const std::string raw((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(raw.find(std::string(reinterpret_cast<const char*>(seeds.sign.data()), 32)) == std::string::npos);
    auto ok = read_key_file(path, "correct horse battery staple");
    REQUIRE(ok.ok());
    CHECK(same(ok->sign, seeds.sign));
    auto wrong = read_key_file(path, "Tr0ub4dor&3");
    REQUIRE_FALSE(wrong.ok());
    CHECK(wrong.error().code == ErrorCode::auth_failed);
    CHECK(wrong.error().message.find("Tr0ub4dor") == std::string::npos);
    auto none = read_key_file(path);
    REQUIRE_FALSE(none.ok());
    CHECK(none.error().message.find("passphrase") != std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("key file: group- or world-readable, truncated or foreign files are refused") {
    const auto dir = temp_dir();
    const auto path = dir / "operator.key";
    REQUIRE(write_key_file(path, KeySeeds::random()).ok());
    std::filesystem::permissions(path, std::filesystem::perms::group_read, std::filesystem::perm_options::add);
    auto open = read_key_file(path);
    REQUIRE_FALSE(open.ok());
    CHECK(open.error().message.find("chmod 600") != std::string::npos);
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    std::filesystem::resize_file(path, 30);
    CHECK_FALSE(read_key_file(path).ok());
    const auto other = dir / "other.key";
    { std::ofstream(other) << "-----BEGIN PRIVATE KEY-----\n"; }
    std::filesystem::permissions(other, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    auto foreign = read_key_file(other);
    REQUIRE_FALSE(foreign.ok());
    CHECK(foreign.error().code == ErrorCode::malformed);
    CHECK_FALSE(read_key_file(dir / "missing.key").ok());
    std::filesystem::remove_all(dir);
}

TEST_CASE("data key: K and OPc at rest, bound to their IMSI") {
    const auto dir = temp_dir();
    REQUIRE(DataKey::create(dir / "data.key").ok());
    auto key = DataKey::load(dir / "data.key");
    REQUIRE(key.ok());
    const SubscriberKeys keys = SubscriberKeys::random();
    const std::string sealed = key->seal("001010000000001", keys);
    CHECK(sealed.find(to_hex(ByteView(keys.k.data(), 16))) == std::string::npos);
    CHECK(key->seal("001010000000001", keys) != sealed);  // a fresh nonce every time
    auto back = key->open("001010000000001", sealed);
    REQUIRE(back.ok());
    CHECK(ct_equal(ByteView(back->k.data(), 16), ByteView(keys.k.data(), 16)));
    CHECK(ct_equal(ByteView(back->opc.data(), 16), ByteView(keys.opc.data(), 16)));
    // Moved to another subscriber's row, or under another data key: refused.
    CHECK_FALSE(key->open("001010000000002", sealed).ok());
    CHECK_FALSE(DataKey::random().open("001010000000001", sealed).ok());
    CHECK_FALSE(key->open("001010000000001", sealed.substr(0, 20)).ok());
    std::filesystem::remove_all(dir);
}

TEST_CASE("request signature: header round trip, and every tampering detected") {
    const auto key = crypto::generate_signing_key();
    const std::string body = R"({"device_id":"x"})";
    const std::string header = sign_request(key, "POST", "/v1/tokens", 1'800'000'000, body);
    auto parsed = parse_signature_header(header);
    REQUIRE(parsed.ok());
    CHECK(parsed->key == key.public_key);
    CHECK(parsed->timestamp == 1'800'000'000);
    CHECK(verify_request(*parsed, "POST", "/v1/tokens", body).ok());
    CHECK_FALSE(verify_request(*parsed, "POST", "/v1/tokens", body + " ").ok());
    CHECK_FALSE(verify_request(*parsed, "POST", "/v1/bundles", body).ok());
    CHECK_FALSE(verify_request(*parsed, "GET", "/v1/tokens", body).ok());
    RequestSignature later = *parsed;
    later.timestamp += 1;
    CHECK_FALSE(verify_request(later, "POST", "/v1/tokens", body).ok());
    for (const std::string& bad : {std::string("Bearer abc"), std::string("Credprov-Signature"),
                                  std::string("Credprov-Signature key=00"), header + ", ts=1",
                                  std::string("Credprov-Signature key=") + std::string(64, 'g') + ", ts=1, sig=" + std::string(128, '0'),
                                  std::string("Credprov-Signature ") + std::string(500, 'a')}) {
        CAPTURE(bad);
        CHECK_FALSE(parse_signature_header(bad).ok());
    }
}

TEST_CASE("verified signatures: a name per exact input, bounded, emptied when full") {
    VerifiedSignatures set(3);
    const ByteArray<4> a{1, 2, 3, 4}, b{1, 2, 3, 5};
    const auto na = VerifiedSignatures::name_of({as_bytes("x"), a});
    CHECK(na == VerifiedSignatures::name_of({as_bytes("x"), a}));
    CHECK(na != VerifiedSignatures::name_of({as_bytes("x"), b}));
    CHECK(na != VerifiedSignatures::name_of({as_bytes("y"), a}));
    CHECK_FALSE(set.contains(na));
    set.insert(na);
    CHECK(set.contains(na));
    CHECK_FALSE(set.contains(VerifiedSignatures::name_of({as_bytes("x"), b})));
    for (std::uint8_t i = 0; i < 2; ++i) set.insert(VerifiedSignatures::name_of({ByteView(&i, 1)}));
    CHECK(set.size() == 3);
    const std::uint8_t more = 9;
    set.insert(VerifiedSignatures::name_of({ByteView(&more, 1)}));  // full: emptied first
    CHECK(set.size() == 1);
    CHECK_FALSE(set.contains(na));
}
