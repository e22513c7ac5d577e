// Tests of the transports: the in-memory loopback pair (with and without
// fragmentation), the receive() helper, and the stream transport over real
// TCP (127.0.0.1 only) and Unix sockets (in a private temp directory) and
// socketpairs. Never touches a non-loopback address.
#include <doctest/doctest.h>

#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "credprov/protocol/framing.hpp"
#include "credprov/protocol/loopback_transport.hpp"
#include "credprov/transport/stream_transport.hpp"

using namespace credprov;
using namespace credprov::transport;
using namespace std::chrono_literals;

namespace {

Bytes pattern(std::size_t size, std::uint8_t seed = 1) {
    Bytes b(size);
    for (std::size_t i = 0; i < size; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 13 + (i >> 8));
    return b;
}

Bytes must_receive(Transport& t, std::chrono::milliseconds timeout = 2000ms) {
    auto r = receive(t, timeout);
    if (!r.ok()) FAIL("receive failed: " << r.error().message);
    return std::move(r).value();
}

void check_error(const Error& e, ErrorCode code, std::string_view needle = {}) {
    CAPTURE(e.message);
    CHECK(e.code == code);
    CHECK_FALSE(e.message.empty());
    if (!needle.empty()) CHECK(e.message.find(needle) != std::string::npos);
}

// A private directory for Unix sockets, removed afterwards.
struct TempDir {
    std::filesystem::path path;
    TempDir() {
        std::string templ = (std::filesystem::temp_directory_path() / "credprov-test-XXXXXX").string();
        REQUIRE(::mkdtemp(templ.data()) != nullptr);
        path = templ;
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    [[nodiscard]] std::string socket(const std::string& name) const { return (path / name).string(); }
};

Address parse_ok(std::string_view text) {
    auto a = Address::parse(text);
    if (!a.ok()) FAIL("parse failed: " << a.error().message);
    return std::move(a).value();
}

struct Connected {
    std::unique_ptr<StreamTransport> client;
    std::unique_ptr<StreamTransport> server;
};

Connected connect_pair(StreamListener& listener, StreamOptions options = {}) {
    auto client = StreamTransport::connect(listener.bound_address(), 2000ms, options);
    if (!client.ok()) FAIL("connect failed: " << client.error().message);
    auto server = listener.accept(2000ms);
    if (!server.ok()) FAIL("accept failed: " << server.error().message);
    return {std::move(client).value(), std::move(server).value()};
}

std::pair<std::unique_ptr<StreamTransport>, UniqueFd> adopted_socketpair(StreamOptions options = {}) {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    UniqueFd raw(fds[1]);
    auto t = StreamTransport::adopt(UniqueFd(fds[0]), options);
    REQUIRE(t.ok());
    return {std::move(t).value(), std::move(raw)};
}

// Several messages both ways, including empty and maximum-size ones.
void exchange_messages(Transport& a, Transport& b) {
    const std::vector<Bytes> messages = {pattern(1), Bytes{}, pattern(100, 2), pattern(kDefaultMaxMessageSize, 3),
                                         pattern(4000, 4)};
    for (const Bytes& m : messages) REQUIRE(a.send(m).ok());
    for (const Bytes& m : messages) CHECK(must_receive(b) == m);
    for (const Bytes& m : messages) REQUIRE(b.send(m).ok());
    for (const Bytes& m : messages) CHECK(must_receive(a) == m);
}

}  // namespace

// ---- loopback ---------------------------------------------------------------

TEST_CASE("loopback: messages arrive in order at the other end only") {
    auto [a, b] = LoopbackTransport::make_pair();
    exchange_messages(*a, *b);
    // Nothing is echoed back to the sender.
    auto none = receive(*a, 0ms);
    REQUIRE_FALSE(none.ok());
    CHECK(none.error().code == ErrorCode::timeout);
}

TEST_CASE("loopback: with an MTU every message is fragmented and counted") {
    for (std::size_t mtu : {std::size_t{23}, std::size_t{185}, std::size_t{247}, std::size_t{250}}) {
        CAPTURE(mtu);
        auto [a, b] = LoopbackTransport::make_pair(mtu);
        exchange_messages(*a, *b);

        auto [c, d] = LoopbackTransport::make_pair(mtu);
        const std::size_t sizes[] = {0, 1000, kDefaultMaxMessageSize};
        std::uint64_t payload = 0;
        std::uint64_t framing = 0;
        std::uint64_t frames = 0;
        for (std::size_t size : sizes) {
            REQUIRE(c->send(pattern(size)).ok());
            payload += size;
            framing += framing_overhead(size, mtu);
            frames += fragment_count(size, mtu);
        }
        CHECK(c->counters().messages == 3);
        CHECK(c->counters().message_bytes == payload);
        CHECK(c->counters().framing_bytes == framing);
        CHECK(c->counters().frames == frames);
        CHECK(d->counters().messages == 0);
        for (std::size_t size : sizes) CHECK(must_receive(*d) == pattern(size));
    }
}

TEST_CASE("loopback: without an MTU no framing bytes are counted") {
    auto [a, b] = LoopbackTransport::make_pair();
    REQUIRE(a->send(pattern(300)).ok());
    CHECK(a->counters().messages == 1);
    CHECK(a->counters().message_bytes == 300);
    CHECK(a->counters().framing_bytes == 0);
    CHECK(a->counters().frames == 1);
}

TEST_CASE("loopback: oversized messages are refused and not counted") {
    auto [a, b] = LoopbackTransport::make_pair(23, 100);
    auto sent = a->send(pattern(101));
    REQUIRE_FALSE(sent.ok());
    check_error(sent.error(), ErrorCode::oversized);
    CHECK(a->counters().messages == 0);
    CHECK(a->counters().frames == 0);
    REQUIRE(a->send(pattern(100)).ok());
    CHECK(must_receive(*b) == pattern(100));
}

TEST_CASE("loopback: one poll hands every ready message to the handler") {
    auto [a, b] = LoopbackTransport::make_pair(23);
    std::vector<Result<Bytes>> got;
    b->set_receive_handler([&got](Result<Bytes> r) { got.push_back(std::move(r)); });
    REQUIRE(b->poll(0ms).ok());
    CHECK(got.empty());
    for (std::uint8_t i = 0; i < 3; ++i) REQUIRE(a->send(pattern(50, i)).ok());
    REQUIRE(b->poll(0ms).ok());
    REQUIRE(got.size() == 3);
    for (std::uint8_t i = 0; i < 3; ++i) {
        REQUIRE(got[i].ok());
        CHECK(*got[i] == pattern(50, i));
    }
}

TEST_CASE("loopback: receive() leaves later messages queued") {
    auto [a, b] = LoopbackTransport::make_pair();
    REQUIRE(a->send(pattern(3, 1)).ok());
    REQUIRE(a->send(pattern(3, 2)).ok());
    CHECK(must_receive(*b) == pattern(3, 1));
    CHECK(must_receive(*b) == pattern(3, 2));
    auto third = receive(*b, 10ms);
    REQUIRE_FALSE(third.ok());
    CHECK(third.error().code == ErrorCode::timeout);
}

TEST_CASE("loopback: a handler may replace itself during delivery") {
    auto [a, b] = LoopbackTransport::make_pair();
    for (std::uint8_t i = 0; i < 3; ++i) REQUIRE(a->send(pattern(4, i)).ok());
    std::vector<Bytes> first;
    std::vector<Bytes> second;
    auto& receiver = *b;
    receiver.set_receive_handler([&](Result<Bytes> r) {
        first.push_back(*r);
        receiver.set_receive_handler([&second](Result<Bytes> r2) { second.push_back(*r2); });
    });
    REQUIRE(receiver.poll(0ms).ok());
    CHECK(first == std::vector<Bytes>{pattern(4, 0)});
    CHECK(second == std::vector<Bytes>{pattern(4, 1), pattern(4, 2)});
}

TEST_CASE("loopback: close is reported to the peer after its pending messages") {
    auto [a, b] = LoopbackTransport::make_pair(185);
    REQUIRE(a->send(pattern(500)).ok());
    a->close();
    a->close();  // idempotent

    CHECK(must_receive(*b) == pattern(500));
    auto closed = receive(*b, 0ms);
    REQUIRE_FALSE(closed.ok());
    check_error(closed.error(), ErrorCode::closed);
    // Once delivered, polling reports the dead link directly.
    auto polled = b->poll(0ms);
    REQUIRE_FALSE(polled.ok());
    CHECK(polled.error().code == ErrorCode::closed);

    auto to_closed = b->send(pattern(1));
    REQUIRE_FALSE(to_closed.ok());
    CHECK(to_closed.error().code == ErrorCode::closed);
    auto from_closed = a->send(pattern(1));
    REQUIRE_FALSE(from_closed.ok());
    CHECK(from_closed.error().code == ErrorCode::closed);
    auto poll_closed = a->poll(0ms);
    REQUIRE_FALSE(poll_closed.ok());
    CHECK(poll_closed.error().code == ErrorCode::closed);
}

TEST_CASE("loopback: destroying one end closes the link") {
    auto [a, b] = LoopbackTransport::make_pair();
    a.reset();
    auto r = receive(*b, 0ms);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::closed);
}

