// The osmo-hlr connector: subscribers are written over osmo-hlr's CTRL
// interface (IPA-framed text on TCP, default port 4259) and listed over its
// VTY (telnet, default port 4258: "show subscribers all"), since CTRL in
// osmo-hlr 1.5 has no command that enumerates subscribers.
//
// Plain blocking-free sockets: every connect, send and receive waits in
// poll() with the configured timeout, every read is bounded. The aud3g
// value (K and OPc in hex) is built in and read back into SecretBytes;
// osmo-hlr's own error reasons are passed on (they never echo a value), key
// bytes never.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

#include <sodium.h>

#include "credprov/backend/config.hpp"
#include "credprov/backend/core_connector.hpp"
#include "credprov/backend/osmo_ctrl_codec.hpp"

namespace credprov::backend {

namespace {

using Clock = std::chrono::steady_clock;

bool all_digits(std::string_view s) {
    return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// One TCP connection whose every wait is bounded by a deadline.
class Socket {
public:
    Socket() = default;
    ~Socket() { close(); }
    Socket(const Socket&) = delete;
    Socket& operator=(const Socket&) = delete;

    [[nodiscard]] bool open() const noexcept { return fd_ >= 0; }
    void close() noexcept {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
    }

    Status connect(const std::string& host, std::uint16_t port, Clock::time_point deadline, const std::string& what) {
        close();
        addrinfo hints{};
        hints.ai_family = AF_UNSPEC;
        hints.ai_socktype = SOCK_STREAM;
        addrinfo* res = nullptr;
        if (::getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &res) != 0 || res == nullptr) {
            return make_error(ErrorCode::io, what + ": cannot resolve " + host);
        }
        std::string last = "no address";
        for (addrinfo* ai = res; ai != nullptr; ai = ai->ai_next) {
            const int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, ai->ai_protocol);
            if (fd < 0) continue;
            int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
            if (rc != 0 && errno == EINPROGRESS) {
                pollfd p{fd, POLLOUT, 0};
                rc = ::poll(&p, 1, remaining_ms(deadline));
                if (rc == 1) {
                    int err = 0;
                    socklen_t len = sizeof(err);
                    ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
                    rc = err == 0 ? 0 : -1;
                    errno = err;
                } else {
                    if (rc == 0) errno = ETIMEDOUT;
                    rc = -1;
                }
            }
            if (rc == 0) {
                const int one = 1;
                ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                fd_ = fd;
                ::freeaddrinfo(res);
                return {};
            }
            last = std::strerror(errno);
            ::close(fd);
        }
        ::freeaddrinfo(res);
        return make_error(ErrorCode::io, what + ": cannot connect to " + host + ":" + std::to_string(port) + " (" + last + ")");
    }

    Status send_all(std::span<const std::uint8_t> data, Clock::time_point deadline) {
        std::size_t done = 0;
        while (done < data.size()) {
            const ssize_t n = ::send(fd_, data.data() + done, data.size() - done, MSG_NOSIGNAL);
            if (n > 0) {
                done += static_cast<std::size_t>(n);
                continue;
            }
            if (n < 0 && errno == EINTR) continue;
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
                if (auto st = wait(POLLOUT, deadline); !st) return st;
                continue;
            }
            close();
            return make_error(ErrorCode::io, std::string("send failed: ") + std::strerror(errno));
        }
        return {};
    }

    // Up to `max` bytes (at least one), or an error on timeout or end of stream.
    Result<std::size_t> read_some(std::uint8_t* out, std::size_t max, Clock::time_point deadline) {
        for (;;) {
            const ssize_t n = ::recv(fd_, out, max, 0);
            if (n > 0) return static_cast<std::size_t>(n);
            if (n == 0) {
                close();
                return make_error(ErrorCode::closed, "the peer closed the connection");
            }
            if (errno == EINTR) continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                if (auto st = wait(POLLIN, deadline); !st) return st.error();
                continue;
            }
            close();
            return make_error(ErrorCode::io, std::string("receive failed: ") + std::strerror(errno));
        }
    }

    Status read_exact(std::uint8_t* out, std::size_t n, Clock::time_point deadline) {
        std::size_t done = 0;
        while (done < n) {
            auto got = read_some(out + done, n - done, deadline);
            if (!got) return got.error();
            done += *got;
        }
        return {};
    }

