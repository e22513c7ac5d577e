// Addresses of stream links: "tcp://host:port" (IPv4, [IPv6] or a name) and
// "unix:/path". Parsing is pure; name resolution happens at connect/listen.
//
// Must never accept an address it cannot round-trip through to_string(), and
// never let a malformed one through to the socket calls.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "credprov/protocol/result.hpp"

namespace credprov::transport {

struct TcpAddress {
    std::string host;  // IPv4 literal, IPv6 literal without brackets, or a host name
    std::uint16_t port{0};  // 0: any free port (listen only)
    bool operator==(const TcpAddress&) const = default;
};

struct UnixAddress {
    std::string path;  // a filesystem path, shorter than sockaddr_un::sun_path
    bool operator==(const UnixAddress&) const = default;
};

class Address {
public:
    explicit Address(TcpAddress tcp) : v_(std::move(tcp)) {}
    explicit Address(UnixAddress local) : v_(std::move(local)) {}

    // ErrorCode::malformed with a message naming what is wrong.
    [[nodiscard]] static Result<Address> parse(std::string_view text);

    [[nodiscard]] const TcpAddress* tcp() const noexcept { return std::get_if<TcpAddress>(&v_); }
    [[nodiscard]] const UnixAddress* unix_socket() const noexcept { return std::get_if<UnixAddress>(&v_); }
    [[nodiscard]] std::string to_string() const;

    bool operator==(const Address&) const = default;

private:
    std::variant<TcpAddress, UnixAddress> v_;
};

// sun_path holds this many bytes including the terminating NUL.
[[nodiscard]] std::size_t max_unix_path_length() noexcept;

}  // namespace credprov::transport