// ---- addresses --------------------------------------------------------------

TEST_CASE("stream address: valid addresses parse and print back") {
    const Address v4 = parse_ok("tcp://127.0.0.1:4000");
    REQUIRE(v4.tcp() != nullptr);
    CHECK(v4.tcp()->host == "127.0.0.1");
    CHECK(v4.tcp()->port == 4000);
    CHECK(v4.to_string() == "tcp://127.0.0.1:4000");

    const Address v6 = parse_ok("tcp://[::1]:0");
    REQUIRE(v6.tcp() != nullptr);
    CHECK(v6.tcp()->host == "::1");
    CHECK(v6.tcp()->port == 0);
    CHECK(v6.to_string() == "tcp://[::1]:0");

    const Address name = parse_ok("tcp://localhost:65535");
    CHECK(name.tcp()->host == "localhost");
    CHECK(name.tcp()->port == 65535);

    const Address local = parse_ok("unix:/run/credprov/agent.sock");
    REQUIRE(local.unix_socket() != nullptr);
    CHECK(local.tcp() == nullptr);
    CHECK(local.unix_socket()->path == "/run/credprov/agent.sock");
    CHECK(local.to_string() == "unix:/run/credprov/agent.sock");
    CHECK(parse_ok(local.to_string()) == local);
    CHECK(parse_ok(v6.to_string()) == v6);
}

