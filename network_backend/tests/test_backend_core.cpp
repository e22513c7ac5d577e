// The core connector's pure parts: the [core] configuration (errors name
// file, line and key) and the osmo-hlr CTRL codec on frames captured from
// osmo-hlr 1.5.0 (the same bytes seed the fuzz corpus).
#include <doctest/doctest.h>

#include <string>

#include "credprov/backend/config.hpp"
#include "credprov/backend/core_connector.hpp"
#include "credprov/backend/osmo_ctrl_codec.hpp"

using namespace credprov;
using namespace credprov::backend;

namespace {

constexpr const char* kBase = "[server]\nallow_plain_http = true\n";

std::span<const std::uint8_t> bytes(std::string_view s) {
    return {reinterpret_cast<const std::uint8_t*>(s.data()), s.size()};
}

}  // namespace

TEST_CASE("config: [core] section for osmo-hlr, defaults and errors with file, line and key") {
    auto none = parse_backend_config(kBase, "b.toml", "/");
    REQUIRE(none.ok());
    CHECK(none->core_kind.empty());
    auto c = make_core_connector(*none);
    REQUIRE(c.ok());
    CHECK(*c == nullptr);

    auto ok = parse_backend_config(std::string(kBase) + "[core]\nkind = \"osmo-hlr\"\nctrl = \"127.0.0.2:4259\"\n", "b.toml", "/");
    REQUIRE_MESSAGE(ok.ok(), ok.error().message);
    CHECK(ok->core_vty == "127.0.0.1:4258");
    CHECK(ok->core_timeout_ms == 5000);
    auto conn = make_core_connector(*ok);
    REQUIRE(conn.ok());
    REQUIRE(*conn != nullptr);
    CHECK((*conn)->kind() == "osmo-hlr");
    CHECK((*conn)->endpoint().find("127.0.0.2:4259") != std::string::npos);

    struct Bad {
        const char* text;
        const char* expect;
    };
    for (const Bad& b : {Bad{"[core]\nkind = \"open5gs\"\n", "b.toml:4: kind: must be \"osmo-hlr\""},
                         Bad{"[core]\nctrl = \"127.0.0.1:4259\"\n", "b.toml:3: kind: must be"},
                         Bad{"[core]\nkind = \"osmo-hlr\"\nctrl = \"127.0.0.1\"\n", "b.toml:5: ctrl: must be HOST:PORT"},
                         Bad{"[core]\nkind = \"osmo-hlr\"\nvty = \"host:99999\"\n", "b.toml:5: vty: must be HOST:PORT"},
                         Bad{"[core]\nkind = \"osmo-hlr\"\ntimeout_ms = 5\n", "b.toml:5: timeout_ms: must be an integer from 100"},
                         Bad{"[core]\nkind = \"osmo-hlr\"\nport = 4259\n", "port"},
                         Bad{"[core]\nkind = \"osmo-hlr\"\ntimeout_ms = 10000\nlease_s = 60\n", "lease_s: must be at least ten"}}) {
        auto r = parse_backend_config(std::string(kBase) + b.text, "b.toml", "/");
        REQUIRE_FALSE(r.ok());
        CHECK_MESSAGE(r.error().message.find(b.expect) != std::string::npos, r.error().message);
    }
}

TEST_CASE("host:port parsing for the core's addresses") {
    std::string host;
    std::uint16_t port = 0;
    CHECK(parse_host_port("127.0.0.1:4259", host, port));
    CHECK(host == "127.0.0.1");
    CHECK(port == 4259);
    CHECK(parse_host_port("[::1]:4258", host, port));
    CHECK(host == "::1");
    CHECK(parse_host_port("hlr.example:1", host, port));
    for (const char* bad : {"", ":4259", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", "::1:4259", "[::1]4259", "h:12x"}) {
        CHECK_FALSE_MESSAGE(parse_host_port(bad, host, port), bad);
    }
}

TEST_CASE("osmo-hlr CTRL codec: frames as osmo-hlr 1.5.0 sends them") {
    const auto get = osmo_ctrl::encode_get(4, "subscriber.by-imsi-001010000000001.aud3g");
    const std::string expect_get = std::string("\x00\x2f\xee\x00", 4) + "GET 4 subscriber.by-imsi-001010000000001.aud3g";
    CHECK(std::string(reinterpret_cast<const char*>(get.data()), get.size()) == expect_get);
    const std::string value = "001010000000001";
    const auto set = osmo_ctrl::encode_set(1, "subscriber.create", std::span<const char>(value.data(), value.size()));
    auto h = osmo_ctrl::decode_header(set.view().first(3));
    REQUIRE(h.ok());
    CHECK(h->payload_bytes == set.size() - 3);
    CHECK(h->proto == 0xee);

    const std::string set_reply = std::string("\x00", 1) + "SET_REPLY 1 subscriber.create 1";
    auto r = osmo_ctrl::decode_payload(bytes(set_reply));
    REQUIRE(r.ok());
    CHECK(r->verb == osmo_ctrl::Verb::set_reply);
    CHECK(r->id == 1);
    CHECK(r->variable == "subscriber.create");
    CHECK(r->value == "1");

    const std::string info = std::string("\x00", 1) +
                             "GET_REPLY 7 subscriber.by-imsi-001010000000001.info-all \nid\t1\nimsi\t001010000000001\nmsisdn\t12345";
    r = osmo_ctrl::decode_payload(bytes(info));
    REQUIRE(r.ok());
    CHECK(r->verb == osmo_ctrl::Verb::get_reply);
    CHECK(r->value.starts_with("\nid\t1\nimsi\t001010000000001"));

    const std::string error = std::string("\x00", 1) + "ERROR 2 Subscriber already exists.";
    r = osmo_ctrl::decode_payload(bytes(error));
    REQUIRE(r.ok());
    CHECK(r->verb == osmo_ctrl::Verb::error);
    CHECK(r->value == "Subscriber already exists.");
    CHECK(osmo_ctrl::printable_reason("bad\x01\nreason") == "bad??reason");

    for (const std::string& bad : {std::string(), std::string("\x01GET_REPLY 1 a b"), std::string("\x00", 1) + "GET 1 a",
                                  std::string("\x00", 1) + "SET_REPLY x a b", std::string("\x00", 1) + "SET_REPLY 99999999999 a b",
                                  std::string("\x00", 1) + "SET_REPLY 1", std::string("\x00", 1) + "SET_REPLY 1 a\tb c"}) {
        CHECK_FALSE(osmo_ctrl::decode_payload(bytes(bad)).ok());
    }
    CHECK_FALSE(osmo_ctrl::decode_header(bytes("\x00\x01")).ok());
}
