// NDEF messages and the Type 4 Tag read procedure (ndef.hpp).
#include "credprov/transport/nfc/ndef.hpp"

#include <sodium.h>

#include <algorithm>

namespace credprov::transport::nfc {

namespace {

constexpr std::uint8_t kMB = 0x80, kME = 0x40, kCF = 0x20, kSR = 0x10, kIL = 0x08, kTnfMask = 0x07;
constexpr std::uint8_t kTnfEmpty = 0x00, kTnfMime = 0x02, kTnfUnchanged = 0x06, kTnfReserved = 0x07;

Error bad(std::string what) { return make_error(ErrorCode::malformed, "ndef: " + std::move(what)); }

// Status word 90 00 at the end of an R-APDU; the data before it.
Result<Bytes> ok_data(const Result<Bytes>& r, std::string_view step) {
    if (!r) return r.error();
    if (r->size() < 2) return bad(std::string(step) + ": short answer from the tag");
    const std::uint8_t sw1 = (*r)[r->size() - 2], sw2 = (*r)[r->size() - 1];
    if (sw1 != 0x90 || sw2 != 0x00) {
        return make_error(ErrorCode::unsupported_version,
                          "ndef: " + std::string(step) + ": the tag refused (not an NFC Forum Type 4 tag?)");
    }
    return Bytes(r->begin(), r->end() - 2);
}

Bytes select_file(std::uint16_t file) {
    return Bytes{0x00, 0xA4, 0x00, 0x0C, 0x02, static_cast<std::uint8_t>(file >> 8), static_cast<std::uint8_t>(file)};
}

Bytes read_binary(std::size_t offset, std::size_t length) {
    return Bytes{0x00, 0xB0, static_cast<std::uint8_t>(offset >> 8), static_cast<std::uint8_t>(offset),
                 static_cast<std::uint8_t>(length)};
}

}  // namespace

Result<std::vector<NdefRecord>> parse_ndef_message(ByteView m) {
    if (m.empty()) return bad("empty message");
    if (m.size() > kMaxNdefMessage) return make_error(ErrorCode::oversized, "ndef: message too large");
    std::vector<NdefRecord> records;
    std::size_t at = 0;
    bool ended = false;
    while (at < m.size()) {
        if (ended) return bad("bytes after the last record");
        if (records.size() == kMaxNdefRecords) return make_error(ErrorCode::oversized, "ndef: too many records");
        const std::uint8_t h = m[at++];
        if (records.empty() != ((h & kMB) != 0)) return bad("message-begin flag misplaced");
        if ((h & kCF) != 0) return bad("chunked records are not supported");
        const std::uint8_t tnf = h & kTnfMask;
        if (tnf == kTnfUnchanged || tnf == kTnfReserved) return bad("record type name format not allowed");
        auto need = [&](std::size_t n) { return m.size() - at >= n; };
        if (!need(1)) return bad("truncated header");
        const std::size_t type_len = m[at++];
        std::size_t payload_len = 0;
        if ((h & kSR) != 0) {
            if (!need(1)) return bad("truncated header");
            payload_len = m[at++];
        } else {
            if (!need(4)) return bad("truncated header");
            payload_len = (std::size_t{m[at]} << 24) | (std::size_t{m[at + 1]} << 16) | (std::size_t{m[at + 2]} << 8) | m[at + 3];
            at += 4;
        }
        std::size_t id_len = 0;
        if ((h & kIL) != 0) {
            if (!need(1)) return bad("truncated header");
            id_len = m[at++];
        }
        if (tnf == kTnfEmpty && (type_len != 0 || payload_len != 0 || id_len != 0)) return bad("empty record with content");
        if (payload_len > m.size() || !need(type_len) || !need(type_len + id_len) || !need(type_len + id_len + payload_len)) {
            return bad("record runs past the message");
        }
        NdefRecord r;
        r.tnf = tnf;
        r.type.assign(m.begin() + static_cast<std::ptrdiff_t>(at), m.begin() + static_cast<std::ptrdiff_t>(at + type_len));
        at += type_len;
        r.id.assign(m.begin() + static_cast<std::ptrdiff_t>(at), m.begin() + static_cast<std::ptrdiff_t>(at + id_len));
        at += id_len;
        r.payload.assign(m.begin() + static_cast<std::ptrdiff_t>(at), m.begin() + static_cast<std::ptrdiff_t>(at + payload_len));
        at += payload_len;
        records.push_back(std::move(r));
        ended = (h & kME) != 0;
    }
    if (!ended) return bad("no message-end flag");
    return records;
}

Bytes encode_ndef_message(const std::vector<NdefRecord>& records) {
    Bytes out;
    for (std::size_t i = 0; i < records.size(); ++i) {
        const auto& r = records[i];
        std::uint8_t h = r.tnf & kTnfMask;
        if (i == 0) h |= kMB;
        if (i + 1 == records.size()) h |= kME;
        const bool sr = r.payload.size() < 256;
        if (sr) h |= kSR;
        if (!r.id.empty()) h |= kIL;
        out.push_back(h);
        out.push_back(static_cast<std::uint8_t>(r.type.size()));
        if (sr) {
            out.push_back(static_cast<std::uint8_t>(r.payload.size()));
        } else {
            for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<std::uint8_t>(r.payload.size() >> s));
        }
        if (!r.id.empty()) out.push_back(static_cast<std::uint8_t>(r.id.size()));
        out.insert(out.end(), r.type.begin(), r.type.end());
        out.insert(out.end(), r.id.begin(), r.id.end());
        out.insert(out.end(), r.payload.begin(), r.payload.end());
    }
    return out;
}