TEST_CASE("stream address: bad addresses give clear errors") {
    struct Case {
        std::string text;
        std::string needle;
    };
    const std::vector<Case> cases = {
        {"", "unknown scheme"},
        {"http://127.0.0.1:80", "unknown scheme"},
        {"127.0.0.1:80", "unknown scheme"},
        {"tcp://127.0.0.1", "missing ':port'"},
        {"tcp://127.0.0.1:", "missing port"},
        {"tcp://:80", "missing host"},
        {"tcp://127.0.0.1:65536", "above 65535"},
        {"tcp://127.0.0.1:12a", "not a number"},
        {"tcp://127.0.0.1:-1", "not a number"},
        {"tcp://127.0.0.1:123456", "not a number"},
        {"tcp://::1:80", "brackets"},
        {"tcp://[::1]80", "after ']'"},
        {"tcp://[::1:80", "closing ']'"},
        {"tcp://[]:80", "not an IPv6 address"},
        {"tcp://[127.0.0.1]:80", "not an IPv6 address"},
        {"tcp://bad host:1", "not a valid host name"},
        {"unix:", "missing socket path"},
        {"unix:/" + std::string(200, 'x'), "the limit is"},
        {std::string("unix:/a\0b", 9), "NUL"},
    };
    for (const Case& c : cases) {
        CAPTURE(c.text);
        auto a = Address::parse(c.text);
        REQUIRE_FALSE(a.ok());
        check_error(a.error(), ErrorCode::malformed, c.needle);
    }
}

