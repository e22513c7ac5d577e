// credprov-backend as an admin meets it: --help, configuration errors with
// file and line, init, local admin commands, the root and certificate
// commands, key rotation, HTTPS with a real certificate, and the refusal to
// serve plain HTTP beyond loopback.
#include <doctest/doctest.h>

#include "backend_lab.hpp"

using namespace credprov;
using namespace credprov::testing;

namespace {

std::filesystem::path temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "credprov-cli-XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
    return tmpl;
}

void write(const std::filesystem::path& p, const std::string& text) { std::ofstream(p) << text; }

const std::string kPlain = "[server]\nlisten = \"127.0.0.1\"\nport = 0\nallow_plain_http = true\n";

}  // namespace

TEST_CASE("backend cli: --help on the program and its subcommands") {
    auto top = run_command({CREDPROV_BACKEND, "--help"});
    CHECK(top.exit_code == 0);
    for (const char* word : {"serve", "init", "root", "operator", "admin-token", "provisioner", "audit", "openapi"}) {
        CHECK(top.out.find(word) != std::string::npos);
    }
    auto sub = run_command({CREDPROV_BACKEND, "provisioner", "enrol", "--help"});
    CHECK(sub.exit_code == 0);
    CHECK(sub.out.find("--operations") != std::string::npos);
    CHECK(run_command({CREDPROV_BACKEND}).exit_code == 1);
    CHECK(run_command({CREDPROV_BACKEND, "no-such-command"}).exit_code == 1);
}

