// Transport over a byte stream (TCP or Unix socket) with the 2-byte length
// prefix of FRAMING.md, and a listener that accepts such links. POSIX sockets
// and poll(), non-blocking descriptors, no threads: the caller drives I/O with
// poll() or watches fd() in its own event loop.
//
// Must never write a partial frame and carry on (a failed send kills the
// link), never raise SIGPIPE, never leak or double-close a descriptor, and
// never put message bytes into errors or logs.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>

#include "credprov/protocol/framing.hpp"
#include "credprov/protocol/receive_queue.hpp"
#include "credprov/protocol/transport.hpp"
#include "credprov/transport/address.hpp"
#include "credprov/transport/unique_fd.hpp"

namespace credprov::transport {

struct StreamOptions {
    // Largest message sent or accepted; at most kMaxEncodableMessageSize.
    std::size_t max_message_size = kDefaultMaxMessageSize;
    // How long send() may wait for a peer that does not read.
    std::chrono::milliseconds send_timeout{5000};
};

class StreamTransport final : public Transport {
public:
    // Resolves the address and connects; ErrorCode::timeout when the connection
    // is not up within timeout, io (with the system's reason) when it fails.
    [[nodiscard]] static Result<std::unique_ptr<StreamTransport>> connect(
        const Address& address, std::chrono::milliseconds timeout, StreamOptions options = {});

    // Takes over a connected stream socket (e.g. one end of a socketpair) and
    // makes it non-blocking.
    [[nodiscard]] static Result<std::unique_ptr<StreamTransport>> adopt(UniqueFd fd,
                                                                        StreamOptions options = {});

    ~StreamTransport() override;

    // Writes the whole frame, waiting with poll() up to send_timeout.
    [[nodiscard]] Status send(ByteView message) override;
    void set_receive_handler(ReceiveHandler handler) override;
    [[nodiscard]] Status poll(std::chrono::milliseconds timeout) override;
    void close() override;

    // For event loops: readable means poll(0) has work. -1 after close().
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }
    [[nodiscard]] const StreamOptions& options() const noexcept { return options_; }

private:
    StreamTransport(UniqueFd fd, StreamOptions options);

    // Reads what the socket has; queues messages and, at the end, the link error.
    void read_available();
    void fail(Error error);

    UniqueFd fd_;
    StreamOptions options_;
    StreamDecoder decoder_;
    ReceiveQueue received_;
    std::optional<Error> link_error_;  // terminal; set once it is queued or returned by send()
    bool closed_{false};
};

class StreamListener {
public:
    // Binds and listens. unix: removes a stale socket file left by a dead
    // listener, never a live one or a non-socket (liveness is probed with a
    // connect, which a live listener sees as a connection closed at once).
    // tcp: SO_REUSEADDR; port 0 picks a free port, see bound_address().
    [[nodiscard]] static Result<StreamListener> listen(const Address& address, StreamOptions options = {});

    StreamListener(StreamListener&& other) noexcept;
    StreamListener& operator=(StreamListener&&) noexcept;
    StreamListener(const StreamListener&) = delete;
    StreamListener& operator=(const StreamListener&) = delete;
    // Closes the socket and removes the unix socket file if it is still ours.
    ~StreamListener();

    // Waits up to timeout for a connection; ErrorCode::timeout if none comes.
    [[nodiscard]] Result<std::unique_ptr<StreamTransport>> accept(std::chrono::milliseconds timeout);

    // The address actually bound (with the real port for tcp port 0).
    [[nodiscard]] const Address& bound_address() const noexcept { return bound_; }
    // For event loops: readable means accept(0) will not wait.
    [[nodiscard]] int fd() const noexcept { return fd_.get(); }

private:
    struct SocketFileId {
        unsigned long long device{0};
        unsigned long long inode{0};
    };

    StreamListener(UniqueFd fd, Address bound, StreamOptions options, std::optional<SocketFileId> file);
    void remove_socket_file() noexcept;

    UniqueFd fd_;
    Address bound_;
    StreamOptions options_;
    std::optional<SocketFileId> socket_file_;  // the unix socket file this listener created
};

}  // namespace credprov::transport
