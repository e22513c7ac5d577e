// StreamListener: accepts stream links on a TCP port or a Unix socket path
// (see stream_transport.hpp).
//
// Must never remove a file that is not a stale socket (a regular file, or a
// socket a live listener still answers on), never remove a socket file that a
// later listener has replaced, and never leak the listening descriptor.
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <optional>
#include <string>
#include <utility>

#include "credprov/transport/stream_transport.hpp"
#include "posix_socket.hpp"

namespace credprov::transport {

namespace {

constexpr int kBacklog = 16;

// Removes a socket file left behind by a listener that is gone; refuses when
// the path is something else or a listener still answers there.
Status clear_stale_socket(const UnixAddress& local, const detail::SocketAddress& target,
                          const std::string& name) {
    struct stat st {};
    if (::lstat(local.path.c_str(), &st) < 0) {
        if (errno == ENOENT) return {};
        return detail::system_error(ErrorCode::io, "cannot inspect " + name, errno);
    }
    if (!S_ISSOCK(st.st_mode)) {
        return make_error(ErrorCode::io, name + " exists and is not a socket; refusing to remove it");
    }
    auto probe = detail::open_stream_socket(AF_UNIX);
    if (!probe) return probe.error();
    if (::connect(probe->get(), reinterpret_cast<const sockaddr*>(&target.storage), target.length) == 0 ||
        errno == EAGAIN || errno == EINPROGRESS) {
        return make_error(ErrorCode::io, name + " is in use by a running listener");
    }
    if (errno != ECONNREFUSED) return detail::system_error(ErrorCode::io, "cannot probe " + name, errno);
    if (::unlink(local.path.c_str()) < 0 && errno != ENOENT) {
        return detail::system_error(ErrorCode::io, "cannot remove stale " + name, errno);
    }
    return {};
}

}  // namespace

StreamListener::StreamListener(UniqueFd fd, Address bound, StreamOptions options,
                               std::optional<SocketFileId> file)
    : fd_(std::move(fd)), bound_(std::move(bound)), options_(options), socket_file_(file) {}

StreamListener::StreamListener(StreamListener&& other) noexcept
    : fd_(std::move(other.fd_)),
      bound_(std::move(other.bound_)),
      options_(other.options_),
      socket_file_(std::exchange(other.socket_file_, std::nullopt)) {}

StreamListener& StreamListener::operator=(StreamListener&& other) noexcept {
    if (this != &other) {
        remove_socket_file();
        fd_ = std::move(other.fd_);
        bound_ = std::move(other.bound_);
        options_ = other.options_;
        socket_file_ = std::exchange(other.socket_file_, std::nullopt);
    }
    return *this;
}

StreamListener::~StreamListener() { remove_socket_file(); }

void StreamListener::remove_socket_file() noexcept {
    if (!socket_file_) return;
    const auto* local = bound_.unix_socket();
    struct stat st {};
    if (local != nullptr && ::lstat(local->path.c_str(), &st) == 0 &&
        static_cast<unsigned long long>(st.st_dev) == socket_file_->device &&
        static_cast<unsigned long long>(st.st_ino) == socket_file_->inode) {
        (void)::unlink(local->path.c_str());
    }
    socket_file_.reset();
}

Result<StreamListener> StreamListener::listen(const Address& address, StreamOptions options) {
    const std::string name = address.to_string();
    auto targets = detail::resolve(address, /*passive=*/true);
    if (!targets) return targets.error();

    if (const auto* local = address.unix_socket()) {
        const detail::SocketAddress& target = targets->front();
        if (Status cleared = clear_stale_socket(*local, target, name); !cleared) return cleared.error();
        auto fd = detail::open_stream_socket(AF_UNIX);
        if (!fd) return fd.error();
        if (::bind(fd->get(), reinterpret_cast<const sockaddr*>(&target.storage), target.length) < 0) {
            return detail::system_error(ErrorCode::io, "cannot bind " + name, errno);
        }
        struct stat st {};
        if (::lstat(local->path.c_str(), &st) < 0) {
            return detail::system_error(ErrorCode::io, "cannot inspect " + name, errno);
        }
        // From here on the listener owns the file: error paths remove it.
        StreamListener listener(std::move(*fd), address, options,
                                SocketFileId{static_cast<unsigned long long>(st.st_dev),
                                             static_cast<unsigned long long>(st.st_ino)});
        if (::listen(listener.fd(), kBacklog) < 0) {
            return detail::system_error(ErrorCode::io, "cannot listen on " + name, errno);
        }
        return listener;
    }

    Error last = make_error(ErrorCode::io, "cannot listen on " + name);
    for (const detail::SocketAddress& target : *targets) {
        auto fd = detail::open_stream_socket(target.family);
        if (!fd) {
            last = fd.error();
            continue;
        }
        const int one = 1;
        if (::setsockopt(fd->get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0) {
            last = detail::system_error(ErrorCode::io, "cannot set SO_REUSEADDR for " + name, errno);
            continue;
        }
        if (::bind(fd->get(), reinterpret_cast<const sockaddr*>(&target.storage), target.length) < 0) {
            last = detail::system_error(ErrorCode::io, "cannot bind " + name, errno);
            continue;
        }
        if (::listen(fd->get(), kBacklog) < 0) {
            last = detail::system_error(ErrorCode::io, "cannot listen on " + name, errno);
            continue;
        }
        auto bound = detail::local_tcp_address(fd->get());
        if (!bound) return bound.error();
        return StreamListener(std::move(*fd), std::move(*bound), options, std::nullopt);
    }
    return last;
}

Result<std::unique_ptr<StreamTransport>> StreamListener::accept(std::chrono::milliseconds timeout) {
    if (!fd_) return make_error(ErrorCode::closed, "listener is closed");
    const auto deadline = detail::deadline_after(timeout);
    for (;;) {
        auto ready = detail::wait_for(fd_.get(), POLLIN, deadline);
        if (!ready) return ready.error();
        if (*ready == 0) {
            return make_error(ErrorCode::timeout, "no connection on " + bound_.to_string() + " within " +
                                                      std::to_string(timeout.count()) + " ms");
        }
        UniqueFd client(::accept(fd_.get(), nullptr, nullptr));
        if (client) return StreamTransport::adopt(std::move(client), options_);
        // The connection went away between poll and accept, or a signal hit: wait again.
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ECONNABORTED || errno == EINTR) continue;
        return detail::system_error(ErrorCode::io, "accept on " + bound_.to_string() + " failed", errno);
    }
}

}  // namespace credprov::transport
