// Internal: the POSIX socket calls shared by StreamTransport and StreamListener
// (descriptor setup, name resolution, waiting with poll()).
//
// Must never block without a deadline (except getaddrinfo, which has none),
// never leak a descriptor on an error path, and never raise SIGPIPE.
#pragma once

#include <sys/socket.h>

#include <chrono>
#include <string_view>
#include <vector>

#include "credprov/protocol/result.hpp"
#include "credprov/transport/address.hpp"
#include "credprov/transport/unique_fd.hpp"

namespace credprov::transport::detail {

using Clock = std::chrono::steady_clock;

[[nodiscard]] Clock::time_point deadline_after(std::chrono::milliseconds timeout) noexcept;

// "<what>: <reason for err>" with the given code.
[[nodiscard]] Error system_error(ErrorCode code, std::string_view what, int err);

// Non-blocking, close-on-exec and (where the platform has it) SO_NOSIGPIPE.
[[nodiscard]] Status prepare_descriptor(int fd);
[[nodiscard]] Result<UniqueFd> open_stream_socket(int family);

struct SocketAddress {
    sockaddr_storage storage{};
    socklen_t length{0};
    int family{AF_UNSPEC};
};

// The socket addresses a TCP address resolves to (passive: for bind), or the
// one sockaddr_un of a Unix address.
[[nodiscard]] Result<std::vector<SocketAddress>> resolve(const Address& address, bool passive);

// The numeric TCP address of a bound or connected socket.
[[nodiscard]] Result<Address> local_tcp_address(int fd);

// Waits until fd has one of events or deadline passes; the revents, 0 on timeout.
[[nodiscard]] Result<short> wait_for(int fd, short events, Clock::time_point deadline);

}  // namespace credprov::transport::detail
