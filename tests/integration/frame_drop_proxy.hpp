// A TCP proxy for fault injection between a provisioner and an agent: it
// forwards the stream link's length-prefixed frames (FRAMING.md) in both
// directions and cuts both connections right after the n-th frame, so a test
// can drop the link after any message of a session. Test support only.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <thread>
#include <vector>

#include "loopback_socket.hpp"

namespace credprov::testing {

class FrameDropProxy {
public:
    // Forwards to 127.0.0.1:upstream_port; cuts after `drop_after` frames.
    FrameDropProxy(int upstream_port, int drop_after) : upstream_(upstream_port), drop_after_(drop_after) {
        listen_fd_ = listen_on_loopback(port_, 4, "proxy");
        thread_ = std::thread([this] { serve(); });
    }
    ~FrameDropProxy() {
        stop_ = true;
        ::shutdown(listen_fd_, SHUT_RDWR);
        ::close(listen_fd_);
        thread_.join();
    }
    FrameDropProxy(const FrameDropProxy&) = delete;
    FrameDropProxy& operator=(const FrameDropProxy&) = delete;

    [[nodiscard]] int port() const { return port_; }
    [[nodiscard]] int frames_forwarded() const { return forwarded_; }

private:
    void serve() {
        const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) return;
        const int up = drop_after_ > 0 ? connect_to_loopback(upstream_) : -1;
        if (up >= 0) relay(client, up);
        if (up >= 0) ::close(up);
        ::close(client);
    }
    void relay(int a, int b) {
        std::vector<std::uint8_t> buf[2];
        const int fds[2] = {a, b};
        while (!stop_) {
            pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
            if (::poll(p, 2, 100) < 0) return;
            for (int i = 0; i < 2; ++i) {
                if (!(p[i].revents & (POLLIN | POLLHUP))) continue;
                std::uint8_t tmp[4096];
                const ssize_t n = ::read(fds[i], tmp, sizeof tmp);
                if (n <= 0) return;
                buf[i].insert(buf[i].end(), tmp, tmp + n);
                // Forward whole frames: 2-byte big-endian length, then payload.
                while (buf[i].size() >= 2) {
                    const std::size_t len = (std::size_t{buf[i][0]} << 8) | buf[i][1];
                    if (buf[i].size() < 2 + len) break;
                    if (::write(fds[1 - i], buf[i].data(), 2 + len) != static_cast<ssize_t>(2 + len)) return;
                    buf[i].erase(buf[i].begin(), buf[i].begin() + static_cast<std::ptrdiff_t>(2 + len));
                    if (++forwarded_ >= drop_after_) {
                        ::shutdown(a, SHUT_RDWR);
                        ::shutdown(b, SHUT_RDWR);
                        return;
                    }
                }
            }
        }
    }

    int upstream_;
    int drop_after_;
    int listen_fd_{-1};
    int port_{0};
    std::atomic<bool> stop_{false};
    std::atomic<int> forwarded_{0};
    std::thread thread_;
};

}  // namespace credprov::testing
