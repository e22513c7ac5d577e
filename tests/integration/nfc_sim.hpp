// A tests/nfc/pn532-sim process for one test: simulated PN532 chips on
// pseudo-terminals (DIR/<chip>) that stock libnfc drives through its
// pn532_uart driver, sharing one simulated RF field. Test support only.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "agent_process.hpp"

namespace credprov::testing {

class NfcSim {
public:
    // tags: NAME=FILE of NDEF messages that the simulator itself hosts as Type 4 tags.
    NfcSim(const std::filesystem::path& dir, const std::vector<std::string>& chips,
           const std::vector<std::string>& tags = {})
        : dir_(dir) {
        std::filesystem::create_directories(dir_);
        // libnfc must not probe other ports or drivers.
        ::setenv("LIBNFC_AUTO_SCAN", "false", 1);
        ::setenv("LIBNFC_INTRUSIVE_SCAN", "false", 1);
        std::vector<std::string> args{CREDPROV_TEST_NFC_SIM, "--dir", dir_.string(), "--control", control().string(),
                                      "--log", (dir_ / "sim.log").string(), "--timeout", "300"};
        for (const auto& c : chips) {
            args.push_back("--chip");
            args.push_back(c);
        }
        for (const auto& t : tags) {
            args.push_back("--tag");
            args.push_back(t);
        }
        const auto out = dir_ / "sim.stdout";
        pid_ = ::fork();
        if (pid_ == 0) {
            const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
            ::dup2(fd, 1);
            ::dup2(fd, 2);
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execv(args[0].c_str(), argv.data());
            ::_exit(127);
        }
        for (int i = 0; i < 500; ++i) {
            if (read_file(out).find("ready") != std::string::npos) return;
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        FAIL("pn532-sim did not start: " << read_file(out));
    }
    ~NfcSim() {
        if (pid_ > 0) {
            ::kill(pid_, SIGTERM);
            int status = 0;
            ::waitpid(pid_, &status, 0);
        }
    }
    NfcSim(const NfcSim&) = delete;
    NfcSim& operator=(const NfcSim&) = delete;

    // The libnfc address of a chip.
    [[nodiscard]] std::string address(const std::string& chip) const { return "nfc:pn532_uart:" + (dir_ / chip).string(); }
    [[nodiscard]] std::filesystem::path control() const { return dir_ / "control"; }
    // A control command (remove CHIP, restore CHIP, drop-next N, garbage CHIP, status).
    CommandResult send(const std::string& command) const {
        return run_command({CREDPROV_TEST_NFC_SIM, "--send", control().string(), command});
    }
    [[nodiscard]] std::string log() const { return read_file(dir_ / "sim.log"); }

private:
    std::filesystem::path dir_;
    pid_t pid_{-1};
};

}  // namespace credprov::testing
