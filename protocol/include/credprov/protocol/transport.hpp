// The one interface every link implements (BLE GATT, NFC, TCP/Unix, loopback):
// send a whole message, receive whole messages through a handler. Framing,
// fragmentation and reassembly live below it; discovery lives beside it in a
// provider per transport.
//
// Transports depend on this header, never the other way round. Nothing here
// may log or inspect message contents: messages are opaque (and usually
// encrypted) bytes.
#pragma once

#include <chrono>
#include <functional>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov {

class Transport {
public:
    // Receives, in order, each whole message or one link error: ErrorCode::closed
    // (peer closed), io, timeout, or malformed/oversized when the peer broke the
    // framing. After an error no more messages follow on this transport.
    using ReceiveHandler = std::function<void(Result<Bytes>)>;

    Transport() = default;
    Transport(const Transport&) = delete;
    Transport& operator=(const Transport&) = delete;
    virtual ~Transport();

    // Queues or writes one whole message. Fails with ErrorCode::oversized above
    // the link's message limit, closed/io/timeout when the link is gone.
    [[nodiscard]] virtual Status send(ByteView message) = 0;

    // Replaces the handler; an empty handler stops delivery (received messages
    // are kept for the next handler). May be called from inside the handler:
    // delivery continues with the new handler, or stops if it is empty.
    virtual void set_receive_handler(ReceiveHandler handler) = 0;

    // Drives the link: waits until at least one message or link error is ready
    // or until timeout passes, then hands everything ready to the handler.
    // Returns an error only when the transport cannot be polled any more
    // (closed locally, or its link error has already been delivered).
    [[nodiscard]] virtual Status poll(std::chrono::milliseconds timeout) = 0;

    // Closes the link; the peer sees ErrorCode::closed. Idempotent.
    virtual void close() = 0;
};

// Polls until one message arrives and returns it; a link error is returned as
// is, and nothing within timeout as ErrorCode::timeout. Messages beyond the
// first stay queued for the next receive() or handler. Replaces the receive
// handler and leaves none installed, so do not mix it with set_receive_handler().
[[nodiscard]] Result<Bytes> receive(Transport& transport, std::chrono::milliseconds timeout);

}  // namespace credprov
