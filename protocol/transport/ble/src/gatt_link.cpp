// GattLink (gatt_link.hpp).
#include "credprov/transport/ble/gatt_link.hpp"

#include <algorithm>

#include "credprov/transport/ble/gatt_profile.hpp"

namespace credprov::transport::ble {

using namespace std::chrono_literals;

GattLink::GattLink(std::size_t fragment_size, WriteFragment write, Pump pump)
    : fragment_size_(fragment_size), write_(std::move(write)), pump_(std::move(pump)) {}

void GattLink::fragment_received(ByteView fragment) {
    if (link_error_ || closed_) return;
    ++received_count_;
    auto fed = reassembler_.feed(fragment);
    if (!fed) {
        link_lost(fed.error());
        return;
    }
    if (*fed) received_.push(std::move(**fed));
}

void GattLink::link_lost(Error error) {
    if (link_error_) return;
    link_error_ = error;
    received_.push(std::move(error));
}

Status GattLink::send(ByteView message) {
    if (closed_) return make_error(ErrorCode::closed, "ble: transport closed locally");
    if (link_error_) return *link_error_;
    for (;;) {
        auto fragments = Fragmenter(fragment_size_).fragment(message);
        if (!fragments) return fragments.error();
        bool shrunk = false;
        for (std::size_t i = 0; i < fragments->size(); ++i) {
            auto st = write_((*fragments)[i]);
            if (st) {
                ++sent_;
                continue;
            }
            // Refused as too long before anything of this message went out:
            // the link takes less than its MTU promised; send it again smaller.
            if (i == 0 && st.error().code == ErrorCode::oversized && fragment_size_ > kMinFragment) {
                fragment_size_ = std::max(kMinFragment, fragment_size_ / 2);
                shrunk = true;
                break;
            }
            link_lost(st.error());
            return st.error();
        }
        if (!shrunk) return {};
    }
}

void GattLink::set_receive_handler(ReceiveHandler handler) { received_.set_handler(std::move(handler)); }

Status GattLink::poll(std::chrono::milliseconds timeout) {
    if (closed_) return make_error(ErrorCode::closed, "ble: transport closed locally");
    if (link_error_ && received_.empty()) return *link_error_;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (received_.empty() && !link_error_) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        if (left <= 0ms) break;
        pump_(left);
    }
    received_.deliver();
    return {};
}

void GattLink::close() {
    if (closed_) return;
    closed_ = true;
    if (on_close) on_close();
}

}  // namespace credprov::transport::ble