private:
    static int remaining_ms(Clock::time_point deadline) {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
        return left <= 0 ? 0 : static_cast<int>(std::min<long long>(left, 1 << 30));
    }
    Status wait(short events, Clock::time_point deadline) {
        pollfd p{fd_, events, 0};
        for (;;) {
            const int rc = ::poll(&p, 1, remaining_ms(deadline));
            if (rc > 0) return {};
            if (rc < 0 && errno == EINTR) continue;
            close();
            return make_error(ErrorCode::timeout, "no answer in time");
        }
    }
    int fd_{-1};
};

class OsmoHlrConnector final : public CoreConnector {
public:
    OsmoHlrConnector(std::string ctrl_host, std::uint16_t ctrl_port, std::string vty_host, std::uint16_t vty_port,
                     std::chrono::milliseconds timeout)
        : ctrl_host_(std::move(ctrl_host)), vty_host_(std::move(vty_host)), ctrl_port_(ctrl_port), vty_port_(vty_port),
          timeout_(timeout) {}

    std::string_view kind() const noexcept override { return "osmo-hlr"; }
    std::string endpoint() const override {
        return "ctrl " + ctrl_host_ + ":" + std::to_string(ctrl_port_) + ", vty " + vty_host_ + ":" + std::to_string(vty_port_);
    }

    Status upsert(const CoreSubscriber& s) override {
        if (!valid_imsi(s.imsi) || s.keys == nullptr) return make_error(ErrorCode::malformed, "upsert needs an IMSI and keys");
        auto created = set("subscriber.create", std::span<const char>(s.imsi.data(), s.imsi.size()));
        if (!created) return created.error();
        if (!created->ok) {
            // "Subscriber already exists." is the end state we want; anything
            // else is an error unless the subscriber is there after all.
            auto there = get(s.imsi);
            if (!there) return there.error();
            if (!*there) return make_error(ErrorCode::io, "osmo-hlr refused to create the subscriber: " + created->reason);
        }
        // "milenage,<K hex>,OPC,<OPc hex>": 78 characters, built in a wiped buffer.
        SecretBytes value(9 + 32 + 5 + 32 + 1);
        char* v = reinterpret_cast<char*>(value.data());
        std::memcpy(v, "milenage,", 9);
        sodium_bin2hex(v + 9, 33, s.keys->k.data(), 16);
        std::memcpy(v + 41, ",OPC,", 5);
        sodium_bin2hex(v + 46, 33, s.keys->opc.data(), 16);
        auto aud = set("subscriber.by-imsi-" + s.imsi + ".aud3g", std::span<const char>(v, 78));
        if (!aud) return aud.error();
        if (!aud->ok) return make_error(ErrorCode::io, "osmo-hlr refused the subscriber's Milenage keys: " + aud->reason);
        if (s.msisdn) {
            auto m = set("subscriber.by-imsi-" + s.imsi + ".msisdn", std::span<const char>(s.msisdn->data(), s.msisdn->size()));
            if (!m) return m.error();
            if (!m->ok) return make_error(ErrorCode::io, "osmo-hlr refused the MSISDN: " + m->reason);
        }
        return {};
    }

    Status remove(const std::string& imsi) override {
        if (!valid_imsi(imsi)) return make_error(ErrorCode::malformed, "remove needs an IMSI of 6 to 15 digits");
        auto deleted = set("subscriber.delete", std::span<const char>(imsi.data(), imsi.size()));
        if (!deleted) return deleted.error();
        if (deleted->ok) return {};
        // "Subscriber doesn't exist." is success; check rather than trust the wording.
        auto there = get(imsi);
        if (!there) return there.error();
        if (*there) return make_error(ErrorCode::io, "osmo-hlr refused to delete the subscriber: " + deleted->reason);
        return {};
    }

