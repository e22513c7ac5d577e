// Tests of the store's TPM 2.0 NV counter (tpm_counter.hpp) against a real
// TPM simulator: each test case starts its own swtpm (Debian's `swtpm`
// package) on free loopback ports with a fresh state directory, and kills it
// at the end. No mock: the TSS, the TCTI loader and the TPM are the real ones.
//
// Built only with TPM support (CREDPROV_HAVE_TPM, from credprov_agent_tpm).
// swtpm missing is a failure, not a skip: CI installs it (scripts/setup).
#include <doctest/doctest.h>

#include "scratch.hpp"

#ifdef CREDPROV_HAVE_TPM

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "credprov/agent/agent_host.hpp"
#include "credprov/agent/store.hpp"
#include "credprov/agent/tpm_counter.hpp"

using namespace credprov;
using namespace credprov::agent;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr std::uint32_t kIndex = TpmConfig::kDefaultNvIndex;

// tpm2-tss logs the failures these tests provoke on standard error; quiet
// unless the developer asks for its log (TSS2_LOG=all+debug).
[[maybe_unused]] const bool kQuietTss = ::setenv("TSS2_LOG", "all+none", /*overwrite=*/0) == 0;

// The error of a failed result, for a test message (empty when it succeeded:
// doctest may evaluate messages of passing checks too).
template <class T>
std::string why(const Result<T>& r) {
    return r.ok() ? std::string() : std::string(to_string(r.error().code)) + ": " + r.error().message;
}

fs::path make_temp_dir(const char* name) {
    std::string tmpl = (fs::temp_directory_path() / name).string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    return tmpl;
}

// A swtpm TPM 2.0 simulator on 127.0.0.1:port (commands) and port + 1
// (control, as the "swtpm:" TCTI expects), state in its own temporary
// directory; stopped and removed on destruction.
class SwTpm {
public:
    SwTpm() : dir_(make_temp_dir("credprov-swtpm-XXXXXX")) {
        std::mt19937 rng(std::random_device{}());
        std::uniform_int_distribution<int> pick(20000, 59998);
        for (int attempt = 0; attempt < 20 && pid_ <= 0; ++attempt) {
            const int port = pick(rng);
            if (!credprov::testing::loopback_bindable(port) || !credprov::testing::loopback_bindable(port + 1)) continue;
            if (start(port)) port_ = port;
        }
        if (pid_ <= 0) {
            const std::string why = log();
            std::error_code ec;
            fs::remove_all(dir_, ec);
            FAIL("swtpm did not start (is Debian's swtpm package installed?): " << why);
        }
    }
    ~SwTpm() {
        stop();
        std::error_code ec;
        fs::remove_all(dir_, ec);
    }
    SwTpm(const SwTpm&) = delete;
    SwTpm& operator=(const SwTpm&) = delete;

    [[nodiscard]] std::string tcti() const { return "swtpm:host=127.0.0.1,port=" + std::to_string(port_); }
    [[nodiscard]] std::string log() const {
        std::ifstream in(dir_ / "swtpm.log");
        return std::string(std::istreambuf_iterator<char>(in), {});
    }

    // SIGTERM, then SIGKILL if it has not exited within two seconds.
    void stop() {
        if (pid_ <= 0) return;
        ::kill(pid_, SIGTERM);
        int status = 0;
        const auto end = std::chrono::steady_clock::now() + 2s;
        while (::waitpid(pid_, &status, WNOHANG) == 0) {
            if (std::chrono::steady_clock::now() > end) {
                ::kill(pid_, SIGKILL);
                ::waitpid(pid_, &status, 0);
                break;
            }
            std::this_thread::sleep_for(10ms);
        }
        pid_ = -1;
    }

private:
    // Starts swtpm on `port` and waits until both sockets accept; false (and
    // reaped) if it exits first, e.g. because another process took a port.
    bool start(int port) {
        const std::string state = "dir=" + dir_.string();
        const std::string server = "type=tcp,port=" + std::to_string(port) + ",bindaddr=127.0.0.1";
        const std::string ctrl = "type=tcp,port=" + std::to_string(port + 1) + ",bindaddr=127.0.0.1";
        std::vector<std::string> args{"swtpm",    "socket", "--tpm2",     "--server", server, "--ctrl",
                                      ctrl,       "--tpmstate", state, "--flags", "not-need-init,startup-clear"};
        const std::string log_path = (dir_ / "swtpm.log").string();
        const pid_t pid = ::fork();
        REQUIRE(pid >= 0);
        if (pid == 0) {
            const int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
            if (fd >= 0) {
                ::dup2(fd, 1);
                ::dup2(fd, 2);
                ::close(fd);
            }
            std::vector<char*> argv;
            for (auto& a : args) argv.push_back(a.data());
            argv.push_back(nullptr);
            ::execvp(argv[0], argv.data());
            std::fprintf(stderr, "cannot run swtpm: not installed or not on PATH\n");
            ::_exit(127);
        }
        const auto end = std::chrono::steady_clock::now() + 10s;
        while (std::chrono::steady_clock::now() < end) {
            int status = 0;
            if (::waitpid(pid, &status, WNOHANG) == pid) return false;
            if (credprov::testing::loopback_accepts(port + 1) && credprov::testing::loopback_accepts(port)) {
                pid_ = pid;
                return true;
            }
            std::this_thread::sleep_for(10ms);
        }
        ::kill(pid, SIGKILL);
        ::waitpid(pid, nullptr, 0);
        return false;
    }

