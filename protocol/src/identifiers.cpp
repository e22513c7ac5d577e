// Validation and rendering of identifiers. Never echoes a setup code.
#include "credprov/protocol/identifiers.hpp"

#include <algorithm>
#include <array>

namespace credprov {

namespace {
constexpr std::string_view kBase32Alphabet = "abcdefghijklmnopqrstuvwxyz234567";
constexpr std::string_view kDeviceIdContext = "credprov/v1 device-id";

bool all_digits(std::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}
}  // namespace

DeviceId DeviceId::from_public_key(const crypto::SignPublicKey& key) {
    const std::array<std::uint8_t, 1> zero{0};
    const auto h = crypto::sha512({as_bytes(kDeviceIdContext), zero, key});
    DeviceId id;
    std::copy_n(h.begin(), kBytes, id.bytes.begin());
    return id;
}

std::string DeviceId::to_string() const {
    // RFC 4648 section 6 base32, lower case, without padding.
    std::string out;
    std::uint32_t buffer = 0;
    int bits = 0;
    for (std::uint8_t b : bytes) {
        buffer = (buffer << 8) | b;
        bits += 8;
        while (bits >= 5) {
            out.push_back(kBase32Alphabet[(buffer >> (bits - 5)) & 0x1f]);
            bits -= 5;
        }
    }
    if (bits > 0) out.push_back(kBase32Alphabet[(buffer << (5 - bits)) & 0x1f]);
    return out;
}

Result<DeviceId> DeviceId::parse(std::string_view text) {
    constexpr std::size_t kChars = (kBytes * 8 + 4) / 5;  // 26
    if (text.size() != kChars) {
        return make_error(ErrorCode::malformed, "device id must be 26 base32 characters");
    }
    DeviceId id;
    std::uint32_t buffer = 0;
    int bits = 0;
    std::size_t n = 0;
    for (char c : text) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        const auto pos = kBase32Alphabet.find(c);
        if (pos == std::string_view::npos) {
            return make_error(ErrorCode::malformed, "device id has a character outside base32");
        }
        buffer = (buffer << 5) | static_cast<std::uint32_t>(pos);
        bits += 5;
        if (bits >= 8) {
            id.bytes[n++] = static_cast<std::uint8_t>(buffer >> (bits - 8));
            bits -= 8;
        }
    }
    // 26*5 = 130 bits: the last 2 bits are padding and must be zero (canonical).
    if ((buffer & ((1U << bits) - 1)) != 0) {
        return make_error(ErrorCode::malformed, "device id is not canonical base32");
    }
    return id;
}

std::uint16_t DeviceId::discriminator() const noexcept {
    return static_cast<std::uint16_t>((bytes[0] << 8) | bytes[1]);
}

bool has_prefix(const DeviceId& id, ByteView prefix) noexcept {
    if (prefix.empty() || prefix.size() > DeviceId::kBytes) return false;
    return std::equal(prefix.begin(), prefix.end(), id.bytes.begin());
}

BundleId BundleId::random() {
    BundleId id;
    crypto::random_bytes(id.bytes);
    return id;
}

Result<Imsi> Imsi::parse(std::string_view digits) {
    if (digits.size() < 6 || digits.size() > 15 || !all_digits(digits)) {
        return make_error(ErrorCode::malformed, "IMSI must be 6 to 15 decimal digits");
    }
    Imsi i;
    i.digits_ = std::string(digits);
    return i;
}

Result<Plmn> Plmn::parse(std::string_view digits) {
    if ((digits.size() != 5 && digits.size() != 6) || !all_digits(digits)) {
        return make_error(ErrorCode::malformed, "PLMN must be 5 or 6 decimal digits (MCC+MNC)");
    }
    Plmn p;
    p.digits_ = std::string(digits);
    return p;
}

Result<NetworkName> NetworkName::parse(std::string_view name) {
    if (name.empty() || name.size() > kMaxLength ||
        !std::all_of(name.begin(), name.end(), [](char c) { return c >= 0x20 && c < 0x7f; })) {
        return make_error(ErrorCode::malformed, "network name must be 1 to 32 printable ASCII characters");
    }
    NetworkName n;
    n.name_ = std::string(name);
    return n;
}

Result<SetupCode> SetupCode::parse(std::string_view digits) {
    if (digits.size() < kMinDigits || digits.size() > kMaxDigits || !all_digits(digits)) {
        return make_error(ErrorCode::malformed, "setup code must be 8 to 16 decimal digits");
    }
    SetupCode c;
    c.digits_ = SecretBytes(reinterpret_cast<const std::uint8_t*>(digits.data()), digits.size());
    return c;
}

SetupCode SetupCode::random(std::size_t digits) {
    digits = std::clamp(digits, kMinDigits, kMaxDigits);
    SetupCode c;
    c.digits_ = SecretBytes(digits);
    crypto::ensure_initialised();
    for (std::size_t i = 0; i < digits; ++i) {
        c.digits_.data()[i] = static_cast<std::uint8_t>('0' + randombytes_uniform(10));
    }
    return c;
}

std::string_view to_string(Operation op) noexcept {
    switch (op) {
        case Operation::query: return "query";
        case Operation::deliver_sealed: return "deliver-sealed";
        case Operation::deliver_field: return "deliver-field";
        case Operation::reconfigure: return "reconfigure";
        case Operation::diagnose: return "diagnose";
        case Operation::deprovision: return "deprovision";
        case Operation::transfer: return "transfer";
    }
    return "unknown";
}

SecretBytes BootstrapPayload::encode() const {
    std::string id = device.to_string();
    for (char& c : id) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
    const std::string head = "CP1:" + id + ":";
    const std::string tail = ":" + std::to_string(transports);
    SecretBytes out(head.size() + code.size() + tail.size());
    std::copy(head.begin(), head.end(), out.data());
    std::copy(code.prs().begin(), code.prs().end(), out.data() + head.size());
    std::copy(tail.begin(), tail.end(), out.data() + head.size() + code.size());
    return out;
}

Result<BootstrapPayload> BootstrapPayload::parse(std::string_view text) {
    // Never echo the text: it holds the setup code.
    constexpr std::string_view kPrefix = "CP1:";
    if (text.size() > 64 || text.substr(0, kPrefix.size()) != kPrefix) {
        return make_error(ErrorCode::malformed, "not a credprov label payload (expected CP1:...)");
    }
    text.remove_prefix(kPrefix.size());
    const auto c1 = text.find(':');
    if (c1 == std::string_view::npos) return make_error(ErrorCode::malformed, "label payload lacks the setup code");
    const auto c2 = text.find(':', c1 + 1);
    if (c2 == std::string_view::npos) return make_error(ErrorCode::malformed, "label payload lacks the transports");
    auto id = DeviceId::parse(text.substr(0, c1));
    if (!id) return id.error();
    auto code = SetupCode::parse(text.substr(c1 + 1, c2 - c1 - 1));
    if (!code) return code.error();
    const std::string_view t = text.substr(c2 + 1);
    if (t.size() != 1 || t[0] < '1' || t[0] > '7') {
        return make_error(ErrorCode::malformed, "label payload transports must be a digit 1-7");
    }
    BootstrapPayload p{*id, std::move(*code), static_cast<std::uint8_t>(t[0] - '0')};
    return p;
}

}  // namespace credprov