// ---- stream transport -------------------------------------------------------

TEST_CASE("stream transport: TCP on 127.0.0.1 round-trips messages") {
    auto listener = StreamListener::listen(parse_ok("tcp://127.0.0.1:0"));
    REQUIRE(listener.ok());
    const TcpAddress* bound = listener->bound_address().tcp();
    REQUIRE(bound != nullptr);
    CHECK(bound->host == "127.0.0.1");
    CHECK(bound->port != 0);
    CHECK(listener->fd() >= 0);

    auto [client, server] = connect_pair(*listener);
    CHECK(client->fd() >= 0);
    exchange_messages(*client, *server);
}

TEST_CASE("stream transport: Unix socket round-trips messages and cleans up") {
    TempDir dir;
    const std::string path = dir.socket("agent.sock");
    {
        auto listener = StreamListener::listen(parse_ok("unix:" + path));
        REQUIRE(listener.ok());
        CHECK(listener->bound_address().to_string() == "unix:" + path);
        CHECK(std::filesystem::is_socket(path));
        auto [client, server] = connect_pair(*listener);
        exchange_messages(*client, *server);
    }
    CHECK_FALSE(std::filesystem::exists(path));
}

TEST_CASE("stream transport: a stale Unix socket file is replaced, a live one or a file is not") {
    TempDir dir;
    const std::string path = dir.socket("stale.sock");
    {
        // Bind without listening and close: a socket file nobody answers on.
        UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM, 0));
        sockaddr_un un{};
        un.sun_family = AF_UNIX;
        std::copy(path.begin(), path.end(), un.sun_path);
        REQUIRE(::bind(fd.get(), reinterpret_cast<const sockaddr*>(&un), sizeof un) == 0);
    }
    REQUIRE(std::filesystem::is_socket(path));
    auto listener = StreamListener::listen(parse_ok("unix:" + path));
    REQUIRE(listener.ok());

    auto second = StreamListener::listen(parse_ok("unix:" + path));
    REQUIRE_FALSE(second.ok());
    check_error(second.error(), ErrorCode::io, "in use");
    // The probe that found the live listener shows up there as a connection
    // that is closed at once; after it, the listener works as before.
    auto probe = listener->accept(2000ms);
    REQUIRE(probe.ok());
    auto probe_closed = receive(**probe, 2000ms);
    REQUIRE_FALSE(probe_closed.ok());
    CHECK(probe_closed.error().code == ErrorCode::closed);
    auto [client, server] = connect_pair(*listener);
    REQUIRE(client->send(pattern(10)).ok());
    CHECK(must_receive(*server) == pattern(10));

    const std::string file = dir.socket("not-a-socket");
    std::ofstream(file) << "keep me";
    auto on_file = StreamListener::listen(parse_ok("unix:" + file));
    REQUIRE_FALSE(on_file.ok());
    check_error(on_file.error(), ErrorCode::io, "not a socket");
    CHECK(std::filesystem::file_size(file) == 7);
}

TEST_CASE("stream transport: moving a listener keeps the socket file until the last owner goes") {
    TempDir dir;
    const std::string path = dir.socket("moved.sock");
    {
        auto listener = StreamListener::listen(parse_ok("unix:" + path));
        REQUIRE(listener.ok());
        StreamListener moved = std::move(listener).value();
        {
            StreamListener again = std::move(moved);
            CHECK(std::filesystem::is_socket(path));
        }
        CHECK_FALSE(std::filesystem::exists(path));
    }
}