    fs::path dir_;
    pid_t pid_{-1};
    int port_{0};
};

std::unique_ptr<TpmNvCounter> open_counter(const SwTpm& tpm, bool define) {
    auto c = TpmNvCounter::open(tpm.tcti(), kIndex, define);
    REQUIRE_MESSAGE(c.ok(), why(c) << "\nswtpm log:\n" << tpm.log());
    return std::move(*c);
}

std::uint64_t value_of(MonotonicCounter& c) {
    auto v = c.read();
    REQUIRE_MESSAGE(v.ok(), why(v));
    REQUIRE(v->has_value());
    return **v;
}

class TempDir {
public:
    TempDir() : path_(make_temp_dir("credprov-tpm-store-XXXXXX")) {}
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    [[nodiscard]] const fs::path& path() const { return path_; }
    [[nodiscard]] fs::path key() const { return path_ / "store.key"; }
    [[nodiscard]] fs::path store() const { return Store::file_path(path_); }

private:
    fs::path path_;
};

AgentState device_state() {
    DeviceTrust trust;
    trust.lab_trust_on_first_use = true;
    return new_device_state(trust, 10);
}

AgentState with_attempts(const AgentState& from, std::uint32_t n) {
    AgentState s = from.clone();
    s.attempts.unconfirmed = n;
    return s;
}

// A port nothing listens on (bound once by the kernel's choice, then released).
int closed_port() {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0);
    socklen_t len = sizeof addr;
    REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
    ::close(fd);
    return ntohs(addr.sin_port);
}

// Raw ESAPI access for what the agent never does itself: deleting an index,
// defining one of another kind.
class RawTpm {
public:
    explicit RawTpm(const std::string& tcti) {
        REQUIRE(Tss2_TctiLdr_Initialize(tcti.c_str(), &tcti_) == TSS2_RC_SUCCESS);
        REQUIRE(Esys_Initialize(&esys_, tcti_, nullptr) == TSS2_RC_SUCCESS);
    }
    ~RawTpm() {
        Esys_Finalize(&esys_);
        Tss2_TctiLdr_Finalize(&tcti_);
    }
    RawTpm(const RawTpm&) = delete;
    RawTpm& operator=(const RawTpm&) = delete;

    void undefine(std::uint32_t index) {
        ESYS_TR nv = ESYS_TR_NONE;
        REQUIRE(Esys_TR_FromTPMPublic(esys_, index, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &nv) == TSS2_RC_SUCCESS);
        REQUIRE(Esys_NV_UndefineSpace(esys_, ESYS_TR_RH_OWNER, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE) ==
                TSS2_RC_SUCCESS);
    }
    // An ordinary 8-byte data index with the same auth attributes.
    void define_ordinary(std::uint32_t index) {
        TPM2B_AUTH auth{};
        TPM2B_NV_PUBLIC pub{};
        pub.nvPublic.nvIndex = index;
        pub.nvPublic.nameAlg = TPM2_ALG_SHA256;
        pub.nvPublic.attributes = TPMA_NV_AUTHREAD | TPMA_NV_AUTHWRITE | TPMA_NV_NO_DA;
        pub.nvPublic.dataSize = 8;
        ESYS_TR nv = ESYS_TR_NONE;
        REQUIRE(Esys_NV_DefineSpace(esys_, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &auth, &pub,
                                    &nv) == TSS2_RC_SUCCESS);
    }

private:
    TSS2_TCTI_CONTEXT* tcti_{nullptr};
    ESYS_CONTEXT* esys_{nullptr};
};

}  // namespace

