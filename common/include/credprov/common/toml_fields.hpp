// Validated reads of TOML configuration fields (toml++), shared by the
// agent's and the backend's configuration files: every bad value becomes an
// error naming the file, line and key. Configuration holds no secrets; these
// helpers never echo a value back.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include <toml++/toml.h>

#include "credprov/protocol/result.hpp"

namespace credprov::toml_fields {

inline std::string where(std::string_view origin, const toml::source_region& src) {
    return std::string(origin) + ":" + std::to_string(src.begin.line);
}

inline Error bad(std::string_view origin, const toml::node& node, std::string_view key, std::string_view why) {
    return make_error(ErrorCode::malformed,
                      where(origin, node.source()) + ": " + std::string(key) + ": " + std::string(why));
}

template <class T>
Status read_uint(const toml::table& t, std::string_view origin, std::string_view key, T& out, std::uint64_t min,
                 std::uint64_t max) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return {};
    const auto v = n->value<std::int64_t>();
    if (!v || *v < 0 || static_cast<std::uint64_t>(*v) < min || static_cast<std::uint64_t>(*v) > max) {
        return bad(origin, *n, key, "must be an integer from " + std::to_string(min) + " to " + std::to_string(max));
    }
    out = static_cast<T>(*v);
    return {};
}

inline Status read_string(const toml::table& t, std::string_view origin, std::string_view key, std::string& out) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return {};
    const auto v = n->value<std::string>();
    if (!v || v->empty()) return bad(origin, *n, key, "must be a non-empty string");
    out = *v;
    return {};
}

inline Status read_bool(const toml::table& t, std::string_view origin, std::string_view key, bool& out) {
    const toml::node* n = t.get(key);
    if (n == nullptr) return {};
    const auto v = n->value<bool>();
    if (!v) return bad(origin, *n, key, "must be true or false");
    out = *v;
    return {};
}

inline Status check_known(const toml::table& t, std::string_view origin, std::initializer_list<std::string_view> known,
                          std::string_view section) {
    for (const auto& [k, v] : t) {
        bool ok = false;
        for (auto name : known) ok = ok || k.str() == name;
        if (!ok) {
            return make_error(ErrorCode::malformed, where(origin, v.source()) + ": unknown key '" + std::string(k.str()) +
                                                        "' in [" + std::string(section) + "]");
        }
    }
    return {};
}

// Parses the document; a syntax error names the file and line.
inline Result<toml::table> parse_document(std::string_view text, std::string_view origin) {
    try {
        return toml::parse(text, origin);
    } catch (const toml::parse_error& e) {
        return make_error(ErrorCode::malformed, std::string(origin) + ":" + std::to_string(e.source().begin.line) +
                                                    ": " + std::string(e.description()));
    }
}

}  // namespace credprov::toml_fields