TEST_CASE("backend cli: configuration errors name the file, the line and the key") {
    const auto dir = temp_dir();
    const auto cfg = dir / "backend.toml";
    auto err_of = [&](const std::string& text) {
        write(cfg, text);
        const std::string log = (dir / "err.txt").string();
        const int rc = std::system((std::string(CREDPROV_BACKEND) + " -c " + cfg.string() + " migrate 2> " + log).c_str());
        return std::make_pair(WEXITSTATUS(rc), read_file(log));
    };
    auto [rc1, e1] = err_of("[server]\nport = \"eighty\"\n");
    CHECK(rc1 == 2);
    CHECK(e1.find("backend.toml:2") != std::string::npos);
    CHECK(e1.find("port") != std::string::npos);
    auto [rc2, e2] = err_of("[server]\nlisten = \"0.0.0.0\"\nallow_plain_http = true\n");
    CHECK(rc2 == 2);
    CHECK(e2.find("loopback") != std::string::npos);
    auto [rc3, e3] = err_of("[server]\nallow_plain_http = true\n[subscribers]\nplmn = \"1234\"\n");
    CHECK(rc3 == 2);
    CHECK(e3.find("plmn") != std::string::npos);
    auto [rc4, e4] = err_of("[server]\nallow_plain_http = true\nunknown_key = 1\n");
    CHECK(rc4 == 2);
    CHECK(e4.find("unknown_key") != std::string::npos);
    auto [rc5, e5] = err_of("[server]\n");
    CHECK(rc5 == 2);
    CHECK(e5.find("TLS") != std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("backend cli: init, local admin commands, and keys that stay private") {
    const auto dir = temp_dir();
    const auto cfg = dir / "backend.toml";
    write(cfg, kPlain);
    auto init = run_command({CREDPROV_BACKEND, "-c", cfg.string(), "init"});
    REQUIRE(init.exit_code == 0);
    const json j = json::parse(init.out);
    CHECK(j["admin_token"]["token"].get<std::string>().starts_with("cpa_"));
    CHECK(j["operator"]["certificate"].is_null());
    for (const char* f : {"operator.key", "data.key", "backend.db"}) {
        const auto perms = std::filesystem::status(dir / f).permissions();
        CHECK((perms & (std::filesystem::perms::group_all | std::filesystem::perms::others_all)) == std::filesystem::perms::none);
    }
    // A second init keeps the keys and mints no second token.
    auto again = run_command({CREDPROV_BACKEND, "-c", cfg.string(), "init"});
    REQUIRE(again.exit_code == 0);
    CHECK_FALSE(json::parse(again.out).contains("admin_token"));
    CHECK(json::parse(again.out)["operator"]["sign_key"] == j["operator"]["sign_key"]);

    auto tok = run_command({CREDPROV_BACKEND, "-c", cfg.string(), "admin-token", "create", "--name", "ops", "--role", "auditor"});
    REQUIRE(tok.exit_code == 0);
    CHECK(json::parse(tok.out)["role"] == "auditor");
    CHECK(run_command({CREDPROV_BACKEND, "-c", cfg.string(), "admin-token", "create", "--name", "x", "--role", "god"}).exit_code == 5);
    const std::string key = to_hex(crypto::generate_signing_key().public_key);
    auto enrol = run_command({CREDPROV_BACKEND, "-c", cfg.string(), "provisioner", "enrol", "--name", "van 7", "--public-key",
                              key, "--operations", "query,deliver-sealed"});
    REQUIRE(enrol.exit_code == 0);
    CHECK(json::parse(enrol.out)["operations"] == json::array({"query", "deliver-sealed"}));
    auto list = run_command({CREDPROV_BACKEND, "-c", cfg.string(), "admin-token", "list"});
    REQUIRE(list.exit_code == 0);
    CHECK(list.out.find(j["admin_token"]["token"].get<std::string>()) == std::string::npos);
    auto verify = run_command({CREDPROV_BACKEND, "-c", cfg.string(), "audit", "verify"});
    CHECK(verify.exit_code == 0);
    auto exported = run_command({CREDPROV_BACKEND, "-c", cfg.string(), "audit", "export"});
    REQUIRE(exported.exit_code == 0);
    CHECK(exported.out.find("provisioner.enrol") != std::string::npos);
    // The operator's private key never appears in what the tool prints.
    CHECK(init.out.find("secret") == std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("backend cli: a passphrase variable that is named but not set is refused, not a key left unprotected") {
    const auto dir = temp_dir();
    const auto cfg = dir / "backend.toml";
    ::unsetenv("CREDPROV_TEST_UNSET_PASSPHRASE");
    write(cfg, kPlain + "[operator]\npassphrase_env = \"CREDPROV_TEST_UNSET_PASSPHRASE\"\n");
    auto init = run_command({"/bin/sh", "-c", "exec \"$0\" -c \"$1\" init 2>&1", CREDPROV_BACKEND, cfg.string()});
    CHECK(init.exit_code != 0);
    CHECK(init.out.find("CREDPROV_TEST_UNSET_PASSPHRASE") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(dir / "operator.key"));
    std::filesystem::remove_all(dir);
}

TEST_CASE("backend cli: an offline root certifies the operator key, rotation keeps old devices reachable") {
    const auto dir = temp_dir();
    const auto cfg = dir / "backend.toml";
    write(cfg, kPlain);
    REQUIRE(run_command({CREDPROV_BACKEND, "-c", cfg.string(), "init"}).exit_code == 0);
    auto root = run_command({CREDPROV_BACKEND, "root", "create", "--out", (dir / "root.key").string()});
    REQUIRE(root.exit_code == 0);
    const std::string root_pub = root.out.substr(0, 64);
    CHECK(run_command({CREDPROV_BACKEND, "root", "create", "--out", (dir / "root.key").string()}).exit_code == 4);  // never overwrites
    REQUIRE(run_command({CREDPROV_BACKEND, "-c", cfg.string(), "operator", "export-public", "--out", (dir / "op.pub").string()})
                .exit_code == 0);
    REQUIRE(run_command({CREDPROV_BACKEND, "root", "certify", "--root", (dir / "root.key").string(), "--operator-public",
                         (dir / "op.pub").string(), "--out", (dir / "op.cert").string()})
                .exit_code == 0);
    // A certificate checked against another root is refused.
    const std::string other = to_hex(crypto::generate_signing_key().public_key);
    CHECK(run_command({CREDPROV_BACKEND, "-c", cfg.string(), "operator", "import-certificate", (dir / "op.cert").string(),
                       "--root-public", other})
              .exit_code == 4);
    REQUIRE(run_command({CREDPROV_BACKEND, "-c", cfg.string(), "operator", "import-certificate", (dir / "op.cert").string(),
                         "--root-public", root_pub})
                .exit_code == 0);
    auto before = run_command({CREDPROV_BACKEND, "-c", cfg.string(), "init"});
    const json op = json::parse(before.out)["operator"];
    CHECK(op["certificate"].is_string());

    auto rotated = run_command({CREDPROV_BACKEND, "-c", cfg.string(), "operator", "rotate", "--root-key", (dir / "root.key").string()});
    REQUIRE(rotated.exit_code == 0);
    const json now = json::parse(rotated.out);
    CHECK(now["sign_key"] != op["sign_key"]);
    CHECK(now["certificate"].is_string());
    CHECK(std::filesystem::exists(dir / "operator-keys.d" / (op["sign_key"].get<std::string>() + ".key")));
    std::filesystem::remove_all(dir);
}

TEST_CASE("backend cli: a further node without the deployment's keys makes none, and one with other keys refuses to start") {
    const auto dir = temp_dir();
    const auto a = dir / "a", b = dir / "b", other = dir / "other";
    for (const auto& d : {a, b, other}) std::filesystem::create_directories(d);
    // Node B and node A share A's database (an absolute path).
    const std::string shared = kPlain + "[storage]\ndatabase = \"sqlite:" + (a / "backend.db").string() + "\"\n";
    write(a / "backend.toml", shared);
    write(b / "backend.toml", shared);
    write(other / "backend.toml", kPlain);
    auto both = [](const std::filesystem::path& cfg, const std::string& args) {
        return run_command({"/bin/sh", "-c", "exec \"$0\" -c \"$1\" " + args + " 2>&1", CREDPROV_BACKEND, cfg.string()});
    };
    auto first = run_command({CREDPROV_BACKEND, "-c", (a / "backend.toml").string(), "init"});
    REQUIRE(first.exit_code == 0);
    const std::string sign_key = json::parse(first.out)["operator"]["sign_key"].get<std::string>();
    REQUIRE(run_command({CREDPROV_BACKEND, "-c", (other / "backend.toml").string(), "init"}).exit_code == 0);

    // init on B before its keys were copied: refused, and no key made there.
    auto bare = both(b / "backend.toml", "init");
    CHECK(bare.exit_code == 4);
    CHECK(bare.out.find("already serves a deployment (operator key " + sign_key.substr(0, 16)) != std::string::npos);
    CHECK(bare.out.find("copy operator.key, data.key") != std::string::npos);
    CHECK_FALSE(std::filesystem::exists(b / "operator.key"));
    CHECK_FALSE(std::filesystem::exists(b / "data.key"));

    // The right operator key with another deployment's data key: refused by
    // init, serve and local commands alike, never told the key itself.
    std::filesystem::copy_file(a / "operator.key", b / "operator.key");
    std::filesystem::copy_file(other / "data.key", b / "data.key");
    for (const char* args : {"init", "serve", "admin-token list"}) {
        CAPTURE(args);
        auto refused = both(b / "backend.toml", args);
        CHECK(refused.exit_code == 4);
        CHECK(refused.out.find("the data key is not the one this database") != std::string::npos);
        CHECK(refused.out.find("copy data.key") != std::string::npos);
    }
    // Another deployment's operator key with the right data key: refused too.
    std::filesystem::copy_file(a / "data.key", b / "data.key", std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy_file(other / "operator.key", b / "operator.key", std::filesystem::copy_options::overwrite_existing);
    auto wrong_op = both(b / "backend.toml", "init");
    CHECK(wrong_op.exit_code == 4);
    CHECK(wrong_op.out.find("is not this deployment's (" + sign_key.substr(0, 16)) != std::string::npos);
    // With A's keys, B is a node of the deployment.
    std::filesystem::copy_file(a / "operator.key", b / "operator.key", std::filesystem::copy_options::overwrite_existing);
    auto joined = run_command({CREDPROV_BACKEND, "-c", (b / "backend.toml").string(), "init"});
    REQUIRE(joined.exit_code == 0);
    CHECK(json::parse(joined.out)["operator"]["sign_key"] == sign_key);

    // A rotates its operator key: A goes on, and B, still with the old key,
    // is refused until it gets the new key files.
    auto rotated = run_command({CREDPROV_BACKEND, "-c", (a / "backend.toml").string(), "operator", "rotate"});
    REQUIRE(rotated.exit_code == 0);
    CHECK(run_command({CREDPROV_BACKEND, "-c", (a / "backend.toml").string(), "admin-token", "list"}).exit_code == 0);
    auto stale = both(b / "backend.toml", "admin-token list");
    CHECK(stale.exit_code == 4);
    CHECK(stale.out.find("after an 'operator rotate', from the node that rotated") != std::string::npos);
    std::filesystem::copy_file(a / "operator.key", b / "operator.key", std::filesystem::copy_options::overwrite_existing);
    std::filesystem::copy(a / "operator-keys.d", b / "operator-keys.d", std::filesystem::copy_options::recursive);
    CHECK(run_command({CREDPROV_BACKEND, "-c", (b / "backend.toml").string(), "admin-token", "list"}).exit_code == 0);
    auto log = run_command({CREDPROV_BACKEND, "-c", (a / "backend.toml").string(), "audit", "export"});
    CHECK(log.out.find("deployment.keys") != std::string::npos);
    std::filesystem::remove_all(dir);
}

TEST_CASE("backend cli: HTTPS with a real certificate, a missing key file is a clear error") {
    const auto dir = temp_dir();
    const auto cfg = dir / "backend.toml";
    const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=localhost "
                            "-addext subjectAltName=DNS:localhost,IP:127.0.0.1 -keyout " +
                            (dir / "tls.key").string() + " -out " + (dir / "tls.crt").string() + " 2>/dev/null";
    REQUIRE(std::system(cmd.c_str()) == 0);
    write(cfg, "[server]\nlisten = \"127.0.0.1\"\nport = 0\ntls_certificate = \"tls.crt\"\ntls_private_key = \"tls.key\"\n"
               "[log]\nformat = \"json\"\n");
    REQUIRE(run_command({CREDPROV_BACKEND, "-c", cfg.string(), "init"}).exit_code == 0);
    AgentProcess server(CREDPROV_BACKEND, {"-c", cfg.string(), "serve"}, dir / "log");
    int port = 0;
    for (int i = 0; i < 500 && port == 0; ++i) {
        std::smatch m;
        const std::string text = read_file(dir / "log");
        if (std::regex_search(text, m, std::regex(R"re("port":([0-9]+))re"))) port = std::stoi(m[1].str());
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(port > 0);
    httplib::SSLClient tls("127.0.0.1", port);
    tls.set_ca_cert_path((dir / "tls.crt").c_str());
    tls.enable_server_certificate_verification(true);
    auto r = tls.Get("/healthz");
    REQUIRE(r);
    CHECK(r->status == 200);
    // A technician enrols over HTTPS with the CA file given relative to
    // where they stand; later commands from elsewhere still verify with it.
    auto enrolment = run_command({CREDPROV_BACKEND, "-c", cfg.string(), "enrolment-token", "create", "--name", "tls tech",
                                  "--operations", "query"});
    REQUIRE(enrolment.exit_code == 0);
    const std::string token = json::parse(enrolment.out)["token"].get<std::string>();
    const auto home = dir / "technician";
    const std::string url = "https://127.0.0.1:" + std::to_string(port);
    auto enrolled = run_command({"/bin/sh", "-c", "cd \"$0\" && exec \"$1\" --home \"$2\" enroll --backend \"$3\" --ca tls.crt --token \"$4\"",
                                 dir.string(), CREDPROV_CLI, home.string(), url, token});
    REQUIRE_MESSAGE(enrolled.exit_code == 0, enrolled.out);
    // From / : the backend answers (403: this technician may not deprovision),
    // so TLS verified; a CA path lost to the working folder would be exit 3.
    auto later = run_command({"/bin/sh", "-c", "cd / && exec \"$0\" --home \"$1\" --json deprovision --device aaaqeayeaudaocajbifqydiob4 --reason x",
                              CREDPROV_CLI, home.string()});
    CHECK_MESSAGE(later.exit_code == 2, later.out);

    // Plain HTTP to the TLS port gets no API answer.
    httplib::Client plain("127.0.0.1", port);
    plain.set_read_timeout(2);
    auto p = plain.Get("/healthz");
    CHECK((!p || p->status != 200));
    server.signal(SIGTERM);
    CHECK(server.wait() == 0);

    std::filesystem::remove(dir / "data.key");
    auto missing = run_command({CREDPROV_BACKEND, "-c", cfg.string(), "serve"});
    CHECK(missing.exit_code == 4);
    std::filesystem::remove_all(dir);
}
