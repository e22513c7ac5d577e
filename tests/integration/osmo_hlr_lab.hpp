// A real osmo-hlr (Debian's /usr/bin/osmo-hlr) for the core-connector tests:
// its own temporary folder, configuration and SQLite database, all three
// interfaces (VTY 4258, CTRL 4259, GSUP 4222) bound to a loopback address of
// its own, 127.a.b.c picked at random: osmo-hlr 1.5 cannot move its CTRL or
// GSUP port, so parallel tests get separate addresses instead of ports.
//
// The checks talk CTRL themselves, with a small client of their own (not the
// connector under test), and never print key material.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>

#include "agent_process.hpp"

namespace credprov::testing {

#ifndef CREDPROV_OSMO_HLR
#define CREDPROV_OSMO_HLR "/usr/bin/osmo-hlr"
#endif

inline std::string random_loopback_address() {
    std::random_device rd;
    std::uniform_int_distribution<int> hi(100, 250), lo(1, 254);
    return "127." + std::to_string(hi(rd)) + "." + std::to_string(lo(rd)) + "." + std::to_string(lo(rd));
}

// One connection to osmo-hlr's CTRL (port 4259): IPA frames (2-octet
// length, protocol 0xEE, extension 0x00 CTRL) around one command each.
class CtrlSession {
public:
    explicit CtrlSession(const std::string& address) : fd_(::socket(AF_INET, SOCK_STREAM, 0)) {
        if (fd_ < 0) return;
        timeval tv{5, 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
        ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        const int one = 1;
        ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        sockaddr_in sa{};
        sa.sin_family = AF_INET;
        sa.sin_port = htons(4259);
        ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
        if (::connect(fd_, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) != 0) {
            ::close(fd_);
            fd_ = -1;
        }
    }
    ~CtrlSession() {
        if (fd_ >= 0) ::close(fd_);
    }
    CtrlSession(const CtrlSession&) = delete;
    CtrlSession& operator=(const CtrlSession&) = delete;

    [[nodiscard]] bool connected() const { return fd_ >= 0; }
    // Sends one command ("SET 7 var value"); the reply's text, or nullopt when
    // the connection failed.
    std::optional<std::string> command(const std::string& text) {
        if (fd_ < 0) return std::nullopt;
        std::string frame;
        const std::size_t n = text.size() + 1;
        frame += static_cast<char>(n >> 8);
        frame += static_cast<char>(n & 0xff);
        frame += static_cast<char>(0xee);
        frame += '\0';
        frame += text;
        if (::send(fd_, frame.data(), frame.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(frame.size())) return std::nullopt;
        unsigned char head[3];
        if (!read_all(head, 3)) return std::nullopt;
        std::string payload(static_cast<std::size_t>(head[0]) << 8 | head[1], '\0');
        if (!read_all(payload.data(), payload.size()) || payload.empty()) return std::nullopt;
        return payload.substr(1);
    }

private:
    bool read_all(void* buf, std::size_t n) {
        auto* p = static_cast<char*>(buf);
        while (n > 0) {
            const ssize_t got = ::recv(fd_, p, n, 0);
            if (got <= 0) return false;
            p += got;
            n -= static_cast<std::size_t>(got);
        }
        return true;
    }
    int fd_;
};

// How much osmo-hlr logs: the tests read its log; a benchmark keeps it quiet.
enum class OsmoLogging { tests, quiet };

class OsmoHlr {
public:
    std::filesystem::path dir = make_dir();
    std::string address;
    std::filesystem::path db = dir / "hlr.db";
    std::filesystem::path log = dir / "osmo-hlr.log";

    explicit OsmoHlr(std::string addr, OsmoLogging logging = OsmoLogging::tests) : address(std::move(addr)) {
        std::ofstream(dir / "osmo-hlr.cfg") << "log stderr\n logging filter all 1\n logging color 0\n logging print category 1\n"
                                            << (logging == OsmoLogging::quiet
                                                    ? " logging level set-all error\n"
                                                    : " logging level main notice\n logging level db notice\n logging level ctrl info\n")
                                            << "line vty\n bind " << address << "\nctrl\n bind " << address << "\n"
                                            << "hlr\n database " << db.string() << "\n gsup\n  bind ip " << address << "\n";
        start();
    }
    ~OsmoHlr() {
        process_.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    OsmoHlr(const OsmoHlr&) = delete;
    OsmoHlr& operator=(const OsmoHlr&) = delete;

    // Starts osmo-hlr and waits (up to 20 s) until its CTRL port answers.
    void start() {
        process_ = std::make_unique<AgentProcess>(CREDPROV_OSMO_HLR, std::vector<std::string>{"-c", (dir / "osmo-hlr.cfg").string()}, log);
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(20);
        while (std::chrono::steady_clock::now() < end) {
            if (get("subscriber.by-imsi-001019999999999.info")) return;  // any answer, even ERROR
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        throw std::runtime_error("osmo-hlr did not start on " + address + ": " + read_file(log));
    }
    void kill() {
        if (process_) process_->signal(SIGKILL);
        if (process_) process_->wait();
        process_.reset();
    }
    // Loses every subscriber: the database file goes (osmo-hlr must be stopped).
    void wipe() {
        std::error_code ec;
        for (const char* suffix : {"", "-wal", "-shm", "-journal"}) std::filesystem::remove(db.string() + suffix, ec);
    }

    // ---- a minimal CTRL client of the test's own ----------------------------------
    // The reply text ("GET_REPLY 1 var value" / "ERROR 1 reason"), or nullopt when unreachable.
    std::optional<std::string> command(const std::string& text) const {
        CtrlSession session(address);
        return session.command(text);
    }
    std::optional<std::string> get(const std::string& var) const { return command("GET 1 " + var); }
    std::optional<std::string> set(const std::string& var, const std::string& value) const {
        return command("SET 1 " + var + " " + value);
    }
    // "MILENAGE,<k>,OPC,<opc>,5", "none", or "absent" when osmo-hlr has no such subscriber; nullopt: unreachable.
    std::optional<std::string> aud3g(const std::string& imsi) const {
        auto r = get("subscriber.by-imsi-" + imsi + ".aud3g");
        if (!r) return std::nullopt;
        if (r->starts_with("ERROR")) return r->find("No such subscriber") != std::string::npos ? std::optional<std::string>("absent") : r;
        const std::string prefix = "GET_REPLY 1 subscriber.by-imsi-" + imsi + ".aud3g ";
        return r->starts_with(prefix) ? r->substr(prefix.size()) : *r;
    }

private:
    static std::filesystem::path make_dir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "credprov-osmo-hlr-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        return tmpl;
    }
    std::unique_ptr<AgentProcess> process_;
};

}  // namespace credprov::testing
