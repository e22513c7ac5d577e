// Framing of protocol messages onto links: fragments for small-MTU links
// (BLE GATT writes/notifications, NFC frames) and a length prefix for byte
// streams (TCP, Unix sockets). The wire format is specified in
// protocol/FRAMING.md; keep the two in step.
//
// Pure code: no I/O, no clock, no threads. Every decoder here takes untrusted
// bytes, so it must never read past its input, never buffer more than its
// configured bound, and never put message bytes into an error message.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <vector>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov {

// Largest message the 16-bit length fields can express.
inline constexpr std::size_t kMaxEncodableMessageSize = 0xFFFF;
// Largest message a receiver accepts unless configured otherwise.
inline constexpr std::size_t kDefaultMaxMessageSize = 4096;

// ---- fragments (BLE, NFC) ---------------------------------------------------

inline constexpr std::uint8_t kFragmentFirst = 0x80;
inline constexpr std::uint8_t kFragmentLast = 0x40;
inline constexpr std::uint8_t kFragmentSeqMask = 0x3F;
inline constexpr std::size_t kFirstFragmentHeaderSize = 3;  // flags/seq + u16 total length
inline constexpr std::size_t kFragmentHeaderSize = 1;       // flags/seq
// The smallest link MTU that still carries one payload byte in a FIRST fragment.
inline constexpr std::size_t kMinFragmentMtu = kFirstFragmentHeaderSize + 1;
// Enough for a kDefaultMaxMessageSize message over the smallest BLE ATT MTU
// (23 bytes, 20 per write): 1 + ceil((4096 - 17) / 19) = 216 fragments.
inline constexpr std::size_t kDefaultMaxFragments = 256;

// Number of fragments a message of message_size bytes needs on a link whose
// largest write is mtu bytes (for GATT: ATT_MTU - 3). Preconditions (asserted):
// mtu >= kMinFragmentMtu and message_size <= kMaxEncodableMessageSize.
[[nodiscard]] std::size_t fragment_count(std::size_t message_size, std::size_t mtu) noexcept;

// Bytes the fragment headers add to a message of message_size bytes on a link
// with the given mtu (same preconditions as fragment_count).
[[nodiscard]] std::size_t framing_overhead(std::size_t message_size, std::size_t mtu) noexcept;

// Splits whole messages into fragments of at most mtu bytes each.
class Fragmenter {
public:
    explicit Fragmenter(std::size_t mtu) noexcept : mtu_(mtu) {}

    // Fails with ErrorCode::oversized above kMaxEncodableMessageSize and with
    // ErrorCode::io when the link MTU is below kMinFragmentMtu.
    [[nodiscard]] Result<std::vector<Bytes>> fragment(ByteView message) const;

    [[nodiscard]] std::size_t mtu() const noexcept { return mtu_; }

private:
    std::size_t mtu_;
};

struct ReassemblerLimits {
    std::size_t max_message_size = kDefaultMaxMessageSize;  // at most kMaxEncodableMessageSize
    std::size_t max_fragments = kDefaultMaxFragments;        // per message
};

// Rebuilds messages from fragments that arrive in order on one link.
// Any violation of FRAMING.md is returned as an Error (ErrorCode::malformed,
// or ErrorCode::oversized for a total length or fragment count above the
// limits) and drops the message in progress, so the next FIRST fragment
// starts clean.
class Reassembler {
public:
    explicit Reassembler(ReassemblerLimits limits = {}) noexcept : limits_(limits) {}

    // A complete message, std::nullopt while more fragments are needed, or an error.
    [[nodiscard]] Result<std::optional<Bytes>> feed(ByteView fragment);

    [[nodiscard]] bool in_progress() const noexcept { return in_progress_; }
    [[nodiscard]] const ReassemblerLimits& limits() const noexcept { return limits_; }
    void reset() noexcept;

private:
    [[nodiscard]] Error fail(ErrorCode code, std::string message);

    ReassemblerLimits limits_;
    Bytes buffer_;
    std::size_t total_{0};
    std::size_t fragments_{0};
    std::uint8_t next_seq_{0};
    bool in_progress_{false};
};

// ---- length prefix (TCP, Unix sockets) --------------------------------------

inline constexpr std::size_t kStreamPrefixSize = 2;  // u16 big-endian message length

// The message with its length prefix. ErrorCode::oversized above kMaxEncodableMessageSize.
[[nodiscard]] Result<Bytes> encode_stream_frame(ByteView message);

// Accumulates arbitrary chunks of a byte stream and cuts them into messages.
// A length prefix above max_message_size is rejected as soon as its two bytes
// are in, before any of the body is buffered. A stream cannot resynchronise
// after a bad prefix, so an error is terminal: every later feed() returns it
// again until reset(). Messages completed before the error stay available
// from next(), in order.
class StreamDecoder {
public:
    explicit StreamDecoder(std::size_t max_message_size = kDefaultMaxMessageSize) noexcept;

    [[nodiscard]] Status feed(ByteView chunk);
    // The oldest complete message not yet taken.
    [[nodiscard]] std::optional<Bytes> next();

    [[nodiscard]] bool failed() const noexcept { return error_.has_value(); }
    // Bytes of the message currently being received (prefix included).
    [[nodiscard]] std::size_t partial_size() const noexcept { return prefix_have_ + body_.size(); }
    [[nodiscard]] std::size_t max_message_size() const noexcept { return max_message_size_; }
    void reset() noexcept;

private:
    std::size_t max_message_size_;
    std::deque<Bytes> ready_;
    Bytes body_;
    std::size_t expected_{0};
    std::uint8_t prefix_[kStreamPrefixSize]{};
    std::size_t prefix_have_{0};
    std::optional<Error> error_;
};

}  // namespace credprov
