// NfcTargetListener (target_listener.hpp).
#include "credprov/transport/nfc/target_listener.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <condition_variable>
#include <mutex>
#include <thread>

#include "credprov/transport/nfc/libnfc_device.hpp"

namespace credprov::transport::nfc {

using namespace std::chrono_literals;

struct NfcTargetListener::State {
    std::string connstring;
    std::unique_ptr<LibnfcDevice> device;
    int event_fd{-1};
    mutable std::mutex m;
    std::condition_variable cv;
    bool stop{false};
    bool activated{false};  // a reader activated the chip; the session is not taken yet
    bool in_session{false};
    std::string problem;
    std::string name;
    std::thread thread;

    void run() {
        std::unique_lock l(m);
        while (!stop) {
            if (activated || in_session) {
                cv.wait(l, [&] { return stop || (!activated && !in_session); });
                continue;
            }
            if (!device) {
                l.unlock();
                auto d = LibnfcDevice::open(connstring);
                l.lock();
                if (!d) {
                    problem = d.error().message;
                    cv.wait_for(l, 1s, [&] { return stop; });
                    continue;
                }
                device = std::move(*d);
                name = device->name();
                problem.clear();
            }
            LibnfcDevice* dev = device.get();
            l.unlock();
            // A long wait: every re-arm leaves a moment in which a reader
            // can activate the chip just as its host gives up waiting (the
            // reader's first frame then meets a chip that is arming again).
            // Stopping aborts the wait (the destructor), so it costs nothing.
            auto r = dev->wait_for_initiator(30s);
            l.lock();
            if (r) {
                activated = true;
                const std::uint64_t one = 1;
                (void)!::write(event_fd, &one, sizeof one);
                continue;
            }
            // No reader yet, or one that left before the session: wait again.
            if (r.error().code == ErrorCode::timeout || r.error().code == ErrorCode::closed || stop) continue;
            // The chip failed: drop it and open it again in a second.
            problem = r.error().message;
            l.unlock();
            device.reset();
            l.lock();
            cv.wait_for(l, 1s, [&] { return stop; });
        }
    }
};

NfcTargetListener::NfcTargetListener(std::shared_ptr<State> state) : state_(std::move(state)) {}

Result<std::unique_ptr<NfcTargetListener>> NfcTargetListener::open(const std::string& connstring) {
    auto device = LibnfcDevice::open(connstring);
    if (!device) return device.error();
    auto s = std::make_shared<State>();
    s->connstring = connstring;
    s->name = (*device)->name();
    s->device = std::move(*device);
    s->event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->event_fd < 0) return make_error(ErrorCode::io, "nfc: cannot create an eventfd");
    s->thread = std::thread([raw = s.get()] { raw->run(); });
    return std::unique_ptr<NfcTargetListener>(new NfcTargetListener(std::move(s)));
}

NfcTargetListener::~NfcTargetListener() {
    {
        std::lock_guard l(state_->m);
        state_->stop = true;
        if (state_->device) state_->device->abort();
    }
    state_->cv.notify_all();
    if (state_->thread.joinable()) state_->thread.join();
    if (state_->event_fd >= 0) ::close(state_->event_fd);
}

int NfcTargetListener::fd() const noexcept { return state_->event_fd; }

std::shared_ptr<NfcTargetLink> NfcTargetListener::take_session() {
    std::uint64_t count = 0;
    (void)!::read(state_->event_fd, &count, sizeof count);
    std::lock_guard l(state_->m);
    if (!state_->activated || !state_->device) return nullptr;
    state_->activated = false;
    state_->in_session = true;
    auto state = state_;
    auto* link = new NfcTargetLink(target_frames(*state_->device, 2s), {});
    // Destroying the link hands the chip back to the waiting thread.
    return std::shared_ptr<NfcTargetLink>(link, [state](NfcTargetLink* p) {
        p->close();
        delete p;
        {
            std::lock_guard g(state->m);
            state->in_session = false;
        }
        state->cv.notify_all();
    });
}

std::string NfcTargetListener::name() const {
    std::lock_guard l(state_->m);
    return state_->name;
}

std::string NfcTargetListener::problem() const {
    std::lock_guard l(state_->m);
    return state_->problem;
}

}  // namespace credprov::transport::nfc