TEST_CASE("stream transport: peer close is reported as closed after pending messages") {
    auto listener = StreamListener::listen(parse_ok("tcp://127.0.0.1:0"));
    REQUIRE(listener.ok());
    auto [client, server] = connect_pair(*listener);
    REQUIRE(server->send(pattern(10, 1)).ok());
    REQUIRE(server->send(pattern(20, 2)).ok());
    server->close();
    CHECK(server->fd() == -1);

    CHECK(must_receive(*client) == pattern(10, 1));
    CHECK(must_receive(*client) == pattern(20, 2));
    auto closed = receive(*client, 2000ms);
    REQUIRE_FALSE(closed.ok());
    check_error(closed.error(), ErrorCode::closed);
    auto again = client->poll(0ms);
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().code == ErrorCode::closed);

    auto local = server->send(pattern(1));
    REQUIRE_FALSE(local.ok());
    CHECK(local.error().code == ErrorCode::closed);
}

TEST_CASE("stream transport: a peer closing mid-message is reported as closed") {
    auto [t, raw] = adopted_socketpair();
    const Bytes partial = {0x00, 0x05, 'a', 'b'};
    REQUIRE(::write(raw.get(), partial.data(), partial.size()) == 4);
    raw.reset();
    auto r = receive(*t, 2000ms);
    REQUIRE_FALSE(r.ok());
    check_error(r.error(), ErrorCode::closed, "middle of a message");
}

TEST_CASE("stream transport: connecting to a closed port is an io error") {
    std::uint16_t port = 0;
    {
        auto listener = StreamListener::listen(parse_ok("tcp://127.0.0.1:0"));
        REQUIRE(listener.ok());
        port = listener->bound_address().tcp()->port;
    }
    auto c = StreamTransport::connect(Address(TcpAddress{"127.0.0.1", port}), 2000ms);
    REQUIRE_FALSE(c.ok());
    check_error(c.error(), ErrorCode::io, "refused");
    CHECK(c.error().message.find("127.0.0.1:" + std::to_string(port)) != std::string::npos);

    auto zero = StreamTransport::connect(parse_ok("tcp://127.0.0.1:0"), 100ms);
    REQUIRE_FALSE(zero.ok());
    check_error(zero.error(), ErrorCode::malformed, "port 0");
}

TEST_CASE("stream transport: connecting to a missing Unix socket is an io error") {
    TempDir dir;
    auto c = StreamTransport::connect(parse_ok("unix:" + dir.socket("nobody.sock")), 100ms);
    REQUIRE_FALSE(c.ok());
    check_error(c.error(), ErrorCode::io, "No such file");
}

TEST_CASE("stream transport: receive and accept time out") {
    auto listener = StreamListener::listen(parse_ok("tcp://127.0.0.1:0"));
    REQUIRE(listener.ok());
    const auto start = std::chrono::steady_clock::now();
    auto none = listener->accept(50ms);
    REQUIRE_FALSE(none.ok());
    CHECK(none.error().code == ErrorCode::timeout);
    CHECK(std::chrono::steady_clock::now() - start >= 50ms);

    auto [client, server] = connect_pair(*listener);
    const auto before = std::chrono::steady_clock::now();
    auto r = receive(*server, 50ms);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::timeout);
    CHECK(std::chrono::steady_clock::now() - before >= 50ms);
    // The link is still fine afterwards.
    REQUIRE(client->send(pattern(7)).ok());
    CHECK(must_receive(*server) == pattern(7));
}

TEST_CASE("stream transport: messages trickling in one byte at a time") {
    auto [t, raw] = adopted_socketpair();
    const Bytes frame = *encode_stream_frame(pattern(40));
    int deliveries = 0;
    Bytes got;
    t->set_receive_handler([&](Result<Bytes> r) {
        REQUIRE(r.ok());
        got = *r;
        ++deliveries;
    });
    for (std::size_t i = 0; i < frame.size(); ++i) {
        CHECK(deliveries == 0);
        REQUIRE(::write(raw.get(), &frame[i], 1) == 1);
        REQUIRE(t->poll(0ms).ok());
    }
    CHECK(deliveries == 1);
    CHECK(got == pattern(40));
}

