// Canonical CBOR for every credprov message and signed object.
//
// Encoding goes through libcbor's encoders, which always emit the shortest
// form; decoding goes through libcbor's streaming decoder, one data item at a
// time, with the schema checks on top: only the item types the schema names,
// definite lengths only, shortest-form integers and lengths, map keys unsigned
// and strictly ascending, every length bounded by the caller, no trailing
// bytes. Anything else is a typed error; the decoder never allocates more than
// its input and never recurses without a bound.
//
// Map keys 0..63 are critical: an unknown one is rejected (unknown_critical).
// Keys from 64 up are extensions a decoder may skip if their value is a scalar
// (unsigned integer, byte string, text or boolean).
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/result.hpp"

namespace credprov::cbor {

inline constexpr std::uint64_t kFirstExtensionKey = 64;

class Writer {
public:
    Writer& uint(std::uint64_t value);
    Writer& bytes(ByteView value);
    Writer& text(std::string_view value);
    Writer& boolean(bool value);
    Writer& array(std::size_t count);
    Writer& map(std::size_t count);
    // Appends bytes that are already one canonical encoded item.
    Writer& raw(ByteView encoded);

    [[nodiscard]] const Bytes& data() const noexcept { return out_; }
    [[nodiscard]] Bytes take() noexcept { return std::move(out_); }

private:
    void head(std::size_t (*encode)(std::size_t, unsigned char*, std::size_t), std::size_t value);
    Bytes out_;
};

// Builds a map whose entry count is known only at the end. Keys must be added
// in strictly ascending order (asserted: that is a programming error).
class MapBuilder {
public:
    // Starts an entry; write its value through the returned writer.
    Writer& field(std::uint64_t key);
    [[nodiscard]] Bytes finish();
    // Appends the finished map to an outer writer.
    void finish_into(Writer& outer);

private:
    Writer body_;
    std::size_t count_{0};
    std::uint64_t last_key_{0};
};

enum class Kind : std::uint8_t { uint, negint, bytes, text, array, map, tag, simple, floating, boolean, null, other };

class Reader {
public:
    explicit Reader(ByteView input) noexcept : in_(input) {}

    [[nodiscard]] Result<std::uint64_t> uint();
    [[nodiscard]] Result<std::uint64_t> uint(std::uint64_t min, std::uint64_t max);
    [[nodiscard]] Result<ByteView> bytes(std::size_t min, std::size_t max);
    template <std::size_t N>
    [[nodiscard]] Result<ByteArray<N>> fixed_bytes() {
        auto b = bytes(N, N);
        if (!b) return b.error();
        ByteArray<N> out{};
        std::copy(b->begin(), b->end(), out.begin());
        return out;
    }
    [[nodiscard]] Result<std::string_view> text(std::size_t min, std::size_t max);
    [[nodiscard]] Result<bool> boolean();
    [[nodiscard]] Result<std::size_t> array(std::size_t min, std::size_t max);
    [[nodiscard]] Result<std::size_t> map(std::size_t min, std::size_t max);
    // Skips the next item, which must be a scalar: unsigned integer, byte
    // string, text or boolean (used to skip extension fields).
    [[nodiscard]] Status skip_scalar();
    [[nodiscard]] Result<Kind> peek() const;

    [[nodiscard]] bool at_end() const noexcept { return pos_ == in_.size(); }
    [[nodiscard]] std::size_t position() const noexcept { return pos_; }
    // The whole input must have been consumed.
    [[nodiscard]] Status finish() const;

private:
    struct Item;
    [[nodiscard]] Result<Item> next();
    ByteView in_;
    std::size_t pos_{0};
};

// Reads a map of up to max_entries entries with canonical (strictly ascending,
// unsigned) keys. on_field returns true when it consumed the value of a key it
// knows, false for an unknown key: the decoder then rejects a critical key and
// skips an extension key. `seen` gets bit k set for every known key k < 64.
[[nodiscard]] Status read_map(Reader& r, std::size_t max_entries,
                              const std::function<Result<bool>(std::uint64_t key, Reader& value)>& on_field,
                              std::uint64_t* seen = nullptr);

// Checks that every key in `required` (bit mask) was seen.
[[nodiscard]] Status require_fields(std::uint64_t seen, std::uint64_t required, std::string_view what);

[[nodiscard]] constexpr std::uint64_t bit(std::uint64_t key) noexcept { return std::uint64_t{1} << key; }

}  // namespace credprov::cbor
