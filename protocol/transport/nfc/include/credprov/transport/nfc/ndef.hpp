// NFC Forum NDEF messages (NFC Forum NDEF 1.0) as far as a credprov label
// needs them, and the Type 4 Tag read procedure (NFC Forum T4T 2.0).
//
// Debian 12 packages no NDEF library for C or C++, so this is our own
// bounded decoder (decision 0009): it takes untrusted bytes from any tag held
// to the reader, never reads past its input, refuses chunked records and
// anything above kMaxNdefMessage, and is fuzzed (protocol/fuzz/fuzz_ndef.cpp).
//
// A credprov label on NFC is one MIME record, type
// "application/vnd.credprov.label", whose payload is the label's bootstrap
// text (CP1:..., identifiers.hpp). It holds the setup code: a sticker is as
// secret as the printed label.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov::transport::nfc {

inline constexpr std::size_t kMaxNdefMessage = 1024;
inline constexpr std::size_t kMaxNdefRecords = 16;
inline constexpr std::string_view kLabelMimeType = "application/vnd.credprov.label";

struct NdefRecord {
    std::uint8_t tnf{0};  // 1 well-known, 2 MIME media, 3 absolute URI, 4 external, ...
    Bytes type;
    Bytes id;
    Bytes payload;
};

[[nodiscard]] Result<std::vector<NdefRecord>> parse_ndef_message(ByteView message);
[[nodiscard]] Bytes encode_ndef_message(const std::vector<NdefRecord>& records);

// The one-record message of a credprov label (for writing a sticker).
[[nodiscard]] Bytes encode_label_message(std::string_view bootstrap_text);
// The bootstrap text of the first credprov label record in a message.
[[nodiscard]] Result<std::string> label_from_message(ByteView message);

// A Type 4 Tag's NDEF message, read through APDUs (one exchange each):
// select the NDEF application, read the capability container, select the
// NDEF file it names and read it in chunks of at most the tag's MLe.
using Apdu = std::function<Result<Bytes>(ByteView command)>;
[[nodiscard]] Result<Bytes> read_type4_ndef(const Apdu& exchange);

}  // namespace credprov::transport::nfc
