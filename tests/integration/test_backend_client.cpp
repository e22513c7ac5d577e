// The provisioner's HTTP client (CLI and app) against a real backend: one
// kept connection for a session's requests; a connection the backend closed
// while idle is opened again without the caller seeing it, and a request
// whose connection dies as it goes out is sent again once.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <thread>
#include <vector>

#include "backend_flows.hpp"
#include "backend_test.hpp"
#include "credprov/provisioner/backend_client.hpp"
#include "loopback_socket.hpp"

using namespace credprov;
using namespace credprov::testing;

TEST_CASE("provisioner backend client: requests after the backend closed the idle kept connection still get answers") {
    BackendLab lab(Storage::sqlite);
    Technician tech(lab);
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    provisioner::BackendClient client("http://127.0.0.1:" + std::to_string(lab.port), "", &tech.key, 10);
    const json ask{{"device_id", dev.identity.id.to_string()}, {"operations", {"deliver-sealed", "query"}}, {"ttl_s", 600}};
    auto first = client.post("/v1/tokens", ask);
    REQUIRE_MESSAGE(first.status == 201, first.describe());
    auto minted = client.post("/v1/bundles", json{{"device", BackendLab::device_json(dev.identity)}});
    REQUIRE_MESSAGE(minted.status == 201, minted.describe());
    // The backend closes a connection idle for 5 s (cpp-httplib's keep-alive
    // timeout); the delivery to the device may well take longer.
    std::this_thread::sleep_for(std::chrono::milliseconds(5500));
    auto again = client.post("/v1/bundles", json{{"device", BackendLab::device_json(dev.identity)}});
    REQUIRE_MESSAGE(again.reachable, again.describe());
    CHECK(again.status == 200);  // the same pending bundle, idempotently
    CHECK(again.body["object_id"] == minted.body["object_id"]);
    auto op = client.get("/v1/operator");
    CHECK(op.status == 200);
}

namespace {

// A TCP proxy in front of the backend that, while armed, closes a client's
// connection the moment a request arrives on it, forwarding nothing: a kept
// connection that dies just as a request goes out. Test support only.
class DroppingProxy {
public:
    explicit DroppingProxy(int upstream) : upstream_(upstream) {
        listen_fd_ = listen_on_loopback(port_, 8, "dropping proxy");
        acceptor_ = std::thread([this] {
            for (;;) {
                const int client = ::accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC);
                if (client < 0) return;
                ++connections_;
                relays_.emplace_back([this, client] { relay(client); });
            }
        });
    }
    ~DroppingProxy() {
        stop_ = true;
        ::shutdown(listen_fd_, SHUT_RDWR);
        ::close(listen_fd_);
        acceptor_.join();
        for (auto& t : relays_) t.join();
    }
    DroppingProxy(const DroppingProxy&) = delete;
    DroppingProxy& operator=(const DroppingProxy&) = delete;

    [[nodiscard]] int port() const { return port_; }
    void drop_next(int requests) { drops_left_ = requests; }
    [[nodiscard]] int dropped() const { return dropped_; }
    [[nodiscard]] int connections() const { return connections_; }

private:
    void relay(int client) {
        const int up = connect_to_loopback(upstream_);
        if (up >= 0) {
            char buf[16384];
            pollfd fds[2] = {{client, POLLIN, 0}, {up, POLLIN, 0}};
            while (!stop_) {
                if (::poll(fds, 2, 100) <= 0) continue;
                if (fds[0].revents & (POLLIN | POLLHUP | POLLERR)) {
                    const ssize_t n = ::recv(client, buf, sizeof buf, 0);
                    if (n <= 0) break;
                    if (drops_left_ > 0) {  // the request dies with the connection
                        --drops_left_;
                        ++dropped_;
                        break;
                    }
                    if (::send(up, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) break;
                }
                if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
                    const ssize_t n = ::recv(up, buf, sizeof buf, 0);
                    if (n <= 0 || ::send(client, buf, static_cast<std::size_t>(n), MSG_NOSIGNAL) != n) break;
                }
            }
        }
        if (up >= 0) ::close(up);
        ::close(client);
    }

    int upstream_;
    int listen_fd_{-1};
    int port_{0};
    std::atomic<bool> stop_{false};
    std::atomic<int> drops_left_{0}, dropped_{0}, connections_{0};
    std::thread acceptor_;
    std::vector<std::thread> relays_;  // joined at destruction; a test opens few connections
};

}  // namespace

TEST_CASE("provisioner backend client: a kept connection that dies as a request goes out is retried once, on a new one") {
    BackendLab lab(Storage::sqlite);
    Technician tech(lab);
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    DroppingProxy proxy(lab.port);
    provisioner::BackendClient client("http://127.0.0.1:" + std::to_string(proxy.port()), "", &tech.key, 10);
    const json ask{{"device_id", dev.identity.id.to_string()}, {"operations", {"deliver-sealed", "query"}}, {"bundle", true}};
    auto first = client.post("/v1/tokens", ask);
    REQUIRE_MESSAGE(first.status == 201, first.describe());
    CHECK(proxy.connections() == 1);

    // The kept connection dies under the next request: sent again, once, on
    // a new connection, and answered (the same pending bundle).
    proxy.drop_next(1);
    auto again = client.post("/v1/tokens", ask);
    REQUIRE_MESSAGE(again.ok(), again.describe());
    CHECK(again.body["bundle"]["object_id"] == first.body["bundle"]["object_id"]);
    CHECK(proxy.dropped() == 1);
    CHECK(proxy.connections() == 2);

    // Only once: when the second attempt dies too, the caller hears of it
    // (and the provisioner's flow keeps its journal for a later retry).
    proxy.drop_next(2);
    auto lost = client.post("/v1/tokens", ask);
    CHECK_FALSE(lost.reachable);
    CHECK(lost.describe().find("backend unreachable") != std::string::npos);
    CHECK(proxy.dropped() == 3);
    CHECK(proxy.connections() == 3);
    // And the next request works again.
    CHECK(client.get("/v1/operator").status == 200);
}

TEST_CASE("provisioner backend client: a batch refused by the rate limit waits out Retry-After and goes through") {
    LabOptions tight;
    tight.rate_per_second = 1;
    tight.rate_burst = 4;
    BackendLab lab(Storage::sqlite, tight);
    Technician tech(lab);
    provisioner::BackendClient client("http://127.0.0.1:" + std::to_string(lab.port), "", &tech.key, 10);
    auto asks = [](int n) {
        std::vector<std::pair<std::string, json>> out;
        for (int i = 0; i < n; ++i) {
            out.emplace_back("/v1/tokens", json{{"device_id", DeviceIdentity::generate().id.to_string()}, {"operations", {"query"}}});
        }
        return out;
    };
    auto first = client.batch(asks(4));  // the whole burst
    REQUIRE_MESSAGE(first.whole.status == 200, first.whole.describe());
    std::vector<std::uint64_t> waits;
    const auto started = std::chrono::steady_clock::now();
    auto second = client.batch(asks(2), [&](std::uint64_t s) { waits.push_back(s); });
    const std::string why = second.whole.describe() + " after " + std::to_string(waits.size()) + " waits";
    REQUIRE_MESSAGE(second.whole.status == 200, why);
    REQUIRE(second.each.size() == 2);
    CHECK(second.each[0].status == 201);
    CHECK(second.each[1].status == 201);
    REQUIRE_FALSE(waits.empty());  // it was refused first, and told how long to wait
    CHECK(waits.front() >= 1);
    CHECK(std::chrono::steady_clock::now() - started >= std::chrono::seconds(waits.front()));
}