TEST_CASE("TPM counter: defined on request, read, advanced, never lowered (swtpm)") {
    SwTpm tpm;
    // Not defined and not allowed to define: refused, naming the index.
    auto missing = TpmNvCounter::open(tpm.tcti(), kIndex, false);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().code == ErrorCode::storage);
    CHECK_MESSAGE(missing.error().message.find("TPM NV counter 0x0182a0c0 is not defined") != std::string::npos,
                  missing.error().message);

    auto counter = open_counter(tpm, true);
    CHECK(counter->nv_index() == kIndex);
    // Incremented once at definition, so readable (never TPM_RC_NV_UNINITIALIZED).
    const std::uint64_t v0 = value_of(*counter);
    CHECK(v0 >= 1);

    REQUIRE(counter->advance_to(v0).ok());  // already there: unchanged
    CHECK(value_of(*counter) == v0);
    REQUIRE(counter->advance_to(v0 + 1).ok());
    CHECK(value_of(*counter) == v0 + 1);
    REQUIRE(counter->advance_to(v0 + 4).ok());  // several steps
    CHECK(value_of(*counter) == v0 + 4);
    REQUIRE(counter->advance_to(v0).ok());  // below: never lowered
    REQUIRE(counter->advance_to(0).ok());
    CHECK(value_of(*counter) == v0 + 4);

    // A target absurdly far ahead is refused without stepping the TPM.
    auto far = counter->advance_to(v0 + 4 + TpmNvCounter::kMaxSteps + 1);
    REQUIRE_FALSE(far.ok());
    CHECK(far.error().code == ErrorCode::storage);
    CHECK(far.error().message.find("refusing to increment") != std::string::npos);
    CHECK(value_of(*counter) == v0 + 4);

    // Asking to define an index that exists changes nothing.
    auto again = open_counter(tpm, true);
    CHECK(value_of(*again) == v0 + 4);
}

TEST_CASE("TPM counter: a reopened counter (new ESAPI context) sees the same value (swtpm)") {
    SwTpm tpm;
    std::uint64_t last = 0;
    {
        auto counter = open_counter(tpm, true);
        const std::uint64_t v0 = value_of(*counter);
        REQUIRE(counter->advance_to(v0 + 3).ok());
        last = value_of(*counter);
        CHECK(last == v0 + 3);
    }
    auto reopened = open_counter(tpm, false);
    CHECK(value_of(*reopened) == last);
    // Two counters on the same index see each other's increments.
    auto other = open_counter(tpm, false);
    REQUIRE(other->advance_to(last + 1).ok());
    CHECK(value_of(*reopened) == last + 1);
}

TEST_CASE("TPM counter: an index deleted and defined again starts above its old value (swtpm)") {
    SwTpm tpm;
    std::uint64_t old_value = 0;
    {
        auto counter = open_counter(tpm, true);
        REQUIRE(counter->advance_to(value_of(*counter) + 40).ok());
        old_value = value_of(*counter);
    }
    {
        RawTpm raw(tpm.tcti());
        raw.undefine(kIndex);  // needs only the (empty) owner auth
    }
    auto missing = TpmNvCounter::open(tpm.tcti(), kIndex, false);
    REQUIRE_FALSE(missing.ok());
    CHECK(missing.error().message.find("not defined") != std::string::npos);
    // Defined anew, it does not start over: an older store stays refused.
    auto redefined = open_counter(tpm, true);
    CHECK(value_of(*redefined) > old_value);
}

TEST_CASE("TPM counter: an index that is not such a counter is refused, never redefined (swtpm)") {
    SwTpm tpm;
    constexpr std::uint32_t kOther = 0x01800123;
    {
        RawTpm raw(tpm.tcti());
        raw.define_ordinary(kOther);
    }
    for (bool define : {false, true}) {
        auto refused = TpmNvCounter::open(tpm.tcti(), kOther, define);
        REQUIRE_FALSE(refused.ok());
        CHECK(refused.error().code == ErrorCode::storage);
        CHECK_MESSAGE(refused.error().message.find("TPM NV counter 0x01800123: the index exists but is not an "
                                                   "8-byte NV counter") != std::string::npos,
                      refused.error().message);
    }
}

