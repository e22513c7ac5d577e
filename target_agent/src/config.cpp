// TOML configuration of the agent, validated field by field.
#include "credprov/agent/config.hpp"

#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "credprov/common/toml_fields.hpp"

namespace credprov::agent {

using namespace toml_fields;

Result<crypto::SignPublicKey> parse_public_key_hex(std::string_view hex, std::string_view what) {
    Bytes b;
    if (!from_hex(hex, b) || b.size() != 32) {
        return make_error(ErrorCode::malformed, std::string(what) + " must be 64 hex digits (a 32-byte public key)");
    }
    crypto::SignPublicKey k{};
    std::copy(b.begin(), b.end(), k.begin());
    return k;
}

Result<AgentConfig> parse_config(std::string_view text, std::string_view origin) {
    auto parsed = parse_document(text, origin);
    if (!parsed) return parsed.error();
    toml::table root = std::move(*parsed);
    AgentConfig c;
    if (auto s = check_known(root, origin, {"agent", "backoff", "consent", "trust", "tpm", "ble"}, "top level"); !s) return s.error();

    if (const toml::table* a = root["agent"].as_table()) {
        if (auto s = check_known(*a, origin,
                                 {"state_dir", "key_file", "listen", "log_level", "session_timeout_s", "setup_code_digits"},
                                 "agent");
            !s) {
            return s.error();
        }
        std::string dir, key, level;
        if (auto s = read_string(*a, origin, "state_dir", dir); !s) return s.error();
        if (auto s = read_string(*a, origin, "key_file", key); !s) return s.error();
        if (auto s = read_string(*a, origin, "log_level", level); !s) return s.error();
        if (!dir.empty()) c.state_dir = dir;
        if (!key.empty()) c.key_file = key;
        if (!level.empty()) {
            if (level != "trace" && level != "debug" && level != "info" && level != "warn" && level != "error") {
                return bad(origin, *a->get("log_level"), "log_level", "must be trace, debug, info, warn or error");
            }
            c.log_level = level;
        }
        if (auto s = read_uint(*a, origin, "session_timeout_s", c.session_timeout_s, 1, 600); !s) return s.error();
        if (auto s = read_uint(*a, origin, "setup_code_digits", c.setup_code_digits, 8, 16); !s) return s.error();
        if (const toml::node* l = a->get("listen")) {
            const toml::array* arr = l->as_array();
            if (arr == nullptr || arr->empty()) return bad(origin, *l, "listen", "must be a non-empty array of addresses");
            c.listen.clear();
            for (const auto& e : *arr) {
                const auto v = e.value<std::string>();
                if (!v) return bad(origin, e, "listen", "entries must be strings like tcp://127.0.0.1:7420, unix:/path or ble:hci0");
                c.listen.push_back(*v);
            }
        }
    } else if (root.contains("agent")) {
        return bad(origin, *root.get("agent"), "agent", "must be a table");
    }

    if (const toml::table* b = root["backoff"].as_table()) {
        if (auto s = check_known(*b, origin, {"free_attempts", "base_s", "max_s"}, "backoff"); !s) return s.error();
        if (auto s = read_uint(*b, origin, "free_attempts", c.backoff.free_attempts, 0, 100); !s) return s.error();
        if (auto s = read_uint(*b, origin, "base_s", c.backoff.base_s, 1, 3600); !s) return s.error();
        if (auto s = read_uint(*b, origin, "max_s", c.backoff.max_s, 1, 7 * 86400); !s) return s.error();
    }

    if (const toml::table* k = root["consent"].as_table()) {
        if (auto s = check_known(*k, origin, {"required_for", "file", "max_age_s"}, "consent"); !s) return s.error();
        std::string file;
        if (auto s = read_string(*k, origin, "file", file); !s) return s.error();
        if (!file.empty()) c.consent.file = file;
        if (auto s = read_uint(*k, origin, "max_age_s", c.consent.max_age_s, 1, 86400); !s) return s.error();
        if (const toml::node* r = k->get("required_for")) {
            const toml::array* arr = r->as_array();
            if (arr == nullptr) return bad(origin, *r, "required_for", "must be an array");
            for (const auto& e : *arr) {
                const auto v = e.value<std::string>();
                if (v == "deprovision") c.consent.required_for.push_back(OwnerCommandKind::deprovision);
                else if (v == "reconfigure") c.consent.required_for.push_back(OwnerCommandKind::reconfigure);
                else if (v == "diagnose") c.consent.required_for.push_back(OwnerCommandKind::diagnose);
                else if (v == "transfer") c.consent.required_for.push_back(OwnerCommandKind::transfer);
                else return bad(origin, e, "required_for", "entries are deprovision, reconfigure, diagnose or transfer");
            }
        }
    }

    if (const toml::table* t = root["trust"].as_table()) {
        if (auto s = check_known(*t, origin,
                                 {"provisioning_root", "owner_sign_key", "owner_box_key", "owner_name",
                                  "lab_trust_on_first_use", "field_mode_allowed"},
                                 "trust");
            !s) {
            return s.error();
        }
        std::string root_hex, sign_hex, box_hex, name = "pinned owner";
        if (auto s = read_string(*t, origin, "provisioning_root", root_hex); !s) return s.error();
        if (auto s = read_string(*t, origin, "owner_sign_key", sign_hex); !s) return s.error();
        if (auto s = read_string(*t, origin, "owner_box_key", box_hex); !s) return s.error();
        if (auto s = read_string(*t, origin, "owner_name", name); !s) return s.error();
        if (auto s = read_bool(*t, origin, "lab_trust_on_first_use", c.trust.lab_trust_on_first_use); !s) return s.error();
        if (auto s = read_bool(*t, origin, "field_mode_allowed", c.trust.field_mode_allowed); !s) return s.error();
        if (!root_hex.empty()) {
            auto k = parse_public_key_hex(root_hex, std::string(origin) + ": trust.provisioning_root");
            if (!k) return k.error();
            c.trust.provisioning_root = *k;
        }
        if (sign_hex.empty() != box_hex.empty()) {
            return make_error(ErrorCode::malformed,
                              std::string(origin) + ": trust.owner_sign_key and trust.owner_box_key go together");
        }
        if (!sign_hex.empty()) {
            auto s = parse_public_key_hex(sign_hex, std::string(origin) + ": trust.owner_sign_key");
            if (!s) return s.error();
            auto b = parse_public_key_hex(box_hex, std::string(origin) + ": trust.owner_box_key");
            if (!b) return b.error();
            c.trust.pinned_owner = OperatorKeys{*s, *b, name};
        }
    }

    if (const toml::table* b = root["ble"].as_table()) {
        if (auto s = check_known(*b, origin, {"stop_advertising_in_session", "power_on_adapter", "advertise_after_provisioning_s"}, "ble"); !s) return s.error();
        if (auto s = read_bool(*b, origin, "stop_advertising_in_session", c.ble.stop_advertising_in_session); !s) return s.error();
        if (auto s = read_bool(*b, origin, "power_on_adapter", c.ble.power_on_adapter); !s) return s.error();
        if (auto s = read_uint(*b, origin, "advertise_after_provisioning_s", c.ble.advertise_after_provisioning_s, 0, 86400); !s) {
            return s.error();
        }
    } else if (root.contains("ble")) {
        return bad(origin, *root.get("ble"), "ble", "must be a table");
    }

    if (const toml::table* t = root["tpm"].as_table()) {
        if (auto s = check_known(*t, origin, {"tcti", "nv_index"}, "tpm"); !s) return s.error();
        TpmConfig tpm;
        if (auto s = read_string(*t, origin, "tcti", tpm.tcti); !s) return s.error();
        if (const toml::node* n = t->get("nv_index")) {
            const auto v = n->value<std::int64_t>();
            if (!v || *v < 0x01000000 || *v > 0x01FFFFFF) {
                return bad(origin, *n, "nv_index",
                           "must be an NV index handle from 0x01000000 to 0x01FFFFFF (by convention in the owner "
                           "range 0x01800000-0x01BFFFFF)");
            }
            tpm.nv_index = static_cast<std::uint32_t>(*v);
        }
        c.tpm = std::move(tpm);
    } else if (root.contains("tpm")) {
        return bad(origin, *root.get("tpm"), "tpm", "must be a table");
    }
    return c;
}

Result<AgentConfig> load_config(const std::filesystem::path& path) {
    std::ifstream in(path);
    if (!in) return make_error(ErrorCode::io, "cannot read configuration file " + path.string());
    std::ostringstream ss;
    ss << in.rdbuf();
    return parse_config(ss.str(), path.string());
}

}  // namespace credprov::agent
