// Back-off policy and configuration parsing of the agent.
#include <doctest/doctest.h>

#include "credprov/agent/attempt_policy.hpp"
#include "credprov/agent/config.hpp"

using namespace credprov;
using namespace credprov::agent;

TEST_CASE("back-off: free attempts, then doubling waits up to the cap, never a lock") {
    BackoffPolicy p{3, 2, 60};
    CHECK(backoff_delay(p, 0) == 0);
    CHECK(backoff_delay(p, 3) == 0);
    CHECK(backoff_delay(p, 4) == 2);
    CHECK(backoff_delay(p, 5) == 4);
    CHECK(backoff_delay(p, 8) == 32);
    CHECK(backoff_delay(p, 9) == 60);
    CHECK(backoff_delay(p, 4'000'000'000U) == 60);  // capped, no overflow

    AttemptState s{5, 1000};  // delay 4 s after the 5th unconfirmed attempt
    CHECK_FALSE(decide_attempt(p, s, 1001).allowed);
    CHECK(decide_attempt(p, s, 1001).retry_after_s == 3);
    CHECK(decide_attempt(p, s, 1004).allowed);
    // A clock that went backwards restarts the wait instead of unlocking.
    auto back = decide_attempt(p, s, 10);
    CHECK_FALSE(back.allowed);
    CHECK(back.retry_after_s == 4);
}

TEST_CASE("agent configuration: defaults, every key, and clear errors naming file and line") {
    auto empty = parse_config("", "agent.toml");
    REQUIRE(empty.ok());
    CHECK(empty->state_dir == "/var/lib/credprov-agent");
    CHECK(empty->effective_key_file() == "/var/lib/credprov-agent/store.key");

    const std::string root(64, 'a');
    auto full = parse_config("[agent]\nstate_dir = \"/tmp/s\"\nlisten = [\"tcp://127.0.0.1:7420\", \"unix:/tmp/a.sock\"]\n"
                             "log_level = \"debug\"\nsession_timeout_s = 10\n"
                             "[backoff]\nfree_attempts = 2\nbase_s = 5\nmax_s = 100\n"
                             "[trust]\nprovisioning_root = \"" + root + "\"\nfield_mode_allowed = true\n",
                             "agent.toml");
    REQUIRE_MESSAGE(full.ok(), full.error().message);
    CHECK(full->listen.size() == 2);
    CHECK(full->backoff.base_s == 5);
    CHECK(full->trust.provisioning_root.has_value());
    CHECK(full->trust.field_mode_allowed);

    auto typo = parse_config("[agent]\nstate_dri = \"/x\"\n", "agent.toml");
    REQUIRE_FALSE(typo.ok());
    CHECK(typo.error().message.find("agent.toml:2") != std::string::npos);
    CHECK(typo.error().message.find("state_dri") != std::string::npos);

    auto range = parse_config("[agent]\nsession_timeout_s = 0\n", "agent.toml");
    REQUIRE_FALSE(range.ok());
    CHECK(range.error().message.find("session_timeout_s") != std::string::npos);

    auto bad_key = parse_config("[trust]\nprovisioning_root = \"abcd\"\n", "agent.toml");
    REQUIRE_FALSE(bad_key.ok());
    CHECK(bad_key.error().message.find("64 hex digits") != std::string::npos);

    auto half_owner = parse_config("[trust]\nowner_sign_key = \"" + root + "\"\n", "agent.toml");
    CHECK_FALSE(half_owner.ok());

    auto syntax = parse_config("[agent\n", "agent.toml");
    REQUIRE_FALSE(syntax.ok());
    CHECK(syntax.error().message.rfind("agent.toml:1", 0) == 0);
}

TEST_CASE("agent configuration: [tpm] enables the TPM counter, with defaults and checked values") {
    auto none = parse_config("[agent]\nlog_level = \"info\"\n", "agent.toml");
    REQUIRE(none.ok());
    CHECK_FALSE(none->tpm.has_value());  // no [tpm]: no hardware counter

    auto defaults = parse_config("[tpm]\n", "agent.toml");
    REQUIRE_MESSAGE(defaults.ok(), (defaults.ok() ? std::string() : defaults.error().message));
    REQUIRE(defaults->tpm.has_value());
    CHECK(defaults->tpm->tcti == "device:/dev/tpmrm0");
    CHECK(defaults->tpm->nv_index == TpmConfig::kDefaultNvIndex);
    CHECK(TpmConfig::kDefaultNvIndex >= 0x01800000);  // the owner range
    CHECK(TpmConfig::kDefaultNvIndex <= 0x01BFFFFF);

    auto set = parse_config("[tpm]\ntcti = \"swtpm:host=127.0.0.1,port=2321\"\nnv_index = 0x01800123\n", "agent.toml");
    REQUIRE_MESSAGE(set.ok(), (set.ok() ? std::string() : set.error().message));
    CHECK(set->tpm->tcti == "swtpm:host=127.0.0.1,port=2321");
    CHECK(set->tpm->nv_index == 0x01800123);

    auto outside = parse_config("[tpm]\nnv_index = 0x81000001\n", "agent.toml");  // a persistent-object handle
    REQUIRE_FALSE(outside.ok());
    CHECK(outside.error().message.find("agent.toml:2") != std::string::npos);
    CHECK(outside.error().message.find("nv_index") != std::string::npos);
    CHECK(outside.error().message.find("0x01000000") != std::string::npos);

    CHECK_FALSE(parse_config("[tpm]\ntcti = \"\"\n", "agent.toml").ok());
    CHECK_FALSE(parse_config("[tpm]\nnv_index = \"0x01800123\"\n", "agent.toml").ok());
    auto typo = parse_config("[tpm]\nnvindex = 1\n", "agent.toml");
    REQUIRE_FALSE(typo.ok());
    CHECK(typo.error().message.find("unknown key 'nvindex' in [tpm]") != std::string::npos);
    CHECK_FALSE(parse_config("tpm = true\n", "agent.toml").ok());
}

#include "credprov/agent/aka_check.hpp"

TEST_CASE("the AKA self-check diagnostic passes on a correct Milenage") {
    CHECK(credprov::agent::aka_self_check().ok());
}
