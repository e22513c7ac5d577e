// LibnfcDevice (libnfc_device.hpp).
#include "credprov/transport/nfc/libnfc_device.hpp"
#include "credprov/transport/nfc/ndef.hpp"

#include <nfc/nfc.h>
#include <sodium.h>

#include <array>
#include <cstring>
#include <thread>

namespace credprov::transport::nfc {

namespace {

// A PN53x carries at most 262 bytes of data per frame; more from a peer is an error.
constexpr std::size_t kRxBuffer = 264;

int to_libnfc_ms(std::chrono::milliseconds t) {
    // 0 would mean "no timeout" to libnfc: never block forever by accident.
    const auto ms = t.count();
    return static_cast<int>(ms < 1 ? 1 : (ms > 600000 ? 600000 : ms));
}

}  // namespace

struct LibnfcDevice::Handles {
    nfc_context* context{nullptr};
    nfc_device* device{nullptr};
    ~Handles() {
        if (device != nullptr) nfc_close(device);
        if (context != nullptr) nfc_exit(context);
    }
};

Result<std::string> parse_nfc_address(std::string_view address) {
    if (address.rfind("nfc:", 0) != 0) return make_error(ErrorCode::malformed, "nfc: an NFC address starts with nfc:");
    std::string connstring(address.substr(4));
    if (connstring.size() >= NFC_BUFSIZE_CONNSTRING) {
        return make_error(ErrorCode::malformed, "nfc: the libnfc connection string is too long");
    }
    for (char c : connstring) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            return make_error(ErrorCode::malformed, "nfc: the libnfc connection string has control characters");
        }
    }
    return connstring;
}

Error LibnfcDevice::error(std::string_view what, int code) const {
    const char* text = h_ && h_->device ? nfc_strerror(h_->device) : "";
    ErrorCode ec = ErrorCode::io;
    if (code == NFC_ETIMEOUT) ec = ErrorCode::timeout;
    else if (code == NFC_ETGRELEASED || code == NFC_ERFTRANS) ec = ErrorCode::closed;
    else if (code == NFC_EOVFLOW) ec = ErrorCode::oversized;
    else if (code == NFC_EOPABORTED) ec = ErrorCode::closed;
    std::string msg = "nfc: " + std::string(what);
    if (ec == ErrorCode::closed && code != NFC_EOPABORTED) msg += ": the field was lost (device moved away?)";
    if (text != nullptr && *text != '\0') msg += std::string(" (libnfc: ") + text + ")";
    return Error{ec, msg};
}

LibnfcDevice::~LibnfcDevice() = default;

Result<std::unique_ptr<LibnfcDevice>> LibnfcDevice::open(const std::string& connstring) {
    std::unique_ptr<LibnfcDevice> d(new LibnfcDevice());
    d->h_ = std::make_unique<Handles>();
    nfc_init(&d->h_->context);
    if (d->h_->context == nullptr) return make_error(ErrorCode::io, "nfc: libnfc could not start (out of memory?)");
    d->h_->device = nfc_open(d->h_->context, connstring.empty() ? nullptr : connstring.c_str());
    if (d->h_->device == nullptr) {
        return make_error(ErrorCode::io, connstring.empty()
                                             ? std::string("nfc: no NFC device found (set LIBNFC_DEVICE or give nfc:<connstring>)")
                                             : "nfc: cannot open the NFC device " + connstring);
    }
    d->name_ = nfc_device_get_name(d->h_->device);
    return d;
}

