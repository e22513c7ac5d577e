// The Osmocom CTRL protocol as osmo-hlr speaks it, without I/O: IPA framing
// (a 3-byte header: big-endian payload length, protocol 0xEE "OSMO", then the
// extension byte 0x00 "CTRL") around one text message per frame:
//
//   GET <id> <variable>            SET <id> <variable> <value>
//   GET_REPLY <id> <variable> <value>
//   SET_REPLY <id> <variable> <value>
//   ERROR <id> <reason>            TRAP <id> <variable> <value>
//
// Every decoder here is bounded and rejects what it does not understand with
// a typed error; it has a libFuzzer target (fuzz/fuzz_osmo_ctrl.cpp). Values
// may be key material (aud3g holds K and OPc in hex): frames are built and
// read in SecretBytes, a decoded reply only points into its caller's buffer,
// and no error message repeats a value.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "credprov/protocol/result.hpp"
#include "credprov/protocol/secret.hpp"

namespace credprov::backend::osmo_ctrl {

inline constexpr std::size_t kHeaderBytes = 3;
inline constexpr std::uint8_t kProtoOsmo = 0xEE;
inline constexpr std::uint8_t kExtCtrl = 0x00;
// The largest payload we accept (the length field allows 65535).
inline constexpr std::size_t kMaxPayload = 65535;

struct FrameHeader {
    std::size_t payload_bytes{0};
    std::uint8_t proto{0};
};
// Reads the 3-byte IPA header.
[[nodiscard]] Result<FrameHeader> decode_header(std::span<const std::uint8_t> header);

// A whole frame: header, the CTRL extension byte, the text.
[[nodiscard]] SecretBytes encode_get(std::uint32_t id, std::string_view variable);
// `value` is copied straight into the returned (wiped) buffer.
[[nodiscard]] SecretBytes encode_set(std::uint32_t id, std::string_view variable, std::span<const char> value);

enum class Verb : std::uint8_t { get_reply, set_reply, error, trap };

struct Reply {
    Verb verb{Verb::error};
    std::uint32_t id{0};
    std::string_view variable;  // empty for ERROR
    std::string_view value;     // the value, or the reason of an ERROR; points into the payload
};
// Decodes one frame's payload (after the 3-byte header): the extension byte
// and the message text. Requests (GET/SET) are refused: a server never sends them.
[[nodiscard]] Result<Reply> decode_payload(std::span<const std::uint8_t> payload);

// An ERROR's reason made safe for a message: printable ASCII, at most 120 characters.
[[nodiscard]] std::string printable_reason(std::string_view reason);

}  // namespace credprov::backend::osmo_ctrl