Bytes encode_label_message(std::string_view bootstrap_text) {
    NdefRecord r;
    r.tnf = kTnfMime;
    r.type.assign(kLabelMimeType.begin(), kLabelMimeType.end());
    r.payload.assign(bootstrap_text.begin(), bootstrap_text.end());
    return encode_ndef_message({r});
}

Result<std::string> label_from_message(ByteView message) {
    auto records = parse_ndef_message(message);
    if (!records) return records.error();
    for (const auto& r : *records) {
        if (r.tnf == kTnfMime && std::string_view(reinterpret_cast<const char*>(r.type.data()), r.type.size()) == kLabelMimeType) {
            return std::string(r.payload.begin(), r.payload.end());
        }
    }
    return make_error(ErrorCode::malformed, "ndef: the tag holds no credprov label record");
}

Result<Bytes> read_type4_ndef(const Apdu& exchange) {
    // NDEF Tag Application, then the capability container (file E103).
    const Bytes select_app{0x00, 0xA4, 0x04, 0x00, 0x07, 0xD2, 0x76, 0x00, 0x00, 0x85, 0x01, 0x01, 0x00};
    if (auto r = ok_data(exchange(select_app), "selecting the NDEF application"); !r) return r.error();
    if (auto r = ok_data(exchange(select_file(0xE103)), "selecting the capability container"); !r) return r.error();
    auto cc = ok_data(exchange(read_binary(0, 15)), "reading the capability container");
    if (!cc) return cc.error();
    // CCLEN(2) version(1) MLe(2) MLc(2) then the NDEF File Control TLV: 04 06 id(2) size(2) read write.
    if (cc->size() < 15 || (*cc)[7] != 0x04 || (*cc)[8] < 6) return bad("capability container malformed");
    if (((*cc)[2] >> 4) != 2 && ((*cc)[2] >> 4) != 3) return make_error(ErrorCode::unsupported_version, "ndef: Type 4 mapping version not supported");
    const std::size_t mle = std::min<std::size_t>((std::size_t{(*cc)[3]} << 8) | (*cc)[4], 0xFF);
    if (mle < 0x0F) return bad("the tag's MLe is below the minimum");
    const std::uint16_t file = static_cast<std::uint16_t>((std::uint16_t{(*cc)[9]} << 8) | (*cc)[10]);
    const std::size_t max_size = (std::size_t{(*cc)[11]} << 8) | (*cc)[12];
    if ((*cc)[13] != 0x00) return make_error(ErrorCode::not_authorised, "ndef: the tag's NDEF file is not readable");
    if (auto r = ok_data(exchange(select_file(file)), "selecting the NDEF file"); !r) return r.error();
    auto nlen_raw = ok_data(exchange(read_binary(0, 2)), "reading the NDEF length");
    if (!nlen_raw) return nlen_raw.error();
    if (nlen_raw->size() != 2) return bad("NDEF length malformed");
    const std::size_t nlen = (std::size_t{(*nlen_raw)[0]} << 8) | (*nlen_raw)[1];
    if (nlen == 0) return bad("the tag is empty");
    if (nlen > kMaxNdefMessage || nlen + 2 > max_size) return make_error(ErrorCode::oversized, "ndef: the tag's message is too large");
    Bytes message;
    message.reserve(nlen);  // one buffer: no unwiped copies of the label left by growth
    while (message.size() < nlen) {
        const std::size_t chunk = std::min(mle, nlen - message.size());
        auto part = ok_data(exchange(read_binary(2 + message.size(), chunk)), "reading the NDEF message");
        if (!part || part->empty() || part->size() > chunk) {
            sodium_memzero(message.data(), message.size());
            if (!part) return part.error();
            return bad("the tag answered a read with the wrong length");
        }
        message.insert(message.end(), part->begin(), part->end());
        sodium_memzero(part->data(), part->size());
    }
    return message;
}

}  // namespace credprov::transport::nfc
