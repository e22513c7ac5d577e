// Strict reading of JSON request bodies: every field typed and bounded,
// unknown fields refused, the first problem reported by field name (never by
// value: values may be secrets or hostile).
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "credprov/protocol/bytes.hpp"
#include "credprov/protocol/identifiers.hpp"
#include "credprov/protocol/signed_objects.hpp"

namespace credprov::backend {

class Fields {
public:
    explicit Fields(const nlohmann::json& body) : body_(body) {
        if (!body_.is_object()) fail("", "the request body must be a JSON object");
    }

    [[nodiscard]] bool ok() const noexcept { return error_.empty(); }
    [[nodiscard]] const std::string& error() const noexcept { return error_; }

    // Call last: refuses fields the request does not define.
    bool done() {
        if (!ok() || !body_.is_object()) return ok();
        for (auto it = body_.begin(); it != body_.end(); ++it) {
            if (!seen_.count(it.key())) {
                fail("", "unknown field '" + printable(it.key()) + "'");
                break;
            }
        }
        return ok();
    }

    std::optional<std::string> text(const std::string& key, std::size_t min, std::size_t max, bool required = true) {
        const nlohmann::json* v = get(key, required);
        if (!v) return std::nullopt;
        if (!v->is_string()) return fail(key, "must be a string"), std::nullopt;
        const auto& s = v->get_ref<const std::string&>();
        if (s.size() < min || s.size() > max) {
            return fail(key, "must be " + std::to_string(min) + " to " + std::to_string(max) + " characters"), std::nullopt;
        }
        for (const unsigned char ch : s) {
            if (ch < 0x20 || ch == 0x7f) return fail(key, "must not contain control characters"), std::nullopt;
        }
        return s;
    }

    std::optional<std::int64_t> integer(const std::string& key, std::int64_t min, std::int64_t max, bool required = true) {
        const nlohmann::json* v = get(key, required);
        if (!v) return std::nullopt;
        if (!v->is_number_integer()) return fail(key, "must be an integer"), std::nullopt;
        const std::int64_t n = v->is_number_unsigned() && v->get<std::uint64_t>() > static_cast<std::uint64_t>(INT64_MAX)
                                   ? INT64_MAX
                                   : v->get<std::int64_t>();
        if (n < min || n > max) {
            return fail(key, "must be from " + std::to_string(min) + " to " + std::to_string(max)), std::nullopt;
        }
        return n;
    }

    template <std::size_t N>
    std::optional<ByteArray<N>> hex(const std::string& key, bool required = true) {
        const nlohmann::json* v = get(key, required);
        if (!v) return std::nullopt;
        Bytes b;
        if (!v->is_string() || v->get_ref<const std::string&>().size() != 2 * N ||
            !from_hex(v->get_ref<const std::string&>(), b) || b.size() != N) {
            return fail(key, "must be " + std::to_string(2 * N) + " hex digits"), std::nullopt;
        }
        ByteArray<N> out{};
        std::copy(b.begin(), b.end(), out.begin());
        return out;
    }

    std::optional<Bytes> hex_bytes(const std::string& key, std::size_t min, std::size_t max, bool required = true) {
        const nlohmann::json* v = get(key, required);
        if (!v) return std::nullopt;
        Bytes b;
        if (!v->is_string() || v->get_ref<const std::string&>().size() > 2 * max || !from_hex(v->get_ref<const std::string&>(), b) ||
            b.size() < min || b.size() > max) {
            return fail(key, "must be " + std::to_string(min) + " to " + std::to_string(max) + " bytes in hex"), std::nullopt;
        }
        return b;
    }

    // A CBOR signed object in standard base64.
    std::optional<SignedObject> signed_object(const std::string& key, bool required = true) {
        auto raw = base64(key, 2048, required);
        if (!raw) return std::nullopt;
        auto obj = SignedObject::decode(*raw);
        if (!obj) return fail(key, "is not a credprov signed object"), std::nullopt;
        return std::move(*obj);
    }

    std::optional<Bytes> base64(const std::string& key, std::size_t max_bytes, bool required = true);

    std::optional<DeviceId> device_id(const std::string& key, bool required = true) {
        auto s = text(key, 1, 64, required);
        if (!s) return std::nullopt;
        auto id = DeviceId::parse(*s);
        if (!id) return fail(key, "must be a device id (26 base32 characters)"), std::nullopt;
        return *id;
    }

    std::optional<std::vector<Operation>> operations(const std::string& key, bool required = true);

    std::optional<bool> boolean(const std::string& key, bool required = true) {
        const nlohmann::json* v = get(key, required);
        if (!v) return std::nullopt;
        if (!v->is_boolean()) return fail(key, "must be true or false"), std::nullopt;
        return v->get<bool>();
    }

    const nlohmann::json* get(const std::string& key, bool required) {
        seen_.insert(key);
        if (!ok() || !body_.is_object()) return nullptr;
        auto it = body_.find(key);
        if (it == body_.end() || it->is_null()) {
            if (required) fail(key, "is required");
            return nullptr;
        }
        return &*it;
    }

    void fail(const std::string& key, const std::string& why) {
        if (!error_.empty()) return;
        error_ = key.empty() ? why : "field '" + key + "' " + why;
    }

private:
    static std::string printable(const std::string& s) {
        std::string out;
        for (const unsigned char ch : s.substr(0, 40)) out += (ch >= 0x20 && ch < 0x7f) ? static_cast<char>(ch) : '?';
        return out;
    }

    const nlohmann::json& body_;
    std::set<std::string> seen_;
    std::string error_;
};

}  // namespace credprov::backend
