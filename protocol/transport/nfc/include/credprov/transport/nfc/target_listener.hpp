// The device agent's NFC side: its chip waits in NFC-DEP target mode for a
// reader (a technician's phone or reader held to the device), on a thread of
// its own, so the agent's poll loop only sees a descriptor turn readable when
// an initiator has activated the chip. The session then runs on the agent's
// thread over an NfcTargetLink; when it ends, the chip is armed again.
//
// A chip that fails (unplugged reader, serial error) is reopened once a
// second; problem() says why meanwhile.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "credprov/protocol/result.hpp"
#include "credprov/transport/nfc/nfc_link.hpp"

namespace credprov::transport::nfc {

class NfcTargetListener {
public:
    // Opens the chip (libnfc connection string, "" for libnfc's default) and
    // starts waiting for a reader.
    [[nodiscard]] static Result<std::unique_ptr<NfcTargetListener>> open(const std::string& connstring);
    ~NfcTargetListener();
    NfcTargetListener(const NfcTargetListener&) = delete;
    NfcTargetListener& operator=(const NfcTargetListener&) = delete;

    // Readable when a reader activated the chip; take_session() then.
    [[nodiscard]] int fd() const noexcept;
    // The session's link, or null when no reader is there (yet). While the
    // link lives the chip is the session's; destroying it re-arms the chip.
    [[nodiscard]] std::shared_ptr<NfcTargetLink> take_session();
    // The chip's name (libnfc's), for logs.
    [[nodiscard]] std::string name() const;
    // Why the chip is not waiting for a reader right now (empty when it is).
    [[nodiscard]] std::string problem() const;

    struct State;

private:
    explicit NfcTargetListener(std::shared_ptr<State> state);
    std::shared_ptr<State> state_;
};

}  // namespace credprov::transport::nfc
