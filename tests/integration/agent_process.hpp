// Helpers to run credprov-agentd and credprov-agentctl as separate processes
// in integration tests: spawn with a log file, wait for the socket, signal,
// reap; run a command and capture its output.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace credprov::testing {

struct CommandResult {
    int exit_code{-1};
    std::string out;
};

inline CommandResult run_command(const std::vector<std::string>& argv) {
    int pipefd[2];
    if (::pipe(pipefd) != 0) return {};
    const pid_t pid = ::fork();
    if (pid == 0) {
        ::dup2(pipefd[1], 1);
        ::close(pipefd[0]);
        ::close(pipefd[1]);
        std::vector<char*> args;
        for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
        args.push_back(nullptr);
        ::execv(args[0], args.data());
        ::_exit(127);
    }
    ::close(pipefd[1]);
    CommandResult r;
    std::array<char, 4096> buf{};
    ssize_t n = 0;
    while ((n = ::read(pipefd[0], buf.data(), buf.size())) > 0) r.out.append(buf.data(), static_cast<std::size_t>(n));
    ::close(pipefd[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

// A running credprov-agentd; killed (SIGKILL) on destruction if still alive.
class AgentProcess {
public:
    AgentProcess(const std::string& binary, const std::vector<std::string>& args, const std::filesystem::path& log) {
        pid_ = ::fork();
        if (pid_ == 0) {
            const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
            ::dup2(fd, 2);
            ::close(fd);
            std::vector<std::string> all{binary};
            all.insert(all.end(), args.begin(), args.end());
            std::vector<char*> argv;
            for (auto& a : all) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(binary.c_str(), argv.data());
            ::_exit(127);
        }
    }
    ~AgentProcess() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            wait();
        }
    }
    AgentProcess(const AgentProcess&) = delete;
    AgentProcess& operator=(const AgentProcess&) = delete;

    // True once a Unix socket at `path` accepts connections. The file appears
    // at bind(), a moment before listen(): a connect in between is refused.
    // Read from /proc/net/unix (flag __SO_ACCEPTCON), without connecting, so
    // the daemon sees no extra connection.
    [[nodiscard]] static bool listening(const std::filesystem::path& path) {
        std::ifstream table("/proc/net/unix");
        std::string line;
        const std::string want = " " + path.string();
        while (std::getline(table, line)) {
            if (line.size() < want.size() || line.compare(line.size() - want.size(), want.size(), want) != 0) continue;
            std::istringstream fields(line);
            std::string num, refs, proto, flags;
            fields >> num >> refs >> proto >> flags;
            if (flags == "00010000") return true;
        }
        return false;
    }
    [[nodiscard]] bool wait_for_socket(const std::filesystem::path& socket, std::chrono::milliseconds timeout) const {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (std::chrono::steady_clock::now() < end) {
            if (listening(socket)) return true;
            int status = 0;
            if (::waitpid(pid_, &status, WNOHANG) == pid_) return false;
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return false;
    }
    void signal(int sig) const { ::kill(pid_, sig); }
    // Waits for exit; returns the exit code, or 128 + signal.
    int wait() {
        if (pid_ <= 0) return exit_code_;
        int status = 0;
        ::waitpid(pid_, &status, 0);
        pid_ = -1;
        exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        return exit_code_;
    }
    [[nodiscard]] pid_t pid() const { return pid_; }

private:
    pid_t pid_{-1};
    int exit_code_{-1};
};

inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream in(p);
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// The value after `label` on a line "label   value" of agentctl's output.
inline std::string field_of(const std::string& out, const std::string& label) {
    std::istringstream in(out);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(label, 0) == 0) {
            auto v = line.substr(label.size());
            v.erase(0, v.find_first_not_of(' '));
            return v;
        }
    }
    return {};
}

}  // namespace credprov::testing
