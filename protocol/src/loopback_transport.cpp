// In-memory transport pair (see loopback_transport.hpp).
//
// Must never reorder or drop a message, never deliver after close(), and never
// look into message contents.
#include "credprov/protocol/loopback_transport.hpp"

#include <algorithm>
#include <cassert>
#include <deque>
#include <string>

namespace credprov {

// State shared by both ends; frames[i] holds what is on its way to end i.
struct LoopbackTransport::Link {
    std::deque<Bytes> frames[2];
    bool closed[2]{false, false};
};

std::pair<std::unique_ptr<LoopbackTransport>, std::unique_ptr<LoopbackTransport>>
LoopbackTransport::make_pair(std::size_t mtu, std::size_t max_message_size) {
    assert(mtu == 0 || mtu >= kMinFragmentMtu);
    auto link = std::make_shared<Link>();
    // The constructor is private; make_unique cannot reach it.
    std::unique_ptr<LoopbackTransport> a(new LoopbackTransport(link, 0, mtu, max_message_size));
    std::unique_ptr<LoopbackTransport> b(new LoopbackTransport(link, 1, mtu, max_message_size));
    return {std::move(a), std::move(b)};
}

LoopbackTransport::LoopbackTransport(std::shared_ptr<Link> link, int side, std::size_t mtu,
                                     std::size_t max_message_size)
    : link_(std::move(link)),
      side_(side),
      mtu_(mtu),
      max_message_size_(std::min(max_message_size, kMaxEncodableMessageSize)),
      reassembler_(ReassemblerLimits{max_message_size_, kDefaultMaxFragments}) {}

LoopbackTransport::~LoopbackTransport() { close(); }

Status LoopbackTransport::send(ByteView message) {
    if (closed_) return make_error(ErrorCode::closed, "loopback: transport closed locally");
    const int peer = 1 - side_;
    if (link_->closed[peer]) return make_error(ErrorCode::closed, "loopback: peer closed the link");
    if (message.size() > max_message_size_) {
        return make_error(ErrorCode::oversized, "loopback: message of " + std::to_string(message.size()) +
                                                    " bytes exceeds the limit of " +
                                                    std::to_string(max_message_size_));
    }
    if (mtu_ == 0) {
        link_->frames[peer].emplace_back(message.begin(), message.end());
        counters_.frames += 1;
    } else {
        auto fragments = Fragmenter(mtu_).fragment(message);
        if (!fragments) return fragments.error();
        for (Bytes& fragment : *fragments) {
            counters_.framing_bytes += fragment.size();
            link_->frames[peer].push_back(std::move(fragment));
        }
        counters_.framing_bytes -= message.size();
        counters_.frames += fragments->size();
    }
    counters_.messages += 1;
    counters_.message_bytes += message.size();
    return {};
}

void LoopbackTransport::set_receive_handler(ReceiveHandler handler) {
    received_.set_handler(std::move(handler));
}

Status LoopbackTransport::poll(std::chrono::milliseconds /*timeout*/) {
    if (closed_) return make_error(ErrorCode::closed, "loopback: transport closed locally");
    if (link_error_ && received_.empty()) return *link_error_;  // already delivered

    std::deque<Bytes>& inbound = link_->frames[side_];
    while (!link_error_ && !inbound.empty()) {
        Bytes frame = std::move(inbound.front());
        inbound.pop_front();
        if (mtu_ == 0) {
            received_.push(std::move(frame));
            continue;
        }
        auto fed = reassembler_.feed(frame);
        if (!fed) {
            link_error_ = fed.error();
            received_.push(fed.error());
        } else if (fed->has_value()) {
            received_.push(std::move(**fed));
        }
    }
    if (!link_error_ && inbound.empty() && link_->closed[1 - side_]) {
        link_error_ = make_error(ErrorCode::closed, "loopback: peer closed the link");
        received_.push(*link_error_);
    }
    received_.deliver();
    return {};
}

void LoopbackTransport::close() {
    if (closed_) return;
    closed_ = true;
    link_->closed[side_] = true;
    link_->frames[side_].clear();
}

}  // namespace credprov
