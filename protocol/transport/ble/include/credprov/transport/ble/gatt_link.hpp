// A Transport over GATT: whole messages are split into fragments
// (FRAMING.md) written one per GATT write or notification, and rebuilt from
// the fragments the peer sends. Single-threaded: the D-Bus handlers that
// receive fragments run inside pump(), which poll() calls, on the thread
// that uses the link. Used by both the peripheral (agent) and the central
// (provisioner).
#pragma once

#include <chrono>
#include <functional>
#include <optional>

#include "credprov/protocol/framing.hpp"
#include "credprov/protocol/receive_queue.hpp"
#include "credprov/protocol/transport.hpp"

namespace credprov::transport::ble {

class GattLink final : public Transport {
public:
    using WriteFragment = std::function<Status(ByteView)>;
    // Processes D-Bus traffic for up to the given time.
    using Pump = std::function<void(std::chrono::milliseconds)>;

    GattLink(std::size_t fragment_size, WriteFragment write, Pump pump);

    // From the D-Bus handlers.
    void fragment_received(ByteView fragment);
    void link_lost(Error error);
    void set_fragment_size(std::size_t size) noexcept { fragment_size_ = size; }
    [[nodiscard]] std::size_t fragment_size() const noexcept { return fragment_size_; }
    [[nodiscard]] bool failed() const noexcept { return link_error_.has_value(); }
    [[nodiscard]] bool is_closed() const noexcept { return closed_; }
    // Counts for the benchmark: fragments each way.
    [[nodiscard]] std::size_t fragments_sent() const noexcept { return sent_; }
    [[nodiscard]] std::size_t fragments_received() const noexcept { return received_count_; }

    [[nodiscard]] Status send(ByteView message) override;
    void set_receive_handler(ReceiveHandler handler) override;
    [[nodiscard]] Status poll(std::chrono::milliseconds timeout) override;
    void close() override;

    // Called once by close(); the owner releases the GATT session there.
    std::function<void()> on_close;

private:
    std::size_t fragment_size_;
    WriteFragment write_;
    Pump pump_;
    Reassembler reassembler_;
    ReceiveQueue received_;
    std::optional<Error> link_error_;
    bool closed_{false};
    std::size_t sent_{0};
    std::size_t received_count_{0};
};

}  // namespace credprov::transport::ble
