// The NFC turn-taking link (nfc_link.hpp) between an initiator and a target
// joined by an in-memory "field" (two frame queues, the target on its own
// thread as on a real device). libnfc itself is tested against simulated
// PN532 chips (tests/nfc/).
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "credprov/transport/nfc/nfc_link.hpp"

using namespace credprov;
using namespace credprov::transport::nfc;
using namespace std::chrono_literals;

namespace {

class Field {
public:
    Result<Bytes> transceive(ByteView frame, std::chrono::milliseconds timeout) {
        std::unique_lock l(m_);
        if (lost_) return make_error(ErrorCode::closed, "field lost");
        to_target_.emplace_back(frame.begin(), frame.end());
        cv_.notify_all();
        if (!cv_.wait_for(l, timeout, [&] { return !to_initiator_.empty() || lost_; })) {
            return make_error(ErrorCode::timeout, "no answer");
        }
        if (lost_) return make_error(ErrorCode::closed, "field lost");
        Bytes b = std::move(to_initiator_.front());
        to_initiator_.pop_front();
        return b;
    }
    Result<Bytes> receive(std::chrono::milliseconds timeout) {
        std::unique_lock l(m_);
        if (!cv_.wait_for(l, timeout, [&] { return !to_target_.empty() || lost_; })) {
            return make_error(ErrorCode::timeout, "nothing");
        }
        if (lost_) return make_error(ErrorCode::closed, "field lost");
        Bytes b = std::move(to_target_.front());
        to_target_.pop_front();
        return b;
    }
    Status send(ByteView frame) {
        std::lock_guard l(m_);
        if (lost_) return make_error(ErrorCode::closed, "field lost");
        to_initiator_.emplace_back(frame.begin(), frame.end());
        cv_.notify_all();
        return {};
    }
    void lose() {
        std::lock_guard l(m_);
        lost_ = true;
        cv_.notify_all();
    }
    NfcInitiatorLink initiator(NfcInitiatorLink::Options o = {}) {
        return NfcInitiatorLink([this](ByteView f, std::chrono::milliseconds t) { return transceive(f, t); }, o);
    }
    NfcTargetLink target(NfcTargetLink::Options o = {}) {
        return NfcTargetLink(TargetFrames{[this](std::chrono::milliseconds t) { return receive(t); },
                                          [this](ByteView f) { return send(f); }},
                             o);
    }

private:
    std::mutex m_;
    std::condition_variable cv_;
    std::deque<Bytes> to_target_, to_initiator_;
    bool lost_{false};
};

Bytes pattern(std::size_t n, std::uint8_t seed) {
    Bytes b(n);
    for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(seed + i * 7);
    return b;
}

}  // namespace

TEST_CASE("nfc link: request and reply take the fewest exchanges the framing allows") {
    Field field;
    auto initiator = field.initiator();
    auto target = field.target();
    const Bytes request = pattern(600, 1);  // 3 frames of <= 250 bytes
    const Bytes reply = pattern(700, 2);    // 3 frames
    std::thread device([&] {
        auto got = receive(target, 5s);
        REQUIRE(got.ok());
        CHECK(*got == request);
        REQUIRE(target.send(reply).ok());
        target.close();  // hands over the rest of the reply as the initiator polls
    });
    REQUIRE(initiator.send(request).ok());
    auto answer = receive(initiator, 5s);
    device.join();
    REQUIRE(answer.ok());
    CHECK(*answer == reply);
    // 3 frames out; the third is answered with the reply's first fragment;
    // two polls fetch the rest.
    CHECK(initiator.exchanges() == 5);
}

TEST_CASE("nfc link: several messages each way, the target slower than the initiator's polls") {
    Field field;
    NfcInitiatorLink::Options io;
    io.frame_size = 64;
    auto initiator = field.initiator(io);
    NfcTargetLink::Options to;
    to.frame_size = 64;
    auto target = field.target(to);
    std::thread device([&] {
        for (int i = 0; i < 3; ++i) {
            auto got = receive(target, 5s);
            REQUIRE(got.ok());
            // The host thinks before it answers: the initiator polls with EMPTY meanwhile.
            (void)target.poll(20ms);
            Bytes echo = *got;
            echo.push_back(static_cast<std::uint8_t>(i));
            REQUIRE(target.send(echo).ok());
        }
        target.close();
    });
    for (int i = 0; i < 3; ++i) {
        const Bytes m = pattern(100 + 90 * static_cast<std::size_t>(i), static_cast<std::uint8_t>(i));
        REQUIRE(initiator.send(m).ok());
        auto answer = receive(initiator, 5s);
        REQUIRE(answer.ok());
        Bytes expected = m;
        expected.push_back(static_cast<std::uint8_t>(i));
        CHECK(*answer == expected);
    }
    device.join();
}

TEST_CASE("nfc link: the field lost mid-message is a link error on both sides, never a partial message") {
    Field field;
    auto target = field.target();
    std::thread device([&] {
        auto got = receive(target, 5s);
        REQUIRE_FALSE(got.ok());
        CHECK(got.error().code == ErrorCode::closed);
    });
    // The first of three frames goes out, then the device leaves the field.
    std::atomic<bool> lost{false};
    NfcInitiatorLink cut([&](ByteView f, std::chrono::milliseconds t) {
        if (f.size() > 1 && (f[0] & 0x80) == 0) {  // the second fragment
            field.lose();
            lost = true;
        }
        return field.transceive(f, t);
    }, {});
    auto st = cut.send(pattern(600, 3));
    device.join();
    REQUIRE(lost);
    REQUIRE_FALSE(st.ok());
    CHECK(st.error().code == ErrorCode::closed);
    auto after = receive(cut, 100ms);
    REQUIRE_FALSE(after.ok());
    CHECK(after.error().code == ErrorCode::closed);
}

TEST_CASE("nfc link: garbage and oversized frames from the peer end the link cleanly") {
    SUBCASE("the initiator gets a frame that is not a fragment") {
        NfcInitiatorLink link([](ByteView, std::chrono::milliseconds) -> Result<Bytes> { return Bytes{0x05}; }, {});
        auto st = link.send(pattern(10, 4));
        REQUIRE_FALSE(st.ok());
        CHECK(st.error().code == ErrorCode::malformed);
        auto r = receive(link, 50ms);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == ErrorCode::malformed);
    }
    SUBCASE("the target is announced a message above its limit") {
        std::deque<Bytes> frames{Bytes{0xC0, 0x20, 0x00, 0x01}};  // FIRST|LAST, total 8192
        Bytes answered;
        NfcTargetLink link(TargetFrames{[&](std::chrono::milliseconds) -> Result<Bytes> {
                                            if (frames.empty()) return make_error(ErrorCode::timeout, "none");
                                            Bytes f = frames.front();
                                            frames.pop_front();
                                            return f;
                                        },
                                        [&](ByteView f) {
                                            answered.assign(f.begin(), f.end());
                                            return Status{};
                                        }},
                           {});
        auto r = receive(link, 100ms);
        REQUIRE_FALSE(r.ok());
        CHECK(r.error().code == ErrorCode::oversized);
        CHECK(is_empty_frame(answered));  // the initiator was answered, not left hanging
    }
}
