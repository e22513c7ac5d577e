// NfcInitiatorLink and NfcTargetLink (nfc_link.hpp).
#include "credprov/transport/nfc/nfc_link.hpp"

#include <thread>

namespace credprov::transport::nfc {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

const Bytes kEmpty{kEmptyFrame};

std::chrono::milliseconds left_until(Clock::time_point deadline) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
}

Result<std::deque<Bytes>> fragments_of(ByteView message, std::size_t frame_size) {
    auto f = Fragmenter(frame_size).fragment(message);
    if (!f) return f.error();
    return std::deque<Bytes>(std::make_move_iterator(f->begin()), std::make_move_iterator(f->end()));
}

}  // namespace

bool is_empty_frame(ByteView frame) noexcept { return frame.size() == 1 && frame[0] == kEmptyFrame; }

// ---- initiator ------------------------------------------------------------------------------

NfcInitiatorLink::NfcInitiatorLink(Transceive transceive, Options options)
    : transceive_(std::move(transceive)), options_(options), reassembler_(options.limits) {}

void NfcInitiatorLink::fail(Error error) {
    if (link_error_) return;
    link_error_ = error;
    received_.push(std::move(error));
}

Status NfcInitiatorLink::exchange(ByteView frame, std::chrono::milliseconds timeout) {
    ++exchanges_;
    auto answer = transceive_(frame, timeout);
    if (!answer) {
        fail(answer.error());
        return answer.error();
    }
    if (is_empty_frame(*answer)) return {};
    auto fed = reassembler_.feed(*answer);
    if (!fed) {
        fail(fed.error());
        return fed.error();
    }
    if (*fed) received_.push(std::move(**fed));
    return {};
}

Status NfcInitiatorLink::send(ByteView message) {
    if (closed_) return make_error(ErrorCode::closed, "nfc: transport closed locally");
    if (link_error_) return *link_error_;
    auto fragments = fragments_of(message, options_.frame_size);
    if (!fragments) return fragments.error();
    // Every fragment is one exchange; the target's answers (EMPTY, or the
    // start of its reply to the last one) are taken in as they come.
    for (const auto& f : *fragments) {
        if (auto st = exchange(f, options_.exchange_timeout); !st) return st;
    }
    return {};
}

void NfcInitiatorLink::set_receive_handler(ReceiveHandler handler) { received_.set_handler(std::move(handler)); }

Status NfcInitiatorLink::poll(std::chrono::milliseconds timeout) {
    if (closed_) return make_error(ErrorCode::closed, "nfc: transport closed locally");
    if (link_error_ && received_.empty()) return *link_error_;
    const auto deadline = Clock::now() + timeout;
    while (received_.empty() && !link_error_) {
        const auto left = left_until(deadline);
        if (left <= 0ms) break;
        const bool in_progress = reassembler_.in_progress();
        (void)exchange(kEmpty, std::min(left, options_.exchange_timeout));
        // Nothing yet (the device is still working): wait a little before
        // asking again, unless a message is streaming in.
        if (received_.empty() && !link_error_ && !in_progress && !reassembler_.in_progress()) {
            std::this_thread::sleep_for(std::min(left_until(deadline), options_.poll_interval));
        }
    }
    received_.deliver();
    return {};
}

void NfcInitiatorLink::close() {
    if (closed_) return;
    closed_ = true;
    if (on_close) on_close();
}

// ---- target ---------------------------------------------------------------------------------

NfcTargetLink::NfcTargetLink(TargetFrames frames, Options options)
    : frames_(std::move(frames)), options_(options), reassembler_(options.limits) {}

void NfcTargetLink::fail(Error error) {
    if (link_error_) return;
    link_error_ = error;
    received_.push(std::move(error));
}

Status NfcTargetLink::answer() {
    Bytes frame = kEmpty;
    if (!outgoing_.empty()) {
        frame = std::move(outgoing_.front());
        outgoing_.pop_front();
    }
    owed_ = false;
    auto st = frames_.send(frame);
    if (!st) fail(st.error());
    return st;
}

Status NfcTargetLink::send(ByteView message) {
    if (closed_) return make_error(ErrorCode::closed, "nfc: transport closed locally");
    if (link_error_) return *link_error_;
    auto fragments = fragments_of(message, options_.frame_size);
    if (!fragments) return fragments.error();
    for (auto& f : *fragments) outgoing_.push_back(std::move(f));
    // The initiator is waiting on the frame that completed its message:
    // answer it with the start of this reply now.
    if (owed_) return answer();
    return {};
}

void NfcTargetLink::set_receive_handler(ReceiveHandler handler) { received_.set_handler(std::move(handler)); }

Status NfcTargetLink::poll(std::chrono::milliseconds timeout) {
    if (closed_) return make_error(ErrorCode::closed, "nfc: transport closed locally");
    if (link_error_ && received_.empty()) return *link_error_;
    const auto deadline = Clock::now() + timeout;
    while (received_.empty() && !link_error_) {
        if (owed_ && !answer()) break;
        const auto left = left_until(deadline);
        if (left <= 0ms) break;
        auto frame = frames_.receive(left);
        if (!frame) {
            if (frame.error().code == ErrorCode::timeout) break;
            fail(frame.error());
            break;
        }
        ++frames_received_;
        owed_ = true;
        if (is_empty_frame(*frame)) continue;  // answered at the top of the loop
        auto fed = reassembler_.feed(*frame);
        if (!fed) {
            // Tell the initiator nothing more comes: it sees EMPTY, then the released target.
            (void)answer();
            fail(fed.error());
            break;
        }
        if (*fed) received_.push(std::move(**fed));  // answered by send(), or by the next poll()
    }
    received_.deliver();
    return {};
}

void NfcTargetLink::close() {
    if (closed_) return;
    // What the initiator has not fetched yet of the last reply goes out now,
    // as it polls for it (bounded: a vanished initiator ends it).
    const auto deadline = Clock::now() + 2s;
    while (!link_error_ && (owed_ || !outgoing_.empty()) && Clock::now() < deadline) {
        if (owed_) {
            if (!answer()) break;
            continue;
        }
        auto frame = frames_.receive(left_until(deadline));
        if (!frame) break;
        owed_ = true;
    }
    closed_ = true;
    if (on_close) on_close();
}

}  // namespace credprov::transport::nfc