    Result<std::optional<CoreRecord>> get(const std::string& imsi) override {
        if (!valid_imsi(imsi)) return make_error(ErrorCode::malformed, "get needs an IMSI of 6 to 15 digits");
        const std::string var = "subscriber.by-imsi-" + imsi + ".info-all";
        const std::uint32_t id = next_id();
        auto payload = exchange(osmo_ctrl::encode_get(id, var), id);
        if (!payload) return payload.error();
        auto reply = osmo_ctrl::decode_payload(payload->view());
        if (!reply) return reply.error();
        if (reply->verb == osmo_ctrl::Verb::error) {
            if (reply->value.find("No such subscriber") != std::string_view::npos) return std::optional<CoreRecord>{};
            return make_error(ErrorCode::io, "osmo-hlr: " + osmo_ctrl::printable_reason(reply->value));
        }
        if (reply->verb != osmo_ctrl::Verb::get_reply || reply->variable != var) {
            return make_error(ErrorCode::malformed, "osmo-hlr answered another variable");
        }
        return parse_info(imsi, reply->value);
    }

    Result<std::vector<std::string>> list() override;

private:
    struct SetOutcome {
        bool ok{false};
        std::string reason;  // osmo-hlr's, made printable
    };

    static bool valid_imsi(const std::string& imsi) { return imsi.size() >= 6 && imsi.size() <= 15 && all_digits(imsi); }
    std::uint32_t next_id() { return id_ = id_ >= 1000000000U ? 1 : id_ + 1; }

    Result<SetOutcome> set(const std::string& var, std::span<const char> value) {
        const std::uint32_t id = next_id();
        auto payload = exchange(osmo_ctrl::encode_set(id, var, value), id);
        if (!payload) return payload.error();
        auto reply = osmo_ctrl::decode_payload(payload->view());
        if (!reply) return reply.error();
        if (reply->verb == osmo_ctrl::Verb::error) return SetOutcome{false, osmo_ctrl::printable_reason(reply->value)};
        if (reply->verb != osmo_ctrl::Verb::set_reply || reply->variable != var) {
            return make_error(ErrorCode::malformed, "osmo-hlr answered another variable");
        }
        return SetOutcome{true, {}};
    }

    // Sends one frame and returns the payload of the reply with the same id
    // (TRAPs in between are skipped). A kept connection that turns out dead
    // (osmo-hlr restarted) is replaced once; every request is idempotent.
    Result<SecretBytes> exchange(const SecretBytes& frame, std::uint32_t id) {
        for (int attempt = 0; attempt < 2; ++attempt) {
            const bool reused = ctrl_.open();
            const auto deadline = Clock::now() + timeout_;
            if (!reused) {
                if (auto st = ctrl_.connect(ctrl_host_, ctrl_port_, deadline, "osmo-hlr CTRL"); !st) return st.error();
            }
            auto got = round_trip(frame, id, deadline);
            if (got || !reused || got.error().code == ErrorCode::timeout || got.error().code == ErrorCode::malformed) {
                if (!got) ctrl_.close();
                return got;
            }
            ctrl_.close();
        }
        return make_error(ErrorCode::internal, "unreachable");
    }

    Result<SecretBytes> round_trip(const SecretBytes& frame, std::uint32_t id, Clock::time_point deadline) {
        if (auto st = ctrl_.send_all(frame.view(), deadline); !st) return st.error();
        for (int skipped = 0; skipped < 64; ++skipped) {
            std::uint8_t head[osmo_ctrl::kHeaderBytes];
            if (auto st = ctrl_.read_exact(head, sizeof(head), deadline); !st) return st.error();
            auto h = osmo_ctrl::decode_header(head);
            if (!h) return h.error();
            SecretBytes payload(h->payload_bytes);
            if (auto st = ctrl_.read_exact(payload.data(), payload.size(), deadline); !st) return st.error();
            if (h->proto != osmo_ctrl::kProtoOsmo) continue;  // IPA keep-alives and the like
            auto reply = osmo_ctrl::decode_payload(payload.view());
            if (!reply) return reply.error();
            if (reply->verb == osmo_ctrl::Verb::trap || reply->id != id) continue;
            return payload;
        }
        return make_error(ErrorCode::malformed, "osmo-hlr sent no reply to the request among 64 messages");
    }

