// IPA/CTRL framing for osmo-hlr (see osmo_ctrl_codec.hpp). Pure functions:
// no I/O, no allocation beyond the frame buffers, every length checked.
#include "credprov/backend/osmo_ctrl_codec.hpp"

#include <algorithm>
#include <charconv>

namespace credprov::backend::osmo_ctrl {

namespace {

SecretBytes frame(std::string_view verb, std::uint32_t id, std::string_view variable, std::span<const char> value,
                  bool with_value) {
    const std::string head = std::string(verb) + " " + std::to_string(id) + " " + std::string(variable);
    const std::size_t payload = 1 + head.size() + (with_value ? 1 + value.size() : 0);
    SecretBytes out(kHeaderBytes + payload);
    std::uint8_t* p = out.data();
    p[0] = static_cast<std::uint8_t>(payload >> 8);
    p[1] = static_cast<std::uint8_t>(payload & 0xff);
    p[2] = kProtoOsmo;
    p[3] = kExtCtrl;
    std::size_t at = 4;
    std::copy(head.begin(), head.end(), p + at);
    at += head.size();
    if (with_value) {
        p[at++] = ' ';
        std::copy(value.begin(), value.end(), p + at);
    }
    return out;
}

bool is_variable_char(char c) {
    return c > 0x20 && c < 0x7f;
}

// The next space-separated token of `text` from `at`; empty when none.
std::string_view token(std::string_view text, std::size_t& at) {
    const std::size_t end = text.find(' ', at);
    const std::string_view t = text.substr(at, end == std::string_view::npos ? std::string_view::npos : end - at);
    at = end == std::string_view::npos ? text.size() : end + 1;
    return t;
}

}  // namespace

Result<FrameHeader> decode_header(std::span<const std::uint8_t> header) {
    if (header.size() != kHeaderBytes) return make_error(ErrorCode::malformed, "an IPA header is 3 bytes");
    FrameHeader h;
    h.payload_bytes = static_cast<std::size_t>(header[0]) << 8 | header[1];
    h.proto = header[2];
    if (h.payload_bytes > kMaxPayload) return make_error(ErrorCode::oversized, "IPA frame too long");
    return h;
}

SecretBytes encode_get(std::uint32_t id, std::string_view variable) {
    return frame("GET", id, variable, {}, false);
}

SecretBytes encode_set(std::uint32_t id, std::string_view variable, std::span<const char> value) {
    return frame("SET", id, variable, value, true);
}

Result<Reply> decode_payload(std::span<const std::uint8_t> payload) {
    if (payload.empty()) return make_error(ErrorCode::malformed, "empty CTRL frame");
    if (payload.size() > kMaxPayload) return make_error(ErrorCode::oversized, "CTRL frame too long");
    if (payload[0] != kExtCtrl) return make_error(ErrorCode::unknown_critical, "not a CTRL message (IPA extension byte)");
    const std::string_view text(reinterpret_cast<const char*>(payload.data() + 1), payload.size() - 1);
    std::size_t at = 0;
    const std::string_view verb = token(text, at);
    Reply r;
    if (verb == "GET_REPLY") r.verb = Verb::get_reply;
    else if (verb == "SET_REPLY") r.verb = Verb::set_reply;
    else if (verb == "ERROR") r.verb = Verb::error;
    else if (verb == "TRAP") r.verb = Verb::trap;
    else return make_error(ErrorCode::unknown_critical, "unknown CTRL message type");
    const std::string_view id = token(text, at);
    if (id.empty() || id.size() > 10) return make_error(ErrorCode::malformed, "CTRL message without a valid id");
    std::uint64_t parsed = 0;
    const auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), parsed);
    if (ec != std::errc{} || end != id.data() + id.size() || parsed > 0xffffffffULL) {
        return make_error(ErrorCode::malformed, "CTRL message without a valid id");
    }
    r.id = static_cast<std::uint32_t>(parsed);
    if (r.verb == Verb::error) {
        r.value = text.substr(std::min(at, text.size()));
        return r;
    }
    r.variable = token(text, at);
    if (r.variable.empty() || r.variable.size() > 512 || !std::all_of(r.variable.begin(), r.variable.end(), is_variable_char)) {
        return make_error(ErrorCode::malformed, "CTRL reply without a valid variable name");
    }
    r.value = text.substr(std::min(at, text.size()));
    return r;
}

std::string printable_reason(std::string_view reason) {
    std::string out;
    for (const char c : reason.substr(0, 120)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
    return out;
}

}  // namespace credprov::backend::osmo_ctrl
