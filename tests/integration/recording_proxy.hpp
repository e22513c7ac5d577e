// A TCP proxy between a provisioner and an agent that records every frame of
// the stream link (FRAMING.md: 2-byte big-endian length, then the message)
// with its direction: what an eavesdropper on the link captures, for replay
// tests. It forwards the first `forward` frames; after that, by policy, it
// holds every further frame (recorded, never delivered) with both
// connections left open, so each peer waits as on a stalled link, or it
// records the next frame and cuts both connections. Once either peer closes,
// the other connection is closed too. Serves one connection. Test support
// only: never used by the product.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <limits>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "loopback_socket.hpp"

namespace credprov::testing {

class RecordingProxy {
public:
    enum class Direction { to_device, to_provisioner };
    enum class AfterLimit { hold, cut };
    struct Frame {
        Direction direction;
        std::vector<std::uint8_t> message;  // without the length prefix
        bool forwarded;
    };
    static constexpr std::size_t kForwardAll = std::numeric_limits<std::size_t>::max();

    // Forwards to 127.0.0.1:upstream_port.
    explicit RecordingProxy(int upstream_port, std::size_t forward = kForwardAll, AfterLimit after = AfterLimit::hold)
        : upstream_(upstream_port), forward_(forward), after_(after) {
        listen_fd_ = listen_on_loopback(port_, 4, "recording proxy");
        thread_ = std::thread([this] { serve(); });
    }
    ~RecordingProxy() {
        stop_ = true;
        ::shutdown(listen_fd_, SHUT_RDWR);
        ::close(listen_fd_);
        thread_.join();
    }
    RecordingProxy(const RecordingProxy&) = delete;
    RecordingProxy& operator=(const RecordingProxy&) = delete;

    [[nodiscard]] int port() const { return port_; }

    [[nodiscard]] std::vector<Frame> frames() const {
        std::lock_guard lock(mutex_);
        return frames_;
    }
    // The messages one side sent, in order (forwarded or not).
    [[nodiscard]] std::vector<std::vector<std::uint8_t>> sent(Direction d) const {
        std::vector<std::vector<std::uint8_t>> out;
        for (const auto& f : frames()) {
            if (f.direction == d) out.push_back(f.message);
        }
        return out;
    }
    // Waits until at least n frames were seen (forwarded or held).
    [[nodiscard]] bool wait_for_frames(std::size_t n, std::chrono::milliseconds timeout) const {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return frames_.size() >= n; });
    }
    // Waits until both connections are closed.
    [[nodiscard]] bool wait_closed(std::chrono::milliseconds timeout) const {
        std::unique_lock lock(mutex_);
        return changed_.wait_for(lock, timeout, [&] { return closed_; });
    }

private:
    void serve() {
        const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
        if (client < 0) return;
        const int up = connect_to_loopback(upstream_);
        if (up >= 0) relay(client, up);
        if (up >= 0) ::close(up);
        ::close(client);
        std::lock_guard lock(mutex_);
        closed_ = true;
        changed_.notify_all();
    }
    // Records one whole frame; returns whether it may be forwarded, and
    // whether the link is to be cut now.
    std::pair<bool, bool> record(Direction d, const std::uint8_t* message, std::size_t len) {
        std::lock_guard lock(mutex_);
        const bool forward = forwarded_ < forward_;
        if (forward) ++forwarded_;
        frames_.push_back(Frame{d, std::vector<std::uint8_t>(message, message + len), forward});
        changed_.notify_all();
        return {forward, !forward && after_ == AfterLimit::cut};
    }
    void relay(int client, int up) {
        std::vector<std::uint8_t> buf[2];
        const int fds[2] = {client, up};
        const Direction dir[2] = {Direction::to_device, Direction::to_provisioner};
        while (!stop_) {
            pollfd p[2] = {{client, POLLIN, 0}, {up, POLLIN, 0}};
            if (::poll(p, 2, 100) < 0) return;
            for (int i = 0; i < 2; ++i) {
                if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
                std::uint8_t tmp[4096];
                const ssize_t n = ::read(fds[i], tmp, sizeof tmp);
                if (n <= 0) return;  // one peer is gone: so is the link
                buf[i].insert(buf[i].end(), tmp, tmp + n);
                while (buf[i].size() >= 2) {
                    const std::size_t len = (std::size_t{buf[i][0]} << 8) | buf[i][1];
                    if (buf[i].size() < 2 + len) break;
                    const auto [forward, cut] = record(dir[i], buf[i].data() + 2, len);
                    if (forward && ::write(fds[1 - i], buf[i].data(), 2 + len) != static_cast<ssize_t>(2 + len)) return;
                    buf[i].erase(buf[i].begin(), buf[i].begin() + static_cast<std::ptrdiff_t>(2 + len));
                    if (cut) {
                        ::shutdown(client, SHUT_RDWR);
                        ::shutdown(up, SHUT_RDWR);
                        return;
                    }
                }
            }
        }
    }

    int upstream_;
    std::size_t forward_;
    AfterLimit after_;
    int listen_fd_{-1};
    int port_{0};
    std::atomic<bool> stop_{false};
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::vector<Frame> frames_;
    std::size_t forwarded_{0};
    bool closed_{false};
    std::thread thread_;
};

}  // namespace credprov::testing