    // "\nkey\tvalue" lines of info-all.
    static Result<std::optional<CoreRecord>> parse_info(const std::string& imsi, std::string_view text) {
        CoreRecord rec;
        rec.imsi = imsi;
        std::string_view algo, k_hex, opc_hex;
        bool is_op = false;
        std::size_t at = 0;
        while (at <= text.size()) {
            const std::size_t nl = text.find('\n', at);
            const std::string_view line = text.substr(at, nl == std::string_view::npos ? std::string_view::npos : nl - at);
            at = nl == std::string_view::npos ? text.size() + 1 : nl + 1;
            const std::size_t tab = line.find('\t');
            if (tab == std::string_view::npos) continue;
            const std::string_view key = line.substr(0, tab), value = line.substr(tab + 1);
            if (key == "imsi" && value != imsi) return make_error(ErrorCode::malformed, "osmo-hlr answered for another IMSI");
            if (key == "msisdn" && !value.empty() && value.size() <= 20) rec.msisdn = std::string(value);
            if (key == "aud3g.algo") algo = value;
            if (key == "aud3g.k") k_hex = value;
            if (key == "aud3g.opc") opc_hex = value;
            if (key == "aud3g.op") {
                opc_hex = value;
                is_op = true;
            }
        }
        if (algo.empty()) {
            rec.auth_summary = "none";
            return std::optional<CoreRecord>(std::move(rec));
        }
        std::string lower;
        for (const char c : algo.substr(0, 16)) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        rec.auth_summary = lower + (is_op ? "/op" : "/opc");
        if (lower == "milenage" && !is_op) {
            SubscriberKeys keys{Secret<16>(), Secret<16>()};
            std::size_t kl = 0, ol = 0;
            if (sodium_hex2bin(keys.k.data(), 16, k_hex.data(), k_hex.size(), nullptr, &kl, nullptr) == 0 && kl == 16 &&
                k_hex.size() == 32 &&
                sodium_hex2bin(keys.opc.data(), 16, opc_hex.data(), opc_hex.size(), nullptr, &ol, nullptr) == 0 &&
                ol == 16 && opc_hex.size() == 32) {
                rec.milenage = std::move(keys);
            } else {
                rec.auth_summary += " (unreadable keys)";
            }
        }
        return std::optional<CoreRecord>(std::move(rec));
    }

    std::string ctrl_host_, vty_host_;
    std::uint16_t ctrl_port_, vty_port_;
    std::chrono::milliseconds timeout_;
    Socket ctrl_;
    std::uint32_t id_{0};
};

