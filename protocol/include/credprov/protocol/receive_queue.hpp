// The in-order queue between a transport's decoder and its ReceiveHandler,
// shared by the transport implementations so that they all follow the same
// delivery rules (see Transport::set_receive_handler).
//
// Must never drop or reorder an item, and never call a handler that has been
// replaced.
#pragma once

#include <cstddef>
#include <deque>
#include <utility>

#include "credprov/protocol/transport.hpp"

namespace credprov {

class ReceiveQueue {
public:
    void set_handler(Transport::ReceiveHandler handler) {
        handler_ = std::move(handler);
        ++generation_;
    }
    void push(Result<Bytes> item) { items_.push_back(std::move(item)); }

    [[nodiscard]] bool empty() const noexcept { return items_.empty(); }
    [[nodiscard]] std::size_t size() const noexcept { return items_.size(); }

    // Hands queued items to the handler in order until the queue is empty or
    // no handler is installed. Returns the number delivered.
    std::size_t deliver();

private:
    Transport::ReceiveHandler handler_;
    std::deque<Result<Bytes>> items_;
    std::size_t generation_{0};  // counts set_handler() calls, to spot one made from inside a handler
};

}  // namespace credprov
