// An in-memory Transport pair for tests, demos and benchmarks: what one end
// sends, the other end's poll() delivers. With an MTU every message goes
// through the Fragmenter and Reassembler, so the BLE/NFC framing path runs
// exactly as on a radio link, and the counters show what it costs.
//
// No threads, no clock, no sockets: poll() never waits, since nothing can
// arrive while the caller is blocked in it. Must never reorder or drop a
// message, and never deliver one after close().
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <utility>

#include "credprov/protocol/framing.hpp"
#include "credprov/protocol/receive_queue.hpp"
#include "credprov/protocol/transport.hpp"

namespace credprov {

// What one end has sent, split into message bytes and framing bytes.
struct LoopbackCounters {
    std::uint64_t messages{0};
    std::uint64_t message_bytes{0};
    std::uint64_t framing_bytes{0};  // fragment headers; 0 without an MTU
    std::uint64_t frames{0};         // link writes: fragments, or whole messages without an MTU
};

class LoopbackTransport final : public Transport {
public:
    // mtu == 0 passes whole messages; otherwise mtu >= kMinFragmentMtu
    // (asserted) is the largest fragment either end writes.
    [[nodiscard]] static std::pair<std::unique_ptr<LoopbackTransport>, std::unique_ptr<LoopbackTransport>>
    make_pair(std::size_t mtu = 0, std::size_t max_message_size = kDefaultMaxMessageSize);

    ~LoopbackTransport() override;

    [[nodiscard]] Status send(ByteView message) override;
    void set_receive_handler(ReceiveHandler handler) override;
    [[nodiscard]] Status poll(std::chrono::milliseconds timeout) override;
    void close() override;

    [[nodiscard]] const LoopbackCounters& counters() const noexcept { return counters_; }
    [[nodiscard]] std::size_t mtu() const noexcept { return mtu_; }

private:
    struct Link;

    LoopbackTransport(std::shared_ptr<Link> link, int side, std::size_t mtu, std::size_t max_message_size);

    std::shared_ptr<Link> link_;
    int side_;
    std::size_t mtu_;
    std::size_t max_message_size_;
    Reassembler reassembler_;
    ReceiveQueue received_;
    LoopbackCounters counters_;
    std::optional<Error> link_error_;  // set once the terminal error is queued
    bool closed_{false};
};

}  // namespace credprov
