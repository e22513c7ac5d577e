// StreamTransport: length-prefixed messages over a connected TCP or Unix
// stream socket (see stream_transport.hpp and FRAMING.md).
//
// Must never write a partial frame and carry on, never raise SIGPIPE, never
// block past the caller's timeout, and never put message bytes into errors.
#include "credprov/transport/stream_transport.hpp"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <string>

#include "posix_socket.hpp"

namespace credprov::transport {

namespace {

#ifdef MSG_NOSIGNAL
constexpr int kSendFlags = MSG_NOSIGNAL;
#else
constexpr int kSendFlags = 0;  // SO_NOSIGPIPE is set on the socket instead
#endif

// Bounds the work one poll() does for a peer that never stops sending.
constexpr std::size_t kReadChunk = 16 * 1024;
constexpr int kMaxReadsPerPoll = 16;

bool peer_gone(int err) { return err == EPIPE || err == ECONNRESET; }

void set_no_delay(int fd, int family) {
    // Request/response messages are small; do not let Nagle hold them back.
    // Best effort: a failure only costs latency.
    if (family != AF_INET && family != AF_INET6) return;
    const int one = 1;
    (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

StreamOptions clamp(StreamOptions options) {
    options.max_message_size = std::min(options.max_message_size, kMaxEncodableMessageSize);
    return options;
}

}  // namespace

StreamTransport::StreamTransport(UniqueFd fd, StreamOptions options)
    : fd_(std::move(fd)), options_(clamp(options)), decoder_(options_.max_message_size) {}

StreamTransport::~StreamTransport() { close(); }

Result<std::unique_ptr<StreamTransport>> StreamTransport::adopt(UniqueFd fd, StreamOptions options) {
    if (!fd) return make_error(ErrorCode::internal, "adopt: invalid descriptor");
    if (Status prepared = detail::prepare_descriptor(fd.get()); !prepared) return prepared.error();
    sockaddr_storage local{};
    socklen_t length = sizeof local;
    if (::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&local), &length) == 0) {
        set_no_delay(fd.get(), local.ss_family);
    }
    return std::unique_ptr<StreamTransport>(new StreamTransport(std::move(fd), options));
}

Result<std::unique_ptr<StreamTransport>> StreamTransport::connect(const Address& address,
                                                                  std::chrono::milliseconds timeout,
                                                                  StreamOptions options) {
    const std::string name = address.to_string();
    if (const auto* tcp = address.tcp(); tcp != nullptr && tcp->port == 0) {
        return make_error(ErrorCode::malformed, "cannot connect to port 0: " + name);
    }
    const auto deadline = detail::deadline_after(timeout);
    auto targets = detail::resolve(address, /*passive=*/false);
    if (!targets) return targets.error();

    Error last = make_error(ErrorCode::io, "connect to " + name + " failed");
    for (const detail::SocketAddress& target : *targets) {
        auto fd = detail::open_stream_socket(target.family);
        if (!fd) {
            last = fd.error();
            continue;
        }
        const int rc = ::connect(fd->get(), reinterpret_cast<const sockaddr*>(&target.storage), target.length);
        // EINTR: the connection attempt goes on asynchronously, as with EINPROGRESS.
        if (rc != 0 && errno != EINPROGRESS && errno != EINTR) {
            last = detail::system_error(ErrorCode::io, "connect to " + name + " failed", errno);
            continue;
        }
        if (rc != 0) {
            auto ready = detail::wait_for(fd->get(), POLLOUT, deadline);
            if (!ready) return ready.error();
            if (*ready == 0) {
                return make_error(ErrorCode::timeout, "connect to " + name + " timed out after " +
                                                          std::to_string(timeout.count()) + " ms");
            }
            int err = 0;
            socklen_t len = sizeof err;
            if (::getsockopt(fd->get(), SOL_SOCKET, SO_ERROR, &err, &len) < 0) err = errno;
            if (err != 0) {
                last = detail::system_error(ErrorCode::io, "connect to " + name + " failed", err);
                continue;
            }
        }
        set_no_delay(fd->get(), target.family);
        return std::unique_ptr<StreamTransport>(new StreamTransport(std::move(*fd), options));
    }
    return last;
}

Status StreamTransport::send(ByteView message) {
    if (closed_) return make_error(ErrorCode::closed, "stream: transport closed locally");
    if (link_error_) return *link_error_;
    if (message.size() > options_.max_message_size) {
        return make_error(ErrorCode::oversized, "stream: message of " + std::to_string(message.size()) +
                                                    " bytes exceeds the limit of " +
                                                    std::to_string(options_.max_message_size));
    }
    auto frame = encode_stream_frame(message);
    if (!frame) return frame.error();

    const auto deadline = detail::deadline_after(options_.send_timeout);
    ByteView rest(*frame);
    while (!rest.empty()) {
        const ssize_t n = ::send(fd_.get(), rest.data(), rest.size(), kSendFlags);
        if (n > 0) {
            rest = rest.subspan(static_cast<std::size_t>(n));
            continue;
        }
        const int err = n < 0 ? errno : EPIPE;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) {
            auto ready = detail::wait_for(fd_.get(), POLLOUT, deadline);
            if (!ready) {
                link_error_ = ready.error();
                return *link_error_;
            }
            if (*ready == 0) {
                // Part of the frame may be on the wire: the stream cannot be resumed.
                link_error_ = make_error(ErrorCode::timeout, "stream: peer did not read for " +
                                                                 std::to_string(options_.send_timeout.count()) +
                                                                 " ms");
                return *link_error_;
            }
            continue;
        }
        link_error_ = detail::system_error(peer_gone(err) ? ErrorCode::closed : ErrorCode::io,
                                           "stream: send failed", err);
        return *link_error_;
    }
    return {};
}