// Telnet as osmo-hlr's VTY speaks it: option negotiation (IAC ...) is
// dropped, the prompt ends in "> ". Reads at most 16 MiB.
Result<std::vector<std::string>> OsmoHlrConnector::list() {
    constexpr std::size_t kMax = 16 << 20;
    Socket vty;
    // Listing many subscribers takes longer than one CTRL request.
    const auto deadline = Clock::now() + timeout_ * 6;
    if (auto st = vty.connect(vty_host_, vty_port_, deadline, "osmo-hlr VTY"); !st) return st.error();
    std::string text;
    std::uint8_t buf[4096];
    int iac = 0;  // bytes of a telnet command still to drop
    bool in_sub = false;
    auto read_until_prompt = [&](std::size_t from) -> Status {
        for (;;) {
            if (text.size() >= from + 2 && text.compare(text.size() - 2, 2, "> ") == 0) return {};
            if (text.size() > kMax) return make_error(ErrorCode::oversized, "osmo-hlr's VTY sent more than 16 MiB");
            auto got = vty.read_some(buf, sizeof(buf), deadline);
            if (!got) return got.error();
            for (std::size_t i = 0; i < *got; ++i) {
                const std::uint8_t b = buf[i];
                if (iac > 0) {
                    --iac;
                    if (iac == 0 && b == 250) in_sub = true;               // SB: drop until IAC SE
                    else if (iac == 0 && b >= 251 && b <= 254) iac = 1;    // WILL/WONT/DO/DONT take an option byte
                    else if (iac == 0 && b == 240) in_sub = false;         // SE
                    continue;
                }
                if (b == 255) {
                    iac = 1;
                    continue;
                }
                if (in_sub) continue;
                if (b != '\r') text += static_cast<char>(b);
            }
        }
    };
    if (auto st = read_until_prompt(0); !st) return st.error();
    const std::size_t before = text.size();
    static constexpr std::string_view kCommand = "show subscribers all\r\n";
    if (auto st = vty.send_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(kCommand.data()), kCommand.size()),
                               deadline);
        !st) {
        return st.error();
    }
    // The echoed command line, then the table, then the prompt again.
    if (auto st = read_until_prompt(before); !st) return st.error();
    static constexpr std::string_view kExit = "exit\r\n";
    (void)vty.send_all(std::span<const std::uint8_t>(reinterpret_cast<const std::uint8_t*>(kExit.data()), kExit.size()), deadline);
    std::vector<std::string> imsis;
    std::size_t at = before;
    while (at < text.size()) {
        const std::size_t nl = text.find('\n', at);
        const std::string line = text.substr(at, nl == std::string::npos ? std::string::npos : nl - at);
        at = nl == std::string::npos ? text.size() : nl + 1;
        // An empty HLR answers "% No matching subscriber(s)"; any other "%" line is an error.
        if (line.starts_with("%") && line.find("No matching subscriber") == std::string::npos) {
            return make_error(ErrorCode::io, "osmo-hlr's VTY: " + osmo_ctrl::printable_reason(line));
        }
        // "ID  MSISDN  IMSI  IMEI  NAM": rows start with the numeric id.
        std::vector<std::string_view> cols;
        std::string_view rest(line);
        while (!rest.empty() && cols.size() < 3) {
            const std::size_t s = rest.find_first_not_of(' ');
            if (s == std::string_view::npos) break;
            rest.remove_prefix(s);
            const std::size_t e = rest.find(' ');
            cols.push_back(rest.substr(0, e));
            rest.remove_prefix(e == std::string_view::npos ? rest.size() : e);
        }
        if (cols.size() == 3 && all_digits(cols[0]) && all_digits(cols[2]) && cols[2].size() >= 6 && cols[2].size() <= 15) {
            imsis.emplace_back(cols[2]);
        }
    }
    return imsis;
}

}  // namespace

bool parse_host_port(std::string_view text, std::string& host, std::uint16_t& port) {
    std::string_view h;
    std::string_view p;
    if (text.starts_with("[")) {
        const std::size_t close = text.find("]:");
        if (close == std::string_view::npos) return false;
        h = text.substr(1, close - 1);
        p = text.substr(close + 2);
    } else {
        const std::size_t colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) return false;
        h = text.substr(0, colon);
        p = text.substr(colon + 1);
    }
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
    if (h.empty() || h.size() > 253 || ec != std::errc{} || end != p.data() + p.size() || value == 0 || value > 65535) {
        return false;
    }
    host = std::string(h);
    port = static_cast<std::uint16_t>(value);
    return true;
}

Result<std::unique_ptr<CoreConnector>> make_core_connector(const BackendConfig& cfg) {
    if (cfg.core_kind.empty()) return std::unique_ptr<CoreConnector>();
    if (cfg.core_kind == "osmo-hlr") {
        std::string ch, vh;
        std::uint16_t cp = 0, vp = 0;
        if (!parse_host_port(cfg.core_ctrl, ch, cp)) return make_error(ErrorCode::malformed, "core.ctrl must be HOST:PORT");
        if (!parse_host_port(cfg.core_vty, vh, vp)) return make_error(ErrorCode::malformed, "core.vty must be HOST:PORT");
        return std::unique_ptr<CoreConnector>(
            std::make_unique<OsmoHlrConnector>(ch, cp, vh, vp, std::chrono::milliseconds(cfg.core_timeout_ms)));
    }
    // Another core (Open5GS, free5GC, ...): implement CoreConnector and add its kind here and in config.cpp.
    return make_error(ErrorCode::malformed, "core.kind \"" + cfg.core_kind + "\" is not a known core connector");
}

}  // namespace credprov::backend