Status LibnfcDevice::select_dep_target(std::chrono::milliseconds timeout) {
    if (int r = nfc_initiator_init(h_->device); r < 0) return error("cannot become an initiator", r);
    // Until a device is held to the reader the chip finds nothing, or (a
    // target leaving, two in the field) an RF error: keep looking until the
    // deadline, a quarter of a second per attempt.
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    Error last = make_error(ErrorCode::timeout, "nfc: no device in the field (hold the reader to the device)");
    do {
        const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
        nfc_target target{};
        const int r = nfc_initiator_select_dep_target(h_->device, NDM_PASSIVE, NBR_106, nullptr, &target,
                                                      to_libnfc_ms(std::min(left, std::chrono::milliseconds(250))));
        if (r > 0) return {};
        if (r < 0) {
            auto e = error("selecting the device", r);
            if (e.code != ErrorCode::closed && e.code != ErrorCode::timeout) return e;
            last = Error{ErrorCode::timeout, "nfc: no device answered in the field (" + e.message + ")"};
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
    } while (std::chrono::steady_clock::now() < deadline);
    return last;
}

Result<Bytes> LibnfcDevice::transceive(ByteView frame, std::chrono::milliseconds timeout) {
    std::array<std::uint8_t, kRxBuffer> rx{};
    const int r = nfc_initiator_transceive_bytes(h_->device, frame.data(), frame.size(), rx.data(), rx.size(),
                                                 to_libnfc_ms(timeout));
    if (r < 0) return error("exchange with the device", r);
    return Bytes(rx.begin(), rx.begin() + r);
}

Status LibnfcDevice::select_iso_dep_tag(std::chrono::milliseconds timeout) {
    if (int r = nfc_initiator_init(h_->device); r < 0) return error("cannot become an initiator", r);
    const nfc_modulation type_a{NMT_ISO14443A, NBR_106};
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    do {
        nfc_target target{};
        const int r = nfc_initiator_select_passive_target(h_->device, type_a, nullptr, 0, &target);
        if (r > 0) {
            // Only an ISO-DEP card speaks APDUs: SAK bit 6 (0x20).
            if ((target.nti.nai.btSak & 0x20) == 0) {
                return make_error(ErrorCode::unsupported_version, "nfc: the tag in the field is not an ISO14443-4 (Type 4) tag");
            }
            return {};
        }
        if (r < 0) {
            auto e = error("looking for a tag", r);
            if (e.code != ErrorCode::closed && e.code != ErrorCode::timeout) return e;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
    } while (std::chrono::steady_clock::now() < deadline);
    return make_error(ErrorCode::timeout, "nfc: no tag in the field (hold the reader to the label)");
}

void LibnfcDevice::release() { (void)nfc_initiator_deselect_target(h_->device); }

Result<bool> LibnfcDevice::wait_for_initiator(std::chrono::milliseconds timeout) {
    nfc_target target{};
    target.nm.nmt = NMT_DEP;
    target.nm.nbr = NBR_UNDEFINED;
    // NFCID3: random for every activation (not an identifier of the device).
    randombytes_buf(target.nti.ndi.abtNFCID3, sizeof target.nti.ndi.abtNFCID3);
    target.nti.ndi.ndm = NDM_UNDEFINED;
    target.nti.ndi.btPP = 0x01;
    std::array<std::uint8_t, kRxBuffer> rx{};
    const int r = nfc_target_init(h_->device, &target, rx.data(), rx.size(), to_libnfc_ms(timeout));
    if (r < 0) return error("waiting for a reader", r);
    return true;
}

Result<Bytes> LibnfcDevice::receive(std::chrono::milliseconds timeout) {
    std::array<std::uint8_t, kRxBuffer> rx{};
    const int r = nfc_target_receive_bytes(h_->device, rx.data(), rx.size(), to_libnfc_ms(timeout));
    if (r < 0) return error("receiving from the reader", r);
    return Bytes(rx.begin(), rx.begin() + r);
}

Status LibnfcDevice::send(ByteView frame) {
    const int r = nfc_target_send_bytes(h_->device, frame.data(), frame.size(), 0);
    if (r < 0) return error("sending to the reader", r);
    return {};
}

void LibnfcDevice::abort() noexcept {
    if (h_ && h_->device) (void)nfc_abort_command(h_->device);
}

Result<std::unique_ptr<NfcInitiatorLink>> connect_initiator(const std::string& connstring,
                                                            std::chrono::milliseconds find_timeout,
                                                            NfcInitiatorLink::Options options) {
    auto device = LibnfcDevice::open(connstring);
    if (!device) return device.error();
    if (auto st = (*device)->select_dep_target(find_timeout); !st) return st.error();
    std::shared_ptr<LibnfcDevice> shared(std::move(*device));
    auto link = std::make_unique<NfcInitiatorLink>(
        [shared](ByteView frame, std::chrono::milliseconds timeout) { return shared->transceive(frame, timeout); },
        options);
    link->on_close = [shared] { shared->release(); };
    return link;
}

Result<std::string> read_label(const std::string& connstring, std::chrono::milliseconds find_timeout) {
    auto device = LibnfcDevice::open(connstring);
    if (!device) return device.error();
    if (auto st = (*device)->select_iso_dep_tag(find_timeout); !st) return st.error();
    auto message = read_type4_ndef([&](ByteView apdu) { return (*device)->transceive(apdu, std::chrono::milliseconds(1000)); });
    (*device)->release();
    if (!message) return message.error();
    // The label holds the setup code: the raw message does not outlive the parse.
    auto label = label_from_message(*message);
    sodium_memzero(message->data(), message->size());
    return label;
}

TargetFrames target_frames(LibnfcDevice& device, std::chrono::milliseconds frame_timeout) {
    TargetFrames f;
    f.receive = [&device, frame_timeout](std::chrono::milliseconds timeout) {
        return device.receive(std::min(timeout, frame_timeout));
    };
    f.send = [&device](ByteView frame) { return device.send(frame); };
    return f;
}

}  // namespace credprov::transport::nfc
