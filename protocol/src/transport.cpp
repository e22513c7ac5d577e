// The Transport base, the receive() helper and the shared delivery queue.
//
// Must never look into message contents; receive() must never wait longer
// than the timeout it was given (it makes exactly one poll() call).
#include "credprov/protocol/transport.hpp"

#include <optional>
#include <string>
#include <utility>

#include "credprov/protocol/receive_queue.hpp"

namespace credprov {

Transport::~Transport() = default;

Result<Bytes> receive(Transport& transport, std::chrono::milliseconds timeout) {
    std::optional<Result<Bytes>> received;
    transport.set_receive_handler([&transport, &received](Result<Bytes> item) {
        received.emplace(std::move(item));
        transport.set_receive_handler(nullptr);  // leave the rest queued
    });
    Status polled = transport.poll(timeout);
    transport.set_receive_handler(nullptr);
    if (received) return std::move(*received);
    if (!polled) return polled.error();
    return make_error(ErrorCode::timeout,
                      "no message within " + std::to_string(timeout.count()) + " ms");
}

std::size_t ReceiveQueue::deliver() {
    std::size_t delivered = 0;
    while (!items_.empty() && handler_) {
        Result<Bytes> item = std::move(items_.front());
        items_.pop_front();
        // The handler may replace itself; run it from a local so that the
        // replacement cannot destroy the function object while it runs.
        Transport::ReceiveHandler running = std::move(handler_);
        handler_ = nullptr;
        const std::size_t generation = generation_;
        running(std::move(item));
        ++delivered;
        if (generation_ == generation) handler_ = std::move(running);
    }
    return delivered;
}

}  // namespace credprov
