// One NFC chip through libnfc (any driver libnfc has: pn532_uart, pn53x_usb,
// acr122, ...), as the provisioner's initiator or the device's target in
// NFC-DEP (peer to peer, passive mode, 106 kbps). Addresses:
//
//   nfc:                  the first device libnfc finds (its configuration,
//                         or LIBNFC_DEVICE in the environment)
//   nfc:<connstring>      that device, e.g. nfc:pn532_uart:/dev/ttyUSB0
//
// Errors carry libnfc's own message and never frame contents.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <string_view>

#include "credprov/protocol/result.hpp"
#include "credprov/transport/nfc/nfc_link.hpp"

namespace credprov::transport::nfc {

// The libnfc connection string of an nfc: address ("" for libnfc's default).
[[nodiscard]] Result<std::string> parse_nfc_address(std::string_view address);

class LibnfcDevice {
public:
    // Opens the device (libnfc sends the chip its set-up commands).
    [[nodiscard]] static Result<std::unique_ptr<LibnfcDevice>> open(const std::string& connstring);
    ~LibnfcDevice();
    LibnfcDevice(const LibnfcDevice&) = delete;
    LibnfcDevice& operator=(const LibnfcDevice&) = delete;

    [[nodiscard]] const std::string& name() const noexcept { return name_; }

    // Initiator: looks for a DEP target in the field for up to timeout.
    [[nodiscard]] Status select_dep_target(std::chrono::milliseconds timeout);
    [[nodiscard]] Result<Bytes> transceive(ByteView frame, std::chrono::milliseconds timeout);
    // Ends the initiator's session with the target (RLS_REQ), best effort.
    void release();
    // Initiator: looks for an ISO14443-4 (type A) card or tag in the field
    // for up to timeout; APDUs then go through transceive().
    [[nodiscard]] Status select_iso_dep_tag(std::chrono::milliseconds timeout);

    // Target: waits up to timeout for an initiator to activate us.
    // ErrorCode::timeout when none came.
    [[nodiscard]] Result<bool> wait_for_initiator(std::chrono::milliseconds timeout);
    [[nodiscard]] Result<Bytes> receive(std::chrono::milliseconds timeout);
    [[nodiscard]] Status send(ByteView frame);

    // Interrupts a blocking call from another thread or a signal handler.
    void abort() noexcept;

private:
    LibnfcDevice() = default;
    [[nodiscard]] Error error(std::string_view what, int code) const;
    struct Handles;
    std::unique_ptr<Handles> h_;
    std::string name_;
};

// The provisioner's NFC link: opens the device, selects the DEP target
// (waiting up to find_timeout for a device to be held to the reader) and
// returns the initiator link that owns them.
[[nodiscard]] Result<std::unique_ptr<NfcInitiatorLink>> connect_initiator(const std::string& connstring,
                                                                         std::chrono::milliseconds find_timeout,
                                                                         NfcInitiatorLink::Options options = {});

// A credprov label from an NFC Forum Type 4 tag (a sticker, or a device's
// emulated tag) held to the reader: its bootstrap text (CP1:...).
[[nodiscard]] Result<std::string> read_label(const std::string& connstring, std::chrono::milliseconds find_timeout);

// The device's side: frames of a target that an initiator activated.
[[nodiscard]] TargetFrames target_frames(LibnfcDevice& device, std::chrono::milliseconds frame_timeout);

}  // namespace credprov::transport::nfc