TEST_CASE("store: with a TPM NV counter a restored older store file is refused as a rollback (swtpm)") {
    SwTpm tpm;
    TempDir dir;
    auto counter = open_counter(tpm, true);
    const AgentState initial = device_state();
    std::vector<std::uint8_t> old_file;
    std::vector<std::uint8_t> current_file;
    auto read_all = [](const fs::path& p) {
        std::ifstream in(p, std::ios::binary);
        REQUIRE(in.good());
        return std::vector<std::uint8_t>(std::istreambuf_iterator<char>(in), {});
    };
    auto write_over = [](const fs::path& p, const std::vector<std::uint8_t>& data) {
        std::ofstream out(p, std::ios::binary | std::ios::trunc);
        REQUIRE(out.good());
        out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
        REQUIRE(out.good());
    };
    {
        const std::uint64_t before = value_of(*counter);
        auto store = Store::create(dir.path(), dir.key(), initial, real_fs(), *counter);
        REQUIRE_MESSAGE(store.ok(), why(store));
        CHECK(store->generation() == before + 1);  // starts above the counter
        CHECK(value_of(*counter) == store->generation());
        REQUIRE(store->commit(with_attempts(initial, 1)).ok());
        REQUIRE(store->commit(with_attempts(initial, 2)).ok());
        CHECK(value_of(*counter) == store->generation());
        old_file = read_all(dir.store());  // a consistent snapshot (a backup)
        REQUIRE(store->commit(with_attempts(initial, 3)).ok());
        CHECK(value_of(*counter) == store->generation());
        current_file = read_all(dir.store());
    }

    write_over(dir.store(), old_file);  // restore the older snapshot
    auto refused = Store::open(dir.path(), dir.key(), real_fs(), *counter);
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().code == ErrorCode::replay);
    CHECK(refused.error().message.find("rollback") != std::string::npos);
    CHECK(read_all(dir.store()) == old_file);  // refused, and left as it is
    // Without the counter the same file is accepted: the documented limit.
    CHECK(Store::open(dir.path(), dir.key()).ok());
    // After a restart (a new connection to the TPM) too.
    auto restarted = open_counter(tpm, false);
    auto again = Store::open(dir.path(), dir.key(), real_fs(), *restarted);
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().code == ErrorCode::replay);

    write_over(dir.store(), current_file);  // the current file opens fine
    auto opened = Store::open(dir.path(), dir.key(), real_fs(), *restarted);
    REQUIRE_MESSAGE(opened.ok(), why(opened));
    CHECK(opened->state().attempts.unconfirmed == 3);
    CHECK(opened->generation() == value_of(*restarted));
    REQUIRE(opened->commit(with_attempts(initial, 4)).ok());
    CHECK(value_of(*restarted) == opened->generation());
}

TEST_CASE("TPM counter: an unreachable TPM is a clear storage error") {
    const int port = closed_port();
    const std::string tcti = "swtpm:host=127.0.0.1,port=" + std::to_string(port);
    auto unreachable = TpmNvCounter::open(tcti, kIndex, true);
    REQUIRE_FALSE(unreachable.ok());
    CHECK(unreachable.error().code == ErrorCode::storage);
    CHECK_MESSAGE(unreachable.error().message.find("TPM NV counter 0x0182a0c0: cannot reach the TPM at '" + tcti +
                                                   "'") != std::string::npos,
                  unreachable.error().message);

    auto no_device = TpmNvCounter::open("device:/nonexistent/tpmrm0", kIndex, true);
    REQUIRE_FALSE(no_device.ok());
    CHECK(no_device.error().code == ErrorCode::storage);
    CHECK(no_device.error().message.find("device:/nonexistent/tpmrm0") != std::string::npos);

    // A TPM that goes away after the counter was opened: every use fails
    // cleanly, the store refuses to open and a commit reports it.
    SwTpm tpm;
    TempDir dir;
    auto counter = open_counter(tpm, true);
    auto store = Store::create(dir.path(), dir.key(), device_state(), real_fs(), *counter);
    REQUIRE_MESSAGE(store.ok(), why(store));
    tpm.stop();
    auto read = counter->read();
    REQUIRE_FALSE(read.ok());
    CHECK(read.error().code == ErrorCode::storage);
    CHECK(read.error().message.find("cannot reach the TPM") != std::string::npos);
    CHECK(counter->advance_to(100).error().code == ErrorCode::storage);
    auto commit = store->commit(with_attempts(device_state(), 1));
    REQUIRE_FALSE(commit.ok());
    CHECK(commit.error().code == ErrorCode::storage);
    CHECK(commit.error().message.find("monotonic counter") != std::string::npos);
    auto reopened = Store::open(dir.path(), dir.key(), real_fs(), *counter);
    REQUIRE_FALSE(reopened.ok());
    CHECK(reopened.error().code == ErrorCode::storage);
    CHECK(reopened.error().message.find("monotonic counter: TPM NV counter 0x0182a0c0") != std::string::npos);
}

TEST_CASE("TPM counter: [tpm] in the configuration selects it (swtpm)") {
    SwTpm tpm;
    AgentConfig cfg;
    CHECK(tpm_counter_available());
    auto none = open_configured_counter(cfg, true);
    REQUIRE(none.ok());
    CHECK(*none == nullptr);  // no [tpm]: no_counter()

    cfg.tpm = TpmConfig{tpm.tcti(), kIndex};
    auto refused = open_configured_counter(cfg, false);  // an existing store's index must exist
    REQUIRE_FALSE(refused.ok());
    CHECK(refused.error().message.find("not defined") != std::string::npos);
    auto defined = open_configured_counter(cfg, true);
    REQUIRE_MESSAGE(defined.ok(), why(defined));
    REQUIRE(*defined != nullptr);
    CHECK(value_of(**defined) >= 1);
    CHECK(open_configured_counter(cfg, false).ok());
}

#endif  // CREDPROV_HAVE_TPM
