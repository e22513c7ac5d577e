// Internal POSIX socket plumbing for the stream transport (posix_socket.hpp).
//
// Must never block without a deadline (except getaddrinfo), never leak a
// descriptor on an error path, and never raise SIGPIPE.
#include "posix_socket.hpp"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/un.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <climits>
#include <cstring>
#include <string>
#include <system_error>

namespace credprov::transport::detail {

Clock::time_point deadline_after(std::chrono::milliseconds timeout) noexcept {
    return Clock::now() + std::max(timeout, std::chrono::milliseconds{0});
}

Error system_error(ErrorCode code, std::string_view what, int err) {
    return make_error(code, std::string(what) + ": " + std::generic_category().message(err));
}

Status prepare_descriptor(int fd) {
    const int status_flags = ::fcntl(fd, F_GETFL);
    if (status_flags < 0 || ::fcntl(fd, F_SETFL, status_flags | O_NONBLOCK) < 0) {
        return system_error(ErrorCode::io, "cannot make socket non-blocking", errno);
    }
    const int fd_flags = ::fcntl(fd, F_GETFD);
    if (fd_flags < 0 || ::fcntl(fd, F_SETFD, fd_flags | FD_CLOEXEC) < 0) {
        return system_error(ErrorCode::io, "cannot set close-on-exec on socket", errno);
    }
#ifdef SO_NOSIGPIPE
    const int one = 1;
    if (::setsockopt(fd, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one) < 0) {
        return system_error(ErrorCode::io, "cannot set SO_NOSIGPIPE", errno);
    }
#endif
    return {};
}

Result<UniqueFd> open_stream_socket(int family) {
    UniqueFd fd(::socket(family, SOCK_STREAM, 0));
    if (!fd) return system_error(ErrorCode::io, "cannot create socket", errno);
    if (Status prepared = prepare_descriptor(fd.get()); !prepared) return prepared.error();
    return fd;
}

Result<std::vector<SocketAddress>> resolve(const Address& address, bool passive) {
    std::vector<SocketAddress> out;
    if (const auto* local = address.unix_socket()) {
        SocketAddress sa;
        auto* un = reinterpret_cast<sockaddr_un*>(&sa.storage);
        un->sun_family = AF_UNIX;
        if (local->path.size() >= sizeof un->sun_path) {
            return make_error(ErrorCode::malformed, "unix socket path too long: " + address.to_string());
        }
        std::memcpy(un->sun_path, local->path.data(), local->path.size());
        sa.length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + local->path.size() + 1);
        sa.family = AF_UNIX;
        out.push_back(sa);
        return out;
    }

    const TcpAddress& tcp = *address.tcp();
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
    addrinfo* found = nullptr;
    const std::string port = std::to_string(tcp.port);
    const int rc = ::getaddrinfo(tcp.host.c_str(), port.c_str(), &hints, &found);
    if (rc != 0) {
        const std::string what = "cannot resolve host '" + tcp.host + "'";
        if (rc == EAI_SYSTEM) return system_error(ErrorCode::io, what, errno);
        return make_error(ErrorCode::io, what + ": " + ::gai_strerror(rc));
    }
    for (const addrinfo* ai = found; ai != nullptr; ai = ai->ai_next) {
        if (ai->ai_addrlen > sizeof(sockaddr_storage)) continue;
        SocketAddress sa;
        std::memcpy(&sa.storage, ai->ai_addr, ai->ai_addrlen);
        sa.length = ai->ai_addrlen;
        sa.family = ai->ai_family;
        out.push_back(sa);
    }
    ::freeaddrinfo(found);
    if (out.empty()) return make_error(ErrorCode::io, "host '" + tcp.host + "' has no usable address");
    return out;
}

Result<Address> local_tcp_address(int fd) {
    sockaddr_storage storage{};
    socklen_t length = sizeof storage;
    if (::getsockname(fd, reinterpret_cast<sockaddr*>(&storage), &length) < 0) {
        return system_error(ErrorCode::io, "getsockname failed", errno);
    }
    char host[INET6_ADDRSTRLEN] = {};
    std::uint16_t port = 0;
    if (storage.ss_family == AF_INET) {
        const auto* in4 = reinterpret_cast<const sockaddr_in*>(&storage);
        ::inet_ntop(AF_INET, &in4->sin_addr, host, sizeof host);
        port = ntohs(in4->sin_port);
    } else if (storage.ss_family == AF_INET6) {
        const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&storage);
        ::inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host);
        port = ntohs(in6->sin6_port);
    } else {
        return make_error(ErrorCode::internal, "socket is not an IP socket");
    }
    return Address(TcpAddress{host, port});
}

Result<short> wait_for(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        const auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
        const int ms = static_cast<int>(std::clamp<std::chrono::milliseconds::rep>(left.count(), 0, INT_MAX));
        pollfd p{fd, events, 0};
        const int rc = ::poll(&p, 1, ms);
        if (rc > 0) return p.revents;
        if (rc == 0) {
            if (Clock::now() >= deadline) return static_cast<short>(0);
            continue;  // woke early (rounding); wait out the rest
        }
        if (errno != EINTR) return system_error(ErrorCode::io, "poll failed", errno);
    }
}

}  // namespace credprov::transport::detail