TEST_CASE("stream transport: an oversized length prefix from the peer kills the link") {
    auto [t, raw] = adopted_socketpair();
    const Bytes good = *encode_stream_frame(pattern(5));
    const Bytes bad = {0x10, 0x01};  // 4097, no body
    REQUIRE(::write(raw.get(), good.data(), good.size()) == static_cast<ssize_t>(good.size()));
    REQUIRE(::write(raw.get(), bad.data(), bad.size()) == 2);
    CHECK(must_receive(*t) == pattern(5));
    auto r = receive(*t, 2000ms);
    REQUIRE_FALSE(r.ok());
    check_error(r.error(), ErrorCode::oversized);
    auto sent = t->send(pattern(1));
    REQUIRE_FALSE(sent.ok());
    CHECK(sent.error().code == ErrorCode::oversized);
}

TEST_CASE("stream transport: the configured message limit holds on both sides") {
    StreamOptions options;
    options.max_message_size = 100;
    auto [t, raw] = adopted_socketpair(options);
    auto sent = t->send(pattern(101));
    REQUIRE_FALSE(sent.ok());
    check_error(sent.error(), ErrorCode::oversized);
    REQUIRE(t->send(pattern(100)).ok());  // a refused send does not kill the link
    Bytes on_wire(102);
    REQUIRE(::read(raw.get(), on_wire.data(), on_wire.size()) == 102);
    CHECK(on_wire[0] == 0);
    CHECK(on_wire[1] == 100);

    const Bytes too_big = {0x00, 101};
    REQUIRE(::write(raw.get(), too_big.data(), too_big.size()) == 2);
    auto r = receive(*t, 2000ms);
    REQUIRE_FALSE(r.ok());
    CHECK(r.error().code == ErrorCode::oversized);
}

TEST_CASE("stream transport: send to a peer that never reads times out and kills the link") {
    StreamOptions options;
    options.send_timeout = 50ms;
    auto [t, raw] = adopted_socketpair(options);
    Status sent;
    int count = 0;
    for (; count < 100000 && sent.ok(); ++count) sent = t->send(pattern(4000));
    REQUIRE_FALSE(sent.ok());
    CHECK(sent.error().code == ErrorCode::timeout);
    CHECK(count > 1);
    auto again = t->send(pattern(1));
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().code == ErrorCode::timeout);
}

TEST_CASE("stream transport: send to a closed peer fails without SIGPIPE") {
    auto [t, raw] = adopted_socketpair();
    raw.reset();
    // The first write may still succeed on some systems; a later one must fail.
    Status sent;
    for (int i = 0; i < 10 && sent.ok(); ++i) sent = t->send(pattern(100));
    REQUIRE_FALSE(sent.ok());
    check_error(sent.error(), ErrorCode::closed, "send failed");
}

TEST_CASE("stream transport: fd() works with an external poll loop") {
    auto [t, raw] = adopted_socketpair();
    std::vector<Bytes> got;
    t->set_receive_handler([&](Result<Bytes> r) {
        REQUIRE(r.ok());
        got.push_back(*r);
    });
    Bytes frames;
    for (std::uint8_t i = 0; i < 3; ++i) append(frames, *encode_stream_frame(pattern(30, i)));
    REQUIRE(::write(raw.get(), frames.data(), frames.size()) == static_cast<ssize_t>(frames.size()));
    pollfd p{t->fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 2000) == 1);
    REQUIRE(t->poll(0ms).ok());
    REQUIRE(got.size() == 3);
    for (std::uint8_t i = 0; i < 3; ++i) CHECK(got[i] == pattern(30, i));
}

TEST_CASE("stream transport: UniqueFd closes exactly once") {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) == 0);
    UniqueFd peer(fds[1]);
    {
        UniqueFd a(fds[0]);
        UniqueFd b = std::move(a);
        CHECK_FALSE(a.valid());  // NOLINT(bugprone-use-after-move): checking the moved-from state
        CHECK(b.get() == fds[0]);
    }
    // fds[0] is closed: the peer sees end of stream.
    char c = 0;
    CHECK(::read(peer.get(), &c, 1) == 0);
}
