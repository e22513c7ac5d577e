// osmo-hlr's figures, measured as bench/backend_load measures credprov's:
// a real osmo-hlr (Debian's package) on a fresh database of its own, driven
// from this separate process on loopback.
//
//   osmohlr.register_per_s      subscribers created with their Milenage K
//                               and OPc over osmo-hlr's control interface
//                               (CTRL: SET subscriber.create, then SET
//                               subscriber.by-imsi-<IMSI>.aud3g), `--clients`
//                               connections at once, one command each in
//                               flight: what an operator's provisioning
//                               system does to add a subscriber
//   osmohlr.register_p99_ms     99th percentile of one creation (both commands)
//   osmohlr.aka_vectors_per_s   authentication vectors per second over GSUP
//                               (libosmo-gsup-client, as an MSC or SGSN
//                               asks): Send Authentication Info with 5
//                               vectors per request (GSUP's maximum, as
//                               credprov's API), `--clients` connections,
//                               one request each in flight
//
// osmo-hlr listens on a loopback address of its own (127.0.0.x; its GSUP
// port is fixed at 4222), so a test or another osmo-hlr on the machine does
// not collide. Prints "BENCH <name> <value> <unit>".
//
//   osmohlr_load [--short] [--clients N] [--osmo-hlr PATH]
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "agent_process.hpp"
#include "bench_figures.hpp"

extern "C" {
#include <osmocom/core/application.h>
#include <osmocom/core/logging.h>
#include <osmocom/core/msgb.h>
#include <osmocom/core/select.h>
#include <osmocom/core/talloc.h>
#include <osmocom/core/timer.h>
#include <osmocom/gsm/gsup.h>
#include <osmocom/gsm/protocol/ipaccess.h>
#include <osmocom/gsupclient/gsup_client.h>
}

using namespace credprov::bench;
using credprov::testing::AgentProcess;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kCtrlPort = 4259;
constexpr int kVtyPort = 4258;
constexpr int kGsupPort = 4222;  // fixed in osmo-hlr 1.5

bool port_free(const std::string& host, int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    return ok;
}

int connect_to(const std::string& host, int port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<std::uint16_t>(port));
    ::inet_pton(AF_INET, host.c_str(), &a.sin_addr);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(fd);
        return -1;
    }
    const int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

// A real osmo-hlr on a fresh database in a temporary folder.
class OsmoHlr {
public:
    explicit OsmoHlr(const std::string& binary) {
        dir_ = std::filesystem::temp_directory_path() / ("credprov-osmohlr-" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir_);
        std::mt19937 rng(static_cast<unsigned>(::getpid()));
        for (int attempt = 0; attempt < 50 && host.empty(); ++attempt) {
            const std::string h = "127.0." + std::to_string(rng() % 250 + 2) + "." + std::to_string(rng() % 250 + 2);
            if (port_free(h, kCtrlPort) && port_free(h, kVtyPort) && port_free(h, kGsupPort)) host = h;
        }
        if (host.empty()) throw std::runtime_error("no free loopback address for osmo-hlr");
        const auto cfg = dir_ / "osmo-hlr.cfg";
        write_text(cfg, "log stderr\n logging level set-all error\nline vty\n bind " + host + "\nctrl\n bind " + host +
                            "\nhlr\n gsup\n  bind ip " + host + "\n");
        process_ = std::make_unique<AgentProcess>(binary, std::vector<std::string>{"-c", cfg.string(), "-l", (dir_ / "hlr.db").string()},
                                                  dir_ / "osmo-hlr.log");
        const auto end = Clock::now() + std::chrono::seconds(20);
        while (Clock::now() < end) {
            const int fd = connect_to(host, kCtrlPort);
            if (fd >= 0) {
                ::close(fd);
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        throw std::runtime_error("osmo-hlr did not start: " + credprov::testing::read_file(dir_ / "osmo-hlr.log"));
    }
    ~OsmoHlr() {
        process_.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir_, ec);
    }
    OsmoHlr(const OsmoHlr&) = delete;
    OsmoHlr& operator=(const OsmoHlr&) = delete;

    std::string host;

private:
    static void write_text(const std::filesystem::path& p, const std::string& text) {
        FILE* f = std::fopen(p.c_str(), "w");
        if (f == nullptr) throw std::runtime_error("cannot write " + p.string());
        std::fputs(text.c_str(), f);
        std::fclose(f);
    }
    std::filesystem::path dir_;
    std::unique_ptr<AgentProcess> process_;
};

// One CTRL connection: IPA frames (2-byte length, protocol 0xEE, extension
// 0x00) around "SET <id> <variable> <value>"; the answer is "SET_REPLY <id>
// ..." or "ERROR <id> <reason>".
class Ctrl {
public:
    explicit Ctrl(const std::string& host) : fd_(connect_to(host, kCtrlPort)) {
        if (fd_ < 0) throw std::runtime_error("cannot connect to osmo-hlr's CTRL");
    }
    ~Ctrl() { ::close(fd_); }
    Ctrl(const Ctrl&) = delete;
    Ctrl& operator=(const Ctrl&) = delete;

