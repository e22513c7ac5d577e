// Canonical CBOR on libcbor: shortest-form encoders, a strict pull decoder.
// Never logs: decoded input may hold secrets (inside AEAD plaintexts).
#include "credprov/protocol/codec.hpp"

#include <array>
#include <cassert>
#include <string>

#include <cbor.h>

namespace credprov::cbor {

// ---- Writer -----------------------------------------------------------------

void Writer::head(std::size_t (*encode)(std::size_t, unsigned char*, std::size_t), std::size_t value) {
    std::array<unsigned char, 9> buf{};
    const std::size_t n = encode(value, buf.data(), buf.size());
    assert(n > 0);
    out_.insert(out_.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
}

Writer& Writer::uint(std::uint64_t value) {
    std::array<unsigned char, 9> buf{};
    const std::size_t n = cbor_encode_uint(value, buf.data(), buf.size());
    out_.insert(out_.end(), buf.begin(), buf.begin() + static_cast<std::ptrdiff_t>(n));
    return *this;
}

Writer& Writer::bytes(ByteView value) {
    head(&cbor_encode_bytestring_start, value.size());
    append(out_, value);
    return *this;
}

Writer& Writer::text(std::string_view value) {
    head(&cbor_encode_string_start, value.size());
    append(out_, as_bytes(value));
    return *this;
}

Writer& Writer::boolean(bool value) {
    std::array<unsigned char, 1> buf{};
    const std::size_t n = cbor_encode_bool(value, buf.data(), buf.size());
    assert(n == 1);
    (void)n;
    out_.push_back(buf[0]);
    return *this;
}

Writer& Writer::array(std::size_t count) {
    head(&cbor_encode_array_start, count);
    return *this;
}

Writer& Writer::map(std::size_t count) {
    head(&cbor_encode_map_start, count);
    return *this;
}

Writer& Writer::raw(ByteView encoded) {
    append(out_, encoded);
    return *this;
}

Writer& MapBuilder::field(std::uint64_t key) {
    assert(count_ == 0 || key > last_key_);  // canonical order is the encoder's duty
    last_key_ = key;
    ++count_;
    return body_.uint(key);
}

Bytes MapBuilder::finish() {
    Writer w;
    w.map(count_);
    w.raw(body_.data());
    return w.take();
}

void MapBuilder::finish_into(Writer& outer) {
    outer.map(count_);
    outer.raw(body_.data());
}

// ---- Reader -----------------------------------------------------------------

struct Reader::Item {
    Kind kind{Kind::other};
    std::uint64_t value{0};  // integer value, or length / count
    ByteView data{};         // payload of byte and text strings
    std::size_t header{0};   // bytes of the initial byte + argument
    bool indefinite{false};
};

namespace {

struct Capture {
    Kind kind{Kind::other};
    std::uint64_t value{0};
    const unsigned char* data{nullptr};
    std::size_t length{0};
    bool indefinite{false};
};

Capture* cap(void* ctx) { return static_cast<Capture*>(ctx); }

const cbor_callbacks& capture_callbacks() {
    static const cbor_callbacks cb = [] {
        cbor_callbacks c = cbor_empty_callbacks;
        c.uint8 = [](void* x, std::uint8_t v) { *cap(x) = {Kind::uint, v}; };
        c.uint16 = [](void* x, std::uint16_t v) { *cap(x) = {Kind::uint, v}; };
        c.uint32 = [](void* x, std::uint32_t v) { *cap(x) = {Kind::uint, v}; };
        c.uint64 = [](void* x, std::uint64_t v) { *cap(x) = {Kind::uint, v}; };
        c.negint8 = [](void* x, std::uint8_t v) { *cap(x) = {Kind::negint, v}; };
        c.negint16 = [](void* x, std::uint16_t v) { *cap(x) = {Kind::negint, v}; };
        c.negint32 = [](void* x, std::uint32_t v) { *cap(x) = {Kind::negint, v}; };
        c.negint64 = [](void* x, std::uint64_t v) { *cap(x) = {Kind::negint, v}; };
        c.byte_string = [](void* x, cbor_data d, std::size_t n) { *cap(x) = {Kind::bytes, n, d, n}; };
        c.string = [](void* x, cbor_data d, std::size_t n) { *cap(x) = {Kind::text, n, d, n}; };
        c.byte_string_start = [](void* x) { *cap(x) = {Kind::bytes, 0, nullptr, 0, true}; };
        c.string_start = [](void* x) { *cap(x) = {Kind::text, 0, nullptr, 0, true}; };
        c.array_start = [](void* x, std::size_t n) { *cap(x) = {Kind::array, n}; };
        c.indef_array_start = [](void* x) { *cap(x) = {Kind::array, 0, nullptr, 0, true}; };
        c.map_start = [](void* x, std::size_t n) { *cap(x) = {Kind::map, n}; };
        c.indef_map_start = [](void* x) { *cap(x) = {Kind::map, 0, nullptr, 0, true}; };
        c.tag = [](void* x, std::uint64_t v) { *cap(x) = {Kind::tag, v}; };
        c.float2 = [](void* x, float) { *cap(x) = {Kind::floating}; };
        c.float4 = [](void* x, float) { *cap(x) = {Kind::floating}; };
        c.float8 = [](void* x, double) { *cap(x) = {Kind::floating}; };
        c.undefined = [](void* x) { *cap(x) = {Kind::simple}; };
        c.null = [](void* x) { *cap(x) = {Kind::null}; };
        c.boolean = [](void* x, bool v) { *cap(x) = {Kind::boolean, v ? 1U : 0U}; };
        c.indef_break = [](void* x) { *cap(x) = {Kind::other, 0, nullptr, 0, true}; };
        return c;
    }();
    return cb;
}

// Size of the shortest head for an argument value: what canonical CBOR demands.
std::size_t shortest_head(std::uint64_t v) {
    if (v < 24) return 1;
    if (v <= 0xff) return 2;
    if (v <= 0xffff) return 3;
    if (v <= 0xffffffffULL) return 5;
    return 9;
}

Error malformed(std::string what) { return make_error(ErrorCode::malformed, std::move(what)); }

const char* kind_name(Kind k) {
    switch (k) {
        case Kind::uint: return "unsigned integer";
        case Kind::negint: return "negative integer";
        case Kind::bytes: return "byte string";
        case Kind::text: return "text string";
        case Kind::array: return "array";
        case Kind::map: return "map";
        case Kind::tag: return "tag";
        case Kind::floating: return "float";
        case Kind::boolean: return "boolean";
        case Kind::null: return "null";
        case Kind::simple: return "simple value";
        case Kind::other: return "other item";
    }
    return "item";
}

Error wrong_kind(Kind want, Kind got) {
    return malformed(std::string("expected ") + kind_name(want) + ", found " + kind_name(got));
}

}  // namespace

Result<Reader::Item> Reader::next() {
    if (pos_ >= in_.size()) return malformed("input ends before an expected item");
    Capture c;
    const cbor_decoder_result r =
        cbor_stream_decode(in_.data() + pos_, in_.size() - pos_, &capture_callbacks(), &c);
    if (r.status == CBOR_DECODER_NEDATA) return malformed("input truncated inside an item");
    if (r.status != CBOR_DECODER_FINISHED) return malformed("not a CBOR data item");
    if (c.indefinite) return malformed("indefinite lengths are not canonical");
    Item it;
    it.kind = c.kind;
    it.value = c.value;
    const std::size_t payload = (c.kind == Kind::bytes || c.kind == Kind::text) ? c.length : 0;
    it.header = r.read - payload;
    it.data = ByteView(c.data == nullptr ? in_.data() + pos_ : c.data, payload);
    const bool has_argument = c.kind == Kind::uint || c.kind == Kind::negint || c.kind == Kind::bytes ||
                              c.kind == Kind::text || c.kind == Kind::array || c.kind == Kind::map ||
                              c.kind == Kind::tag;
    if (has_argument && it.header != shortest_head(it.value)) {
        return malformed("integer or length not in its shortest form");
    }
    pos_ += r.read;
    return it;
}

Result<Kind> Reader::peek() const {
    Reader copy = *this;
    auto it = copy.next();
    if (!it) return it.error();
    return it->kind;
}

Result<std::uint64_t> Reader::uint() {
    auto it = next();
    if (!it) return it.error();
    if (it->kind != Kind::uint) return wrong_kind(Kind::uint, it->kind);
    return it->value;
}

Result<std::uint64_t> Reader::uint(std::uint64_t min, std::uint64_t max) {
    auto v = uint();
    if (!v) return v;
    if (*v > max) return make_error(ErrorCode::oversized, "integer above its allowed range");
    if (*v < min) return make_error(ErrorCode::malformed, "integer below its allowed range");
    return v;
}

Result<ByteView> Reader::bytes(std::size_t min, std::size_t max) {
    auto it = next();
    if (!it) return it.error();
    if (it->kind != Kind::bytes) return wrong_kind(Kind::bytes, it->kind);
    if (it->data.size() > max) return make_error(ErrorCode::oversized, "byte string longer than allowed");
    if (it->data.size() < min) return malformed("byte string shorter than allowed");
    return it->data;
}

Result<std::string_view> Reader::text(std::size_t min, std::size_t max) {
    auto it = next();
    if (!it) return it.error();
    if (it->kind != Kind::text) return wrong_kind(Kind::text, it->kind);
    if (it->data.size() > max) return make_error(ErrorCode::oversized, "text longer than allowed");
    if (it->data.size() < min) return malformed("text shorter than allowed");
    return std::string_view(reinterpret_cast<const char*>(it->data.data()), it->data.size());
}

Result<bool> Reader::boolean() {
    auto it = next();
    if (!it) return it.error();
    if (it->kind != Kind::boolean) return wrong_kind(Kind::boolean, it->kind);
    return it->value != 0;
}

Result<std::size_t> Reader::array(std::size_t min, std::size_t max) {
    auto it = next();
    if (!it) return it.error();
    if (it->kind != Kind::array) return wrong_kind(Kind::array, it->kind);
    if (it->value > max) return make_error(ErrorCode::oversized, "array has too many elements");
    if (it->value < min) return malformed("array has too few elements");
    return static_cast<std::size_t>(it->value);
}

Result<std::size_t> Reader::map(std::size_t min, std::size_t max) {
    auto it = next();
    if (!it) return it.error();
    if (it->kind != Kind::map) return wrong_kind(Kind::map, it->kind);
    if (it->value > max) return make_error(ErrorCode::oversized, "map has too many entries");
    if (it->value < min) return malformed("map has too few entries");
    return static_cast<std::size_t>(it->value);
}

Status Reader::skip_scalar() {
    auto it = next();
    if (!it) return it.error();
    if (it->kind != Kind::uint && it->kind != Kind::bytes && it->kind != Kind::text && it->kind != Kind::boolean) {
        return malformed("extension field is not a scalar");
    }
    return {};
}

Status Reader::finish() const {
    if (!at_end()) return malformed("trailing bytes after the message");
    return {};
}

Status read_map(Reader& r, std::size_t max_entries,
                const std::function<Result<bool>(std::uint64_t key, Reader& value)>& on_field, std::uint64_t* seen) {
    auto n = r.map(0, max_entries);
    if (!n) return n.error();
    std::uint64_t mask = 0;
    std::uint64_t prev = 0;
    for (std::size_t i = 0; i < *n; ++i) {
        auto key = r.uint();
        if (!key) return make_error(ErrorCode::malformed, "map key is not an unsigned integer");
        if (i > 0 && *key <= prev) return make_error(ErrorCode::malformed, "map keys not in canonical order");
        prev = *key;
        auto known = on_field(*key, r);
        if (!known) return known.error();
        if (*known) {
            if (*key < 64) mask |= bit(*key);
            continue;
        }
        if (*key < kFirstExtensionKey) {
            return make_error(ErrorCode::unknown_critical, "unknown critical field " + std::to_string(*key));
        }
        if (auto s = r.skip_scalar(); !s) return s;
    }
    if (seen != nullptr) *seen = mask;
    return {};
}

Status require_fields(std::uint64_t seen, std::uint64_t required, std::string_view what) {
    const std::uint64_t missing = required & ~seen;
    if (missing == 0) return {};
    unsigned k = 0;
    while ((missing & bit(k)) == 0) ++k;
    return make_error(ErrorCode::malformed,
                      std::string(what) + ": required field " + std::to_string(k) + " missing");
}

}  // namespace credprov::cbor
