// Provisioner request signatures (see request_auth.hpp).
#include "credprov/common/request_auth.hpp"

#include <charconv>

namespace credprov {

Bytes request_signing_input(std::string_view method, std::string_view target, std::uint64_t timestamp,
                            std::string_view body) {
    const crypto::Hash body_hash = crypto::sha512(as_bytes(body));
    std::string text;
    text.reserve(method.size() + target.size() + 160);
    text.append(method).append("\n").append(target).append("\n").append(std::to_string(timestamp)).append("\n");
    text.append(to_hex(body_hash));
    return Bytes(text.begin(), text.end());
}

std::string sign_request(const crypto::SigningKey& key, std::string_view method, std::string_view target,
                         std::uint64_t timestamp, std::string_view body) {
    const crypto::Signature sig =
        crypto::sign(key, kRequestContext, request_signing_input(method, target, timestamp, body));
    return std::string(kSignatureScheme) + " key=" + to_hex(key.public_key) + ", ts=" + std::to_string(timestamp) +
           ", sig=" + to_hex(sig);
}

Result<RequestSignature> parse_signature_header(std::string_view h) {
    const auto bad = [] {
        return make_error(ErrorCode::malformed,
                          "Authorization must be 'Credprov-Signature key=<64 hex>, ts=<seconds>, sig=<128 hex>'");
    };
    if (h.size() > 400 || !h.starts_with(kSignatureScheme) || h.size() <= kSignatureScheme.size() ||
        h[kSignatureScheme.size()] != ' ') {
        return bad();
    }
    h.remove_prefix(kSignatureScheme.size() + 1);
    RequestSignature out;
    bool have_key = false, have_ts = false, have_sig = false;
    while (!h.empty()) {
        while (!h.empty() && (h.front() == ' ' || h.front() == ',')) h.remove_prefix(1);
        if (h.empty()) break;
        const auto eq = h.find('=');
        if (eq == std::string_view::npos) return bad();
        const std::string_view name = h.substr(0, eq);
        h.remove_prefix(eq + 1);
        const auto end = h.find(',');
        std::string_view value = h.substr(0, end);
        while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
        h = end == std::string_view::npos ? std::string_view{} : h.substr(end + 1);
        Bytes b;
        if (name == "key" && !have_key) {
            if (!from_hex(value, b) || b.size() != out.key.size()) return bad();
            std::copy(b.begin(), b.end(), out.key.begin());
            have_key = true;
        } else if (name == "sig" && !have_sig) {
            if (!from_hex(value, b) || b.size() != out.signature.size()) return bad();
            std::copy(b.begin(), b.end(), out.signature.begin());
            have_sig = true;
        } else if (name == "ts" && !have_ts) {
            const auto [p, ec] = std::from_chars(value.data(), value.data() + value.size(), out.timestamp);
            if (ec != std::errc{} || p != value.data() + value.size() || value.size() > 12) return bad();
            have_ts = true;
        } else {
            return bad();
        }
    }
    if (!have_key || !have_ts || !have_sig) return bad();
    return out;
}

Status verify_request(const RequestSignature& sig, std::string_view method, std::string_view target,
                      std::string_view body) {
    return crypto::verify(sig.key, kRequestContext, request_signing_input(method, target, sig.timestamp, body),
                          sig.signature);
}

}  // namespace credprov