    // Sends SET and returns the answer's text; throws on ERROR.
    std::string set(const std::string& variable, const std::string& value) {
        const std::string id = std::to_string(++id_);
        const std::string text = "SET " + id + " " + variable + " " + value;
        std::string frame;
        const std::size_t len = text.size() + 1;
        frame.push_back(static_cast<char>(len >> 8));
        frame.push_back(static_cast<char>(len & 0xff));
        frame.push_back(static_cast<char>(IPAC_PROTO_OSMO));
        frame.push_back(static_cast<char>(IPAC_PROTO_EXT_CTRL));
        frame += text;
        if (::send(fd_, frame.data(), frame.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(frame.size())) {
            throw std::runtime_error("CTRL send failed");
        }
        const std::string reply = read_frame();
        if (reply.rfind("SET_REPLY " + id + " ", 0) != 0) throw std::runtime_error("CTRL " + variable + ": " + reply);
        return reply;
    }

private:
    void read_exact(char* out, std::size_t n) {
        std::size_t got = 0;
        while (got < n) {
            pollfd p{fd_, POLLIN, 0};
            if (::poll(&p, 1, 20000) != 1) throw std::runtime_error("CTRL answer timed out");
            const ssize_t r = ::recv(fd_, out + got, n - got, 0);
            if (r <= 0) throw std::runtime_error("CTRL connection closed");
            got += static_cast<std::size_t>(r);
        }
    }
    std::string read_frame() {
        unsigned char head[4];
        read_exact(reinterpret_cast<char*>(head), 4);
        const std::size_t len = (static_cast<std::size_t>(head[0]) << 8) | head[1];
        if (len < 1 || head[2] != IPAC_PROTO_OSMO || head[3] != IPAC_PROTO_EXT_CTRL) {
            throw std::runtime_error("CTRL: not a control frame");
        }
        std::string body(len - 1, '\0');
        read_exact(body.data(), body.size());
        return body;
    }
    int fd_;
    unsigned id_{0};
};

std::string imsi_of(int i) {
    char buf[16];
    std::snprintf(buf, sizeof buf, "00101%010d", i);
    return buf;
}

std::string random_hex(std::mt19937_64& rng, int bytes) {
    static const char* digits = "0123456789abcdef";
    std::string s;
    for (int i = 0; i < bytes * 2; ++i) s.push_back(digits[rng() & 15]);
    return s;
}

// ---- GSUP: Send Authentication Info over libosmo-gsup-client -------------------------

struct AkaRun {
    std::vector<std::string> imsis;
    int requests{0};
    std::atomic<int> sent{0};
    int answered{0};
    long vectors{0};
    int errors{0};
    int connected{0};
};

struct AkaClient {
    AkaRun* run{nullptr};
    osmo_gsup_client* gsup{nullptr};
    bool up{false};
};

void send_next(AkaClient& c) {
    const int i = c.run->sent++;
    if (i >= c.run->requests) return;
    osmo_gsup_message m{};
    m.message_type = OSMO_GSUP_MSGT_SEND_AUTH_INFO_REQUEST;
    const std::string& imsi = c.run->imsis[static_cast<std::size_t>(i) % c.run->imsis.size()];
    std::snprintf(m.imsi, sizeof m.imsi, "%s", imsi.c_str());
    m.num_auth_vectors = 5;
    if (osmo_gsup_client_enc_send(c.gsup, &m) != 0) ++c.run->errors;
}

int on_gsup(osmo_gsup_client* g, msgb* msg) {
    auto* c = static_cast<AkaClient*>(g->data);
    osmo_gsup_message m{};
    const int rc = osmo_gsup_decode(static_cast<const std::uint8_t*>(msgb_l2(msg)), msgb_l2len(msg), &m);
    if (rc == 0 && m.message_type == OSMO_GSUP_MSGT_SEND_AUTH_INFO_RESULT) {
        c->run->vectors += m.num_auth_vectors;
    } else {
        ++c->run->errors;
    }
    msgb_free(msg);
    ++c->run->answered;
    send_next(*c);
    return 0;
}

bool on_up_down(osmo_gsup_client* g, bool up) {
    auto* c = static_cast<AkaClient*>(g->data);
    if (up && !c->up) ++c->run->connected;
    c->up = up;
    return true;
}

// Vectors per second with `clients` GSUP connections, one request each in flight.
double aka_vectors_per_s(const std::string& host, const std::vector<std::string>& imsis, int clients, int requests) {
    void* ctx = talloc_named_const(nullptr, 0, "osmohlr_load");
    msgb_talloc_ctx_init(ctx, 0);
    // libosmocore logs every IPA frame to stderr unless told otherwise.
    static const log_info no_categories{};
    osmo_init_logging2(ctx, &no_categories);
    log_target_destroy(osmo_stderr_target);
    osmo_stderr_target = nullptr;
    AkaRun run;
    run.imsis = imsis;
    run.requests = requests;
    std::vector<AkaClient> cs(static_cast<std::size_t>(clients));
    for (int i = 0; i < clients; ++i) {
        AkaClient& c = cs[static_cast<std::size_t>(i)];
        c.run = &run;
        auto* unit = talloc_zero(ctx, struct ipaccess_unit);
        unit->unit_name = talloc_asprintf(ctx, "credprov-bench-%d", i);  // one IND slot per client
        osmo_gsup_client_config cfg{};
        cfg.ipa_dev = unit;
        cfg.ip_addr = host.c_str();
        cfg.tcp_port = kGsupPort;
        cfg.read_cb = on_gsup;
        cfg.up_down_cb = on_up_down;
        cfg.data = &c;
        c.gsup = osmo_gsup_client_create3(ctx, &cfg);
        if (c.gsup == nullptr) throw std::runtime_error("cannot create a GSUP client");
    }
    const auto connect_end = Clock::now() + std::chrono::seconds(20);
    while (run.connected < clients && Clock::now() < connect_end) osmo_select_main(0);
    if (run.connected < clients) throw std::runtime_error("GSUP clients did not connect to osmo-hlr");
    // "Up" means TCP is connected; osmo-hlr learns a client's name (and so
    // where to send its answers) from the IPA identity exchange that follows.
    // A request before it is dropped ("GSUP client ... not found").
    // A timer wakes the (blocking) select loop every 100 ms, so that the
    // waits below end on time.
    osmo_timer_list tick{};
    osmo_timer_setup(
        &tick, [](void* t) { osmo_timer_schedule(static_cast<osmo_timer_list*>(t), 0, 100000); }, &tick);
    osmo_timer_schedule(&tick, 0, 100000);
    const auto settle = Clock::now() + std::chrono::seconds(1);
    while (Clock::now() < settle) osmo_select_main(0);
    const auto t0 = Clock::now();
    for (auto& c : cs) send_next(c);
    int seen = 0;
    auto progress = Clock::now();
    while (run.answered < requests && Clock::now() - progress < std::chrono::seconds(10)) {
        osmo_select_main(0);
        if (run.answered != seen) seen = run.answered, progress = Clock::now();
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    osmo_timer_del(&tick);
    for (auto& c : cs) osmo_gsup_client_destroy(c.gsup);
    talloc_free(ctx);
    if (run.answered < requests) {
        throw std::runtime_error("osmo-hlr stopped answering vector requests (" + std::to_string(run.answered) + " of " +
                                 std::to_string(requests) + " answered; nothing for 10 s)");
    }
    if (run.errors > 0) throw std::runtime_error(std::to_string(run.errors) + " vector requests failed");
    return static_cast<double>(run.vectors) / s;
}

}  // namespace

int main(int argc, char** argv) {
    int subscribers = 2000;
    int clients = 8;
    std::string binary = "/usr/bin/osmo-hlr";
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--short") subscribers = 16;
        else if (a == "--clients" && i + 1 < argc) clients = std::max(1, std::atoi(argv[++i]));
        else if (a == "--osmo-hlr" && i + 1 < argc) binary = argv[++i];
        else if (a == "--help" || a == "-h") {
            std::puts("usage: osmohlr_load [--short] [--clients N] [--osmo-hlr PATH]\n"
                      "Starts a real osmo-hlr on loopback and prints BENCH lines for its subscriber\n"
                      "creation rate (CTRL) and its authentication vector rate (GSUP).");
            return 0;
        } else {
            std::fprintf(stderr, "osmohlr_load: unknown argument '%s' (see --help)\n", a.c_str());
            return 2;
        }
    }
    try {
        if (!std::filesystem::exists(binary)) throw std::runtime_error(binary + " not found; run scripts/setup");
        OsmoHlr hlr(binary);
        std::vector<std::string> imsis;
        for (int i = 0; i < subscribers; ++i) imsis.push_back(imsi_of(i));

        // Keys made before the clock starts, as credprov's bench makes its devices first.
        std::mt19937_64 rng(42);
        std::vector<std::string> keys;
        for (int i = 0; i < subscribers; ++i) keys.push_back("milenage," + random_hex(rng, 16) + ",OPC," + random_hex(rng, 16));

        std::vector<double> latency(static_cast<std::size_t>(subscribers));
        std::atomic<int> next{0};
        std::atomic<int> failures{0};
        std::string first_error;
        std::mutex error_lock;
        const auto t0 = Clock::now();
        std::vector<std::thread> threads;
        for (int c = 0; c < clients; ++c) {
            threads.emplace_back([&] {
                try {
                    Ctrl ctrl(hlr.host);
                    for (int i = next++; i < subscribers; i = next++) {
                        const auto s = Clock::now();
                        const std::string& imsi = imsis[static_cast<std::size_t>(i)];
                        ctrl.set("subscriber.create", imsi);
                        ctrl.set("subscriber.by-imsi-" + imsi + ".aud3g", keys[static_cast<std::size_t>(i)]);
                        latency[static_cast<std::size_t>(i)] = std::chrono::duration<double, std::milli>(Clock::now() - s).count();
                    }
                } catch (const std::exception& e) {
                    ++failures;
                    std::lock_guard lock(error_lock);
                    if (first_error.empty()) first_error = e.what();
                }
            });
        }
        for (auto& t : threads) t.join();
        const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
        if (failures > 0) throw std::runtime_error("subscriber creation failed: " + first_error);
        print("osmohlr.register_per_s", subscribers / wall, "1/s");
        print("osmohlr.register_p99_ms", percentile(latency, 0.99), "ms");
        print("osmohlr.aka_vectors_per_s", aka_vectors_per_s(hlr.host, imsis, clients, subscribers * 2), "1/s");
    } catch (const std::exception& e) {
        std::fprintf(stderr, "osmohlr_load: %s\n", e.what());
        return 1;
    }
    return 0;
}
