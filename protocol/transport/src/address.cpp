// Parsing and printing of stream link addresses (see address.hpp).
//
// Pure string handling plus inet_pton for validation; must never resolve
// names or touch sockets, and never accept an address that would be
// truncated or reinterpreted by the socket calls.
#include "credprov/transport/address.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <algorithm>
#include <cctype>
#include <string>

namespace credprov::transport {

namespace {

constexpr std::string_view kTcpScheme = "tcp://";
constexpr std::string_view kUnixScheme = "unix:";
constexpr std::size_t kMaxHostNameLength = 253;

Error bad(std::string_view text, std::string why) {
    return make_error(ErrorCode::malformed, "bad address '" + std::string(text) + "': " + std::move(why));
}

bool is_host_name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '-' || c == '.' || c == '_';
}

Result<std::uint16_t> parse_port(std::string_view text, std::string_view port) {
    if (port.empty()) return bad(text, "missing port after ':'");
    if (port.size() > 5 || !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return bad(text, "port '" + std::string(port) + "' is not a number from 0 to 65535");
    }
    unsigned value = 0;
    for (char c : port) value = value * 10 + static_cast<unsigned>(c - '0');
    if (value > 65535) return bad(text, "port " + std::to_string(value) + " is above 65535");
    return static_cast<std::uint16_t>(value);
}

Result<Address> parse_tcp(std::string_view text, std::string_view rest) {
    std::string_view host;
    std::string_view port;
    if (!rest.empty() && rest.front() == '[') {
        const auto close = rest.find(']');
        if (close == std::string_view::npos) return bad(text, "'[' without a closing ']'");
        host = rest.substr(1, close - 1);
        const std::string_view after = rest.substr(close + 1);
        if (after.empty() || after.front() != ':') return bad(text, "expected ':port' after ']'");
        port = after.substr(1);
        in6_addr v6{};
        if (host.empty() || inet_pton(AF_INET6, std::string(host).c_str(), &v6) != 1) {
            return bad(text, "'" + std::string(host) + "' is not an IPv6 address");
        }
    } else {
        const auto colon = rest.rfind(':');
        if (colon == std::string_view::npos) return bad(text, "missing ':port'");
        host = rest.substr(0, colon);
        port = rest.substr(colon + 1);
        if (host.empty()) return bad(text, "missing host");
        if (host.find(':') != std::string_view::npos) {
            return bad(text, "an IPv6 address must be written in brackets, e.g. tcp://[::1]:4000");
        }
        if (host.size() > kMaxHostNameLength || !std::all_of(host.begin(), host.end(), is_host_name_char)) {
            return bad(text, "'" + std::string(host) + "' is not a valid host name or IPv4 address");
        }
    }
    auto parsed_port = parse_port(text, port);
    if (!parsed_port) return parsed_port.error();
    return Address(TcpAddress{std::string(host), *parsed_port});
}

Result<Address> parse_unix(std::string_view text, std::string_view path) {
    if (path.empty()) return bad(text, "missing socket path after 'unix:'");
    if (path.find('\0') != std::string_view::npos) return bad(text, "socket path contains a NUL byte");
    if (path.size() >= max_unix_path_length()) {
        return bad(text, "socket path is " + std::to_string(path.size()) + " bytes, the limit is " +
                             std::to_string(max_unix_path_length() - 1));
    }
    return Address(UnixAddress{std::string(path)});
}

}  // namespace

std::size_t max_unix_path_length() noexcept { return sizeof(sockaddr_un::sun_path); }

Result<Address> Address::parse(std::string_view text) {
    if (text.starts_with(kTcpScheme)) return parse_tcp(text, text.substr(kTcpScheme.size()));
    if (text.starts_with(kUnixScheme)) return parse_unix(text, text.substr(kUnixScheme.size()));
    return bad(text, "unknown scheme, expected tcp://host:port or unix:/path");
}

std::string Address::to_string() const {
    if (const auto* t = tcp()) {
        const bool v6 = t->host.find(':') != std::string::npos;
        return std::string(kTcpScheme) + (v6 ? "[" + t->host + "]" : t->host) + ":" + std::to_string(t->port);
    }
    return std::string(kUnixScheme) + unix_socket()->path;
}

}  // namespace credprov::transport
