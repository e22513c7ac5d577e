// Fragmentation, reassembly and stream length-prefix framing (FRAMING.md).
//
// Decodes untrusted bytes: must never read outside the given span, never grow
// a buffer beyond the configured limits, and never quote payload bytes in an
// error message (sizes and sequence numbers only).
#include "credprov/protocol/framing.hpp"

#include <algorithm>
#include <cassert>
#include <string>
#include <utility>

namespace credprov {

namespace {

std::size_t first_payload(std::size_t mtu) noexcept { return mtu - kFirstFragmentHeaderSize; }
std::size_t next_payload(std::size_t mtu) noexcept { return mtu - kFragmentHeaderSize; }

std::uint8_t seq_of(std::size_t index) noexcept {
    return static_cast<std::uint8_t>(index & kFragmentSeqMask);
}

}  // namespace

std::size_t fragment_count(std::size_t message_size, std::size_t mtu) noexcept {
    assert(mtu >= kMinFragmentMtu);
    assert(message_size <= kMaxEncodableMessageSize);
    mtu = std::max(mtu, kMinFragmentMtu);  // keeps release builds away from a division by zero
    if (message_size <= first_payload(mtu)) return 1;
    const std::size_t rest = message_size - first_payload(mtu);
    return 1 + (rest + next_payload(mtu) - 1) / next_payload(mtu);
}

std::size_t framing_overhead(std::size_t message_size, std::size_t mtu) noexcept {
    return (kFirstFragmentHeaderSize - kFragmentHeaderSize) +
           kFragmentHeaderSize * fragment_count(message_size, mtu);
}

Result<std::vector<Bytes>> Fragmenter::fragment(ByteView message) const {
    if (mtu_ < kMinFragmentMtu) {
        return make_error(ErrorCode::io, "link MTU of " + std::to_string(mtu_) +
                                             " bytes is below the framing minimum of " +
                                             std::to_string(kMinFragmentMtu));
    }
    if (message.size() > kMaxEncodableMessageSize) {
        return make_error(ErrorCode::oversized, "message of " + std::to_string(message.size()) +
                                                    " bytes exceeds the framing limit of " +
                                                    std::to_string(kMaxEncodableMessageSize));
    }

    std::vector<Bytes> out;
    out.reserve(fragment_count(message.size(), mtu_));

    std::size_t offset = std::min(message.size(), first_payload(mtu_));
    Bytes first;
    first.reserve(kFirstFragmentHeaderSize + offset);
    const bool only = offset == message.size();
    first.push_back(static_cast<std::uint8_t>(kFragmentFirst | (only ? kFragmentLast : 0)));
    first.push_back(static_cast<std::uint8_t>(message.size() >> 8));
    first.push_back(static_cast<std::uint8_t>(message.size() & 0xFF));
    append(first, message.first(offset));
    out.push_back(std::move(first));

    while (offset < message.size()) {
        const std::size_t n = std::min(message.size() - offset, next_payload(mtu_));
        const bool last = offset + n == message.size();
        Bytes frag;
        frag.reserve(kFragmentHeaderSize + n);
        frag.push_back(static_cast<std::uint8_t>((last ? kFragmentLast : 0) | seq_of(out.size())));
        append(frag, message.subspan(offset, n));
        out.push_back(std::move(frag));
        offset += n;
    }
    return out;
}

void Reassembler::reset() noexcept {
    buffer_.clear();
    buffer_.shrink_to_fit();
    total_ = 0;
    fragments_ = 0;
    next_seq_ = 0;
    in_progress_ = false;
}

Error Reassembler::fail(ErrorCode code, std::string message) {
    reset();
    return make_error(code, "fragment reassembly: " + std::move(message));
}

Result<std::optional<Bytes>> Reassembler::feed(ByteView fragment) {
    if (fragment.empty()) return fail(ErrorCode::malformed, "empty fragment");

    const std::uint8_t header = fragment[0];
    const bool first = (header & kFragmentFirst) != 0;
    const bool last = (header & kFragmentLast) != 0;
    const std::uint8_t seq = header & kFragmentSeqMask;
    ByteView payload;

    if (first) {
        if (in_progress_) {
            return fail(ErrorCode::malformed, "FIRST fragment while fragment " +
                                                  std::to_string(next_seq_) +
                                                  " of a message was expected");
        }
        if (fragment.size() < kFirstFragmentHeaderSize) {
            return fail(ErrorCode::malformed, "FIRST fragment of " + std::to_string(fragment.size()) +
                                                  " bytes is shorter than its 3-byte header");
        }
        if (seq != 0) {
            return fail(ErrorCode::malformed,
                        "FIRST fragment has sequence number " + std::to_string(seq) + ", not 0");
        }
        const std::size_t total = (std::size_t{fragment[1]} << 8) | fragment[2];
        if (total > limits_.max_message_size) {
            return fail(ErrorCode::oversized, "announced message of " + std::to_string(total) +
                                                  " bytes exceeds the limit of " +
                                                  std::to_string(limits_.max_message_size));
        }
        payload = fragment.subspan(kFirstFragmentHeaderSize);
        in_progress_ = true;
        total_ = total;
        fragments_ = 0;
        buffer_.clear();
        buffer_.reserve(total);
    } else {
        if (!in_progress_) {
            return fail(ErrorCode::malformed, "fragment " + std::to_string(seq) +
                                                  " arrived without a FIRST fragment");
        }
        if (seq != next_seq_) {
            return fail(ErrorCode::malformed, "fragment " + std::to_string(seq) +
                                                  " arrived out of order, expected " +
                                                  std::to_string(next_seq_));
        }
        payload = fragment.subspan(kFragmentHeaderSize);
    }

    ++fragments_;
    if (fragments_ > limits_.max_fragments) {
        return fail(ErrorCode::oversized, "message needs more than " +
                                              std::to_string(limits_.max_fragments) + " fragments");
    }
    // Only the lone fragment of an empty message may carry no payload; an
    // empty fragment anywhere else would let a peer stall the link for free.
    if (payload.empty() && !(first && last && total_ == 0)) {
        return fail(ErrorCode::malformed, "fragment " + std::to_string(seq) + " carries no payload");
    }
    const std::size_t have = buffer_.size() + payload.size();
    if (have > total_ || (last && have != total_) || (!last && have == total_)) {
        return fail(ErrorCode::malformed, "fragments carry " + std::to_string(have) +
                                              (last ? " bytes in all" : " bytes so far") +
                                              " but the FIRST fragment announced " +
                                              std::to_string(total_));
    }
    append(buffer_, payload);
    next_seq_ = seq_of(std::size_t{seq} + 1);

    if (!last) return std::optional<Bytes>{};
    Bytes message = std::move(buffer_);
    reset();
    return std::optional<Bytes>{std::move(message)};
}

Result<Bytes> encode_stream_frame(ByteView message) {
    if (message.size() > kMaxEncodableMessageSize) {
        return make_error(ErrorCode::oversized, "message of " + std::to_string(message.size()) +
                                                    " bytes exceeds the framing limit of " +
                                                    std::to_string(kMaxEncodableMessageSize));
    }
    Bytes out;
    out.reserve(kStreamPrefixSize + message.size());
    out.push_back(static_cast<std::uint8_t>(message.size() >> 8));
    out.push_back(static_cast<std::uint8_t>(message.size() & 0xFF));
    append(out, message);
    return out;
}

StreamDecoder::StreamDecoder(std::size_t max_message_size) noexcept
    : max_message_size_(std::min(max_message_size, kMaxEncodableMessageSize)) {}

void StreamDecoder::reset() noexcept {
    ready_.clear();
    body_.clear();
    body_.shrink_to_fit();
    expected_ = 0;
    prefix_have_ = 0;
    error_.reset();
}

Status StreamDecoder::feed(ByteView chunk) {
    if (error_) return *error_;
    while (!chunk.empty()) {
        if (prefix_have_ < kStreamPrefixSize) {
            prefix_[prefix_have_++] = chunk[0];
            chunk = chunk.subspan(1);
            if (prefix_have_ < kStreamPrefixSize) continue;
            expected_ = (std::size_t{prefix_[0]} << 8) | prefix_[1];
            if (expected_ > max_message_size_) {
                body_.clear();
                prefix_have_ = 0;
                error_ = make_error(ErrorCode::oversized,
                                    "stream framing: announced message of " +
                                        std::to_string(expected_) + " bytes exceeds the limit of " +
                                        std::to_string(max_message_size_));
                return *error_;
            }
            body_.reserve(expected_);
        } else {
            const std::size_t n = std::min(chunk.size(), expected_ - body_.size());
            append(body_, chunk.first(n));
            chunk = chunk.subspan(n);
        }
        if (prefix_have_ == kStreamPrefixSize && body_.size() == expected_) {
            ready_.push_back(std::move(body_));
            body_ = Bytes{};
            prefix_have_ = 0;
            expected_ = 0;
        }
    }
    return {};
}

std::optional<Bytes> StreamDecoder::next() {
    if (ready_.empty()) return std::nullopt;
    Bytes message = std::move(ready_.front());
    ready_.pop_front();
    return message;
}

}  // namespace credprov
