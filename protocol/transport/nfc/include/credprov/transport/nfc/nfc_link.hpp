// Protocol messages over NFC (FRAMING.md, "NFC turns"): NFC-DEP and ISO-DEP
// are half duplex and driven by the initiator. Every exchange is one
// initiator frame answered by one target frame; each frame is either a
// fragment (FRAMING.md) of the sender's current message or the one-byte
// EMPTY frame (0x00: nothing to send this turn). The initiator sends its
// fragments, then polls with EMPTY until the target's answer is complete;
// the target answers the frame that completes a message with the first
// fragment of its reply as soon as its host produced it (no extra turn).
//
// Pure logic over an abstract frame exchange, so that it is unit-tested
// without a chip; libnfc_device.hpp provides the real exchanges. Single-
// threaded; the frame calls block (libnfc does).
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <optional>

#include "credprov/protocol/framing.hpp"
#include "credprov/protocol/receive_queue.hpp"
#include "credprov/protocol/transport.hpp"

namespace credprov::transport::nfc {

// The EMPTY frame: a single 0x00 byte (never a valid fragment: a non-FIRST
// fragment carries at least one payload byte).
inline constexpr std::uint8_t kEmptyFrame = 0x00;
// The largest frame we put on the air: a PN532 carries up to 262 bytes of
// data per exchange; libnfc chains nothing for us. 250 leaves room for the
// chip's and DEP's headers on every PN53x-class chip.
inline constexpr std::size_t kMaxFrame = 250;
inline constexpr std::size_t kMinFrame = kMinFragmentMtu;

[[nodiscard]] bool is_empty_frame(ByteView frame) noexcept;

// The initiator's exchange: send a frame, wait for the target's frame.
using Transceive = std::function<Result<Bytes>(ByteView frame, std::chrono::milliseconds timeout)>;

// The provisioner's side (initiator).
class NfcInitiatorLink final : public Transport {
public:
    struct Options {
        std::size_t frame_size{kMaxFrame};
        // A target with nothing ready yet answers EMPTY; poll again after this.
        std::chrono::milliseconds poll_interval{std::chrono::milliseconds(2)};
        // One exchange's limit (libnfc's timeout for the chip's answer).
        std::chrono::milliseconds exchange_timeout{std::chrono::milliseconds(1500)};
        ReassemblerLimits limits{};
    };
    NfcInitiatorLink(Transceive transceive, Options options);

    [[nodiscard]] Status send(ByteView message) override;
    void set_receive_handler(ReceiveHandler handler) override;
    [[nodiscard]] Status poll(std::chrono::milliseconds timeout) override;
    void close() override;

    // Exchanges so far (the benchmark's nfc.exchanges).
    [[nodiscard]] std::size_t exchanges() const noexcept { return exchanges_; }
    std::function<void()> on_close;

private:
    Status exchange(ByteView frame, std::chrono::milliseconds timeout);
    void fail(Error error);

    Transceive transceive_;
    Options options_;
    std::deque<Bytes> outgoing_;
    Reassembler reassembler_;
    ReceiveQueue received_;
    std::optional<Error> link_error_;
    bool closed_{false};
    std::size_t exchanges_{0};
};

// The target's exchange: receive the initiator's next frame; send the answer.
struct TargetFrames {
    std::function<Result<Bytes>(std::chrono::milliseconds timeout)> receive;
    std::function<Status(ByteView frame)> send;
};

// The device's side (target). After a frame arrives the target owes an
// answer: send() pays it with the first fragment of the reply; otherwise the
// next poll() (or close()) pays it with EMPTY.
class NfcTargetLink final : public Transport {
public:
    struct Options {
        std::size_t frame_size{kMaxFrame};
        ReassemblerLimits limits{};
    };
    NfcTargetLink(TargetFrames frames, Options options);

    [[nodiscard]] Status send(ByteView message) override;
    void set_receive_handler(ReceiveHandler handler) override;
    [[nodiscard]] Status poll(std::chrono::milliseconds timeout) override;
    void close() override;

    [[nodiscard]] std::size_t frames_received() const noexcept { return frames_received_; }
    std::function<void()> on_close;

private:
    Status answer();  // pays the owed answer: the next outgoing fragment, or EMPTY
    void fail(Error error);

    TargetFrames frames_;
    Options options_;
    std::deque<Bytes> outgoing_;
    Reassembler reassembler_;
    ReceiveQueue received_;
    std::optional<Error> link_error_;
    bool owed_{false};
    bool closed_{false};
    std::size_t frames_received_{0};
};

}  // namespace credprov::transport::nfc