void StreamTransport::set_receive_handler(ReceiveHandler handler) { received_.set_handler(std::move(handler)); }

void StreamTransport::fail(Error error) {
    if (link_error_) return;
    link_error_ = error;
    received_.push(std::move(error));
}

void StreamTransport::read_available() {
    std::array<std::uint8_t, kReadChunk> buffer;  // NOLINT: filled by recv before use
    for (int reads = 0; reads < kMaxReadsPerPoll && !link_error_; ++reads) {
        const ssize_t n = ::recv(fd_.get(), buffer.data(), buffer.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            const int err = errno;
            fail(detail::system_error(peer_gone(err) ? ErrorCode::closed : ErrorCode::io,
                                      "stream: receive failed", err));
            return;
        }
        if (n == 0) {
            fail(make_error(ErrorCode::closed, decoder_.partial_size() == 0
                                                   ? "stream: peer closed the link"
                                                   : "stream: peer closed the link in the middle of a message"));
            return;
        }
        const Status fed = decoder_.feed(ByteView(buffer.data(), static_cast<std::size_t>(n)));
        while (auto message = decoder_.next()) received_.push(std::move(*message));
        if (!fed) {
            fail(fed.error());
            return;
        }
        if (static_cast<std::size_t>(n) < buffer.size()) return;  // drained
    }
}

Status StreamTransport::poll(std::chrono::milliseconds timeout) {
    if (closed_) return make_error(ErrorCode::closed, "stream: transport closed locally");
    if (link_error_ && received_.empty()) return *link_error_;

    const auto deadline = detail::deadline_after(timeout);
    while (received_.empty() && !link_error_) {
        auto ready = detail::wait_for(fd_.get(), POLLIN, deadline);
        if (!ready) {
            fail(ready.error());
            break;
        }
        if (*ready == 0) break;  // timeout
        read_available();
    }
    received_.deliver();
    return {};
}

void StreamTransport::close() {
    if (closed_) return;
    closed_ = true;
    fd_.reset();
}

}  // namespace credprov::transport
