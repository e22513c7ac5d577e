// credprov-backend: the operator's REST service and its admin command line.
//
//   credprov-backend [-c FILE] serve            run the HTTPS API
//   credprov-backend [-c FILE] init             operator key, data key, database, first admin token
//   credprov-backend root create|certify        the provisioning root (may stay offline)
//   credprov-backend [-c FILE] operator ...     export-public, import-certificate, rotate
//   credprov-backend [-c FILE] admin-token|enrolment-token|provisioner|manufacturer|inventory|subscriber|device|audit ...
//   credprov-backend [-c FILE] core status|reconcile [--repair] [--json]   the core-network connector (osmo-hlr)
//
// Exit codes: 0 success, 1 usage, 2 configuration, 3 storage, 4 keys,
// 5 refused by the service (the problem is printed), 6 audit chain broken,
// 7 drift between the backend and the core, 8 the core cannot be reached.
// Never prints or logs K, OPc, OP, private keys or passphrases; the one
// secret it prints is a new admin token, once, on request.
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <CLI/CLI.hpp>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>

#include "credprov/backend/audit.hpp"
#include "credprov/backend/config.hpp"
#include "credprov/backend/core_connector.hpp"
#include "credprov/backend/database.hpp"
#include "credprov/backend/encoding.hpp"
#include "credprov/backend/http_api.hpp"
#include "credprov/backend/keys.hpp"
#include "credprov/backend/service.hpp"
#include "credprov/version.hpp"

namespace {

using namespace credprov;
using namespace credprov::backend;

enum Exit : int {
    kOk = 0, kUsage = 1, kConfig = 2, kStorage = 3, kKeys = 4, kRefused = 5, kAuditBroken = 6, kCoreDrift = 7, kCoreDown = 8
};

struct Failure {
    int code;
    std::string message;
};

void harden_process() {
    rlimit none{0, 0};
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

// The passphrase of the operator's key files from the variable that
// [operator] passphrase_env names. Named but unset or empty is an error:
// a key written then would be left without its protection, unnoticed.
std::string passphrase_from(const std::string& env) {
    if (env.empty()) return {};
    const char* v = std::getenv(env.c_str());
    if (v == nullptr || *v == '\0')
        throw Failure{kKeys, "[operator] passphrase_env names " + env + ", which is not set: set it to the key's passphrase"};
    return std::string(v);
}

// The offline root key's passphrase for init --root-key and operator rotate
// --root-key: CREDPROV_ROOT_PASSPHRASE, or none for an unencrypted root file.
std::string root_passphrase() {
    const char* v = std::getenv("CREDPROV_ROOT_PASSPHRASE");
    return v ? std::string(v) : std::string();
}

BackendConfig load_config_or_throw(const std::string& path) {
    auto c = load_backend_config(path);
    if (!c) throw Failure{kConfig, c.error().message};
    return *c;
}

std::optional<SignedObject> read_certificate(const BackendConfig& cfg) {
    const auto path = cfg.resolve(cfg.operator_certificate);
    if (path.empty() || !std::filesystem::exists(path)) return std::nullopt;
    auto text = read_text_file(path);
    if (!text) throw Failure{kKeys, text.error().message};
    auto decoded = base64_decode(*text, 4096);
    if (!decoded) throw Failure{kKeys, path.string() + " is not a base64 operator certificate"};
    const Bytes& raw = *decoded;
    auto obj = SignedObject::decode(raw);
    if (!obj) throw Failure{kKeys, path.string() + " is not a credprov operator certificate"};
    return *obj;
}

OperatorKeyring load_keyring(const BackendConfig& cfg) {
    const std::string pass = passphrase_from(cfg.passphrase_env);
    auto seeds = read_key_file(cfg.resolve(cfg.operator_key), pass);
    if (!seeds) throw Failure{kKeys, seeds.error().message};
    OperatorKeyring ring{OperatorIdentity::from_seeds(*seeds, cfg.operator_name), {}};
    ring.current.certificate = read_certificate(cfg);
    if (ring.current.certificate) {
        auto body = OperatorKeys::decode(ring.current.certificate->body);
        if (!body || body->sign_key != ring.current.sign.public_key || body->box_key != ring.current.box.public_key) {
            throw Failure{kKeys, "the operator certificate does not certify the configured operator key"};
        }
        ring.current.name = body->name;
    }
    const auto dir = cfg.resolve(cfg.keyring_dir);
    if (!dir.empty() && std::filesystem::is_directory(dir)) {
        for (const auto& entry : std::filesystem::directory_iterator(dir)) {
            if (entry.path().extension() != ".key") continue;
            auto old = read_key_file(entry.path(), pass);
            if (!old) throw Failure{kKeys, old.error().message};
            ring.retired.push_back(OperatorIdentity::from_seeds(*old, cfg.operator_name));
        }
    }
    return ring;
}

std::unique_ptr<Database> open_database(const BackendConfig& cfg, bool migrate) {
    auto db = Database::open(cfg.database_url(), cfg.pool_size);
    if (!db) throw Failure{kStorage, db.error().message};
    if (migrate) {
        if (auto st = (*db)->migrate(); !st) throw Failure{kStorage, st.error().message};
    } else {
        auto v = (*db)->schema_version();
        if (!v) throw Failure{kStorage, "the database has no credprov schema; run 'credprov-backend init' or 'migrate' first"};
    }
    return std::move(*db);
}

// This node's keys against the ones the database records (the first node
// records them): a node with another data or operator key ends here.
void claim_keys(Service& service) {
    if (auto st = service.claim_deployment_keys(); !st) {
        throw Failure{st.error().code == ErrorCode::not_owner ? kKeys : kStorage, st.error().message};
    }
}

// Everything a local admin command needs, opened from the configuration.
// The OP of [subscribers] op_file into the service, checked at start so a
// bad OP file fails loudly rather than at the first registration.
void load_op(Service& service, const BackendConfig& cfg) {
    if (cfg.op_file.empty()) return;
    auto op = load_op_file(cfg.resolve(cfg.op_file));
    if (!op) throw Failure{kKeys, op.error().message};
    service.use_op(std::move(*op));
}

struct Local {
    BackendConfig cfg;
    std::unique_ptr<Database> db;
    Metrics metrics;
    std::unique_ptr<Service> service;
    Caller caller;

    explicit Local(const std::string& config_path, bool migrate = false) : cfg(load_config_or_throw(config_path)) {
        db = open_database(cfg, migrate);
        auto data = DataKey::load(cfg.resolve(cfg.data_key));
        if (!data) throw Failure{kKeys, data.error().message};
        service = std::make_unique<Service>(cfg, *db, load_keyring(cfg), std::move(*data), metrics);
        load_op(*service, cfg);
        claim_keys(*service);
        caller.kind = Caller::Kind::local;
        const char* user = std::getenv("USER");
        caller.id = user ? user : "root";
        caller.role = Role::admin;
    }
};

// The configured core connector, or nullptr without [core]. Needs schema 4
// (the outbox): an older database must be migrated first.
std::unique_ptr<CoreConnector> open_core(const BackendConfig& cfg, Database& db) {
    auto core = make_core_connector(cfg);
    if (!core) throw Failure{kConfig, core.error().message};
    if (!*core) return nullptr;
    auto v = db.schema_version();
    if (!v || *v < 4) {
        throw Failure{kStorage, "[core] needs the core outbox (schema version 4): run 'credprov-backend migrate' first"};
    }
    Metrics::describe("credprov_core_deliveries_total", "Core outbox rows handled, by outcome (delivered, superseded, failed).");
    return std::move(*core);
}

// This process's name on the outbox leases: host, pid and a random part.
std::string node_name() {
    char host[256] = {};
    (void)gethostname(host, sizeof(host) - 1);
    std::uint8_t r[4];
    randombytes_buf(r, sizeof(r));
    return std::string(host) + ":" + std::to_string(getpid()) + ":" + to_hex(ByteView(r, sizeof(r)));
}

int print_reply(const Reply& r) {
    if (r.ok()) {
        std::cout << r.body.dump(2) << "\n";
        return kOk;
    }
    std::cerr << "credprov-backend: " << r.body.value("title", "refused") << ": " << r.body.value("detail", "") << "\n";
    return kRefused;
}

std::shared_ptr<spdlog::logger> make_logger(const BackendConfig& cfg) {
    auto log = spdlog::stderr_logger_mt("credprov-backend");
    if (cfg.log_format == "json") {
        log->set_pattern(R"({"ts":"%Y-%m-%dT%H:%M:%S.%e%z","level":"%l","event":%v})");
    } else {
        log->set_pattern("%Y-%m-%d %H:%M:%S.%e %l %v");
    }
    log->set_level(spdlog::level::from_str(cfg.log_level));
    log->flush_on(spdlog::level::info);
    return log;
}

int serve(const std::string& config_path, const std::string& listen_override, int port_override) {
    BackendConfig cfg = load_config_or_throw(config_path);
    if (!listen_override.empty()) cfg.listen = listen_override;
    if (port_override >= 0) cfg.port = static_cast<std::uint16_t>(port_override);
    if (auto v = validate(cfg); !v) throw Failure{kConfig, v.error().message};
    auto log = make_logger(cfg);
    auto db = open_database(cfg, false);
    auto data = DataKey::load(cfg.resolve(cfg.data_key));
    if (!data) throw Failure{kKeys, data.error().message};
    Metrics metrics;
    Service service(cfg, *db, load_keyring(cfg), std::move(*data), metrics);
    load_op(service, cfg);
    claim_keys(service);
    // Before any thread starts: a bad [core] or an old schema ends here.
    auto core = open_core(cfg, *db);
    ApiServer server(service, metrics, log);
    if (auto st = server.bind(); !st) throw Failure{kConfig, st.error().message};

    // Signals are taken by one thread with sigwait, which then stops the server.
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, nullptr);
    std::signal(SIGPIPE, SIG_IGN);
    std::atomic<bool> stopping{false};
    std::thread signals([&] {
        int sig = 0;
        sigwait(&set, &sig);
        stopping = true;
        log->info(json{{"msg", "stopping"}, {"signal", sig}}.dump());
        server.stop();
    });
    std::thread sweeper([&] {
        while (!stopping) {
            for (std::uint64_t i = 0; i < cfg.sweep_interval_s * 10 && !stopping; ++i) {
                std::this_thread::sleep_for(std::chrono::milliseconds(100));
            }
            if (stopping) break;
            auto n = service.sweep();
            if (!n) {
                log->error(json{{"msg", "sweep failed"}, {"cause", n.error().message}}.dump());
            } else if (*n > 0) {
                log->info(json{{"msg", "expired pending subscribers"}, {"count", *n}}.dump());
            }
        }
    });
    // The core outbox worker: delivers queued changes, backs off per row,
    // and (core.reconcile_interval_s) repairs drift now and then.
    std::thread core_worker;
    if (core) {
        core_worker = std::thread([&] {
            const std::string node = node_name();
            Caller system;
            system.kind = Caller::Kind::local;
            system.id = "core-reconciler";
            auto last_reconcile = std::chrono::steady_clock::now();
            std::string last_error;
            log->info(json{{"msg", "core connector"}, {"kind", std::string(core->kind())}, {"endpoint", core->endpoint()},
                           {"node", node}}.dump());
            while (!stopping) {
                auto d = service.deliver_core_outbox(*core, node);
                if (!d) {
                    log->error(json{{"msg", "core outbox failed"}, {"cause", d.error().message}}.dump());
                } else {
                    if (d->delivered + d->superseded > 0) {
                        log->info(json{{"msg", "core outbox delivered"}, {"delivered", d->delivered},
                                       {"superseded", d->superseded}}.dump());
                    }
                    // One line per new kind of failure, not one per retry.
                    if (d->failed > 0 && d->last_error != last_error) {
                        log->warn(json{{"msg", "core delivery failed; will retry"}, {"cause", d->last_error}}.dump());
                    }
                    if (d->failed > 0) last_error = d->last_error;
                    else if (d->delivered > 0) last_error.clear();
                }
                const bool busy = d && d->delivered + d->superseded > 0;
                if (cfg.core_reconcile_interval_s > 0 &&
                    std::chrono::steady_clock::now() - last_reconcile > std::chrono::seconds(cfg.core_reconcile_interval_s)) {
                    last_reconcile = std::chrono::steady_clock::now();
                    auto r = service.core_reconcile(system, *core, true, node);
                    if (!r) log->warn(json{{"msg", "core reconciliation failed"}, {"cause", r.error().message}}.dump());
                    else if (r->contains("repair")) {
                        log->warn(json{{"msg", "core drift repaired"}, {"queued", (*r)["repair"]["queued"]},
                                       {"drift_left", (*r)["drift"]}}.dump());
                    }
                }
                for (int i = 0; i < (busy ? 0 : 4) && !stopping; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        });
    }
    log->info(json{{"msg", "listening"},
                   {"address", cfg.listen},
                   {"port", server.port()},
                   {"tls", !cfg.tls_certificate.empty()},
                   {"storage", std::string(db->engine())}}
                  .dump());
    // The ready line on stdout lets scripts and tests wait for the port.
    std::cout << "credprov-backend listening on " << (cfg.tls_certificate.empty() ? "http" : "https") << "://" << cfg.listen
              << ":" << server.port() << std::endl;
    const bool ok = server.run();
    stopping = true;
    if (signals.joinable()) {
        pthread_kill(signals.native_handle(), SIGTERM);
        signals.join();
    }
    sweeper.join();
    if (core_worker.joinable()) core_worker.join();
    return ok ? kOk : kStorage;
}

int init(const std::string& config_path, const std::string& root_key, const std::string& admin_name) {
    BackendConfig cfg = load_config_or_throw(config_path);
    const auto key_path = cfg.resolve(cfg.operator_key);
    const auto data_path = cfg.resolve(cfg.data_key);
    if (!std::filesystem::exists(key_path) || !std::filesystem::exists(data_path)) {
        // New keys only for a new deployment: on a database another node
        // already serves, a further node must hold that node's keys.
        auto db = open_database(cfg, true);
        std::string recorded;
        auto st = db->read([&](Connection& c) -> Status {
            auto rows = c.query("SELECT operator_sign_key FROM deployment_keys WHERE id = 1");
            if (!rows) return rows.error();
            if (!rows->empty()) recorded = rows->front().str(0);
            return {};
        });
        if (!st) throw Failure{kStorage, st.error().message};
        if (!recorded.empty()) {
            throw Failure{kKeys, "this database already serves a deployment (operator key " + recorded.substr(0, 16) +
                                     "…); no new keys were made: copy operator.key, data.key, operator.cert and "
                                     "operator-keys.d/ from one of its nodes, then run init again"};
        }
    }
    if (!std::filesystem::exists(key_path)) {
        const auto seeds = KeySeeds::random();
        if (auto st = write_key_file(key_path, seeds, passphrase_from(cfg.passphrase_env)); !st) {
            throw Failure{kKeys, st.error().message};
        }
        std::cerr << "created operator key " << key_path << "\n";
    } else {
        std::cerr << "keeping existing operator key " << key_path << "\n";
    }
    if (!std::filesystem::exists(data_path)) {
        if (auto st = DataKey::create(data_path); !st) throw Failure{kKeys, st.error().message};
        std::cerr << "created data key " << data_path << "\n";
    }
    if (!root_key.empty()) {
        auto root = read_key_file(root_key, root_passphrase());
        if (!root) throw Failure{kKeys, root.error().message};
        const auto ring = load_keyring(cfg);
        const auto rk = crypto::signing_key_from_seed(std::span<const std::uint8_t, 32>(root->sign.data(), 32));
        const SignedObject cert = certify_operator(rk, ring.current.public_keys());
        if (auto st = write_public_file(cfg.resolve(cfg.operator_certificate), base64_encode(cert.encode()) + "\n"); !st) {
            throw Failure{kKeys, st.error().message};
        }
        std::cerr << "certified the operator key with the provisioning root\n";
    }
    Local local(config_path, true);
    // The first admin token only on a database without one, so a second
    // init never mints a token nobody asked for.
    bool have_admin = false;
    (void)local.db->read([&](Connection& c) -> Status {
        auto rows = c.query("SELECT COUNT(*) FROM admin_tokens WHERE revoked_at IS NULL AND role = 'admin'");
        if (!rows) return rows.error();
        have_admin = rows->front().i64(0) > 0;
        return {};
    });
    json out{{"operator", local.service->operator_info().body}, {"storage", std::string(local.db->engine())}};
    if (!have_admin) {
        const Reply r = local.service->create_admin_token(local.caller, json{{"name", admin_name}, {"role", "admin"}});
        if (!r.ok()) return print_reply(r);
        out["admin_token"] = r.body;
        std::cerr << "first admin token created: store it now, it is shown only once\n";
    }
    std::cout << out.dump(2) << "\n";
    return kOk;
}

}  // namespace

int main(int argc, char** argv) {
    harden_process();
    umask(077);
    CLI::App app{"credprov-backend: the operator's REST service for registration, deprovisioning and AKA.\n"
                 "API reference: GET /openapi.json on a running server, or network_backend/openapi.json."};
    app.require_subcommand(1);
    std::string config_path = kDefaultBackendConfig;
    app.add_option("-c,--config", config_path, "configuration file (TOML)")->capture_default_str();
    app.set_version_flag("--version", std::string("credprov-backend ") + credprov::kVersion);

    auto* serve_cmd = app.add_subcommand("serve", "run the REST API until SIGTERM");
    std::string listen;
    int port = -1;
    serve_cmd->add_option("--listen", listen, "address to listen on (overrides server.listen)");
    serve_cmd->add_option("--port", port, "port (overrides server.port; 0 picks a free one)")->check(CLI::Range(0, 65535));

    auto* init_cmd = app.add_subcommand("init", "create the operator key, the data key and the database; print the first admin token");
    std::string root_key, admin_name = "first admin";
    init_cmd->add_option("--root-key", root_key, "certify the operator key with this provisioning root key file");
    init_cmd->add_option("--admin-name", admin_name, "name of the first admin token")->capture_default_str();

    auto* migrate_cmd = app.add_subcommand("migrate", "apply database migrations that are not applied yet");

    auto* root_cmd = app.add_subcommand("root", "the provisioning root that devices pin (keep its key offline)");
    root_cmd->require_subcommand(1);
    auto* root_create = root_cmd->add_subcommand("create", "create a root key file and print its public key");
    std::string root_out, root_pass_env;
    root_create->add_option("--out", root_out, "root key file to create")->required();
    root_create->add_option("--passphrase-env", root_pass_env, "environment variable holding a passphrase for the key file");
    auto* root_certify = root_cmd->add_subcommand("certify", "certify an exported operator public key");
    std::string root_in, operator_pub, cert_out;
    root_certify->add_option("--root", root_in, "root key file")->required();
    root_certify->add_option("--passphrase-env", root_pass_env, "environment variable holding the root key's passphrase");
    root_certify->add_option("--operator-public", operator_pub, "file written by 'operator export-public'")->required();
    root_certify->add_option("--out", cert_out, "certificate file to write")->required();

    auto* op_cmd = app.add_subcommand("operator", "the operator key");
    op_cmd->require_subcommand(1);
    auto* op_export = op_cmd->add_subcommand("export-public", "write the operator's public keys for certification");
    std::string export_out;
    op_export->add_option("--out", export_out, "file to write")->required();
    auto* op_import = op_cmd->add_subcommand("import-certificate", "install a root-signed operator certificate");
    std::string import_in, root_public;
    op_import->add_option("file", import_in, "certificate file")->required();
    op_import->add_option("--root-public", root_public, "the root's public key (64 hex) to check the certificate against")->required();
    auto* op_rotate = op_cmd->add_subcommand("rotate", "retire the operator key into the keyring and create a new one");
    std::string rotate_root;
    op_rotate->add_option("--root-key", rotate_root, "certify the new key with this root key file");

    auto* tok_cmd = app.add_subcommand("admin-token", "admin API tokens");
    tok_cmd->require_subcommand(1);
    auto* tok_create = tok_cmd->add_subcommand("create", "create a token (printed once)");
    std::string tok_name, tok_role;
    tok_create->add_option("--name", tok_name, "who holds it")->required();
    tok_create->add_option("--role", tok_role, "admin, auditor, provisioner-manager or core-network")->required();
    auto* tok_list = tok_cmd->add_subcommand("list", "list tokens (never their values)");
    auto* tok_revoke = tok_cmd->add_subcommand("revoke", "revoke a token");
    std::string tok_id;
    tok_revoke->add_option("id", tok_id, "token id")->required();

    auto* prov_cmd = app.add_subcommand("provisioner", "provisioner enrolment");
    prov_cmd->require_subcommand(1);
    auto* prov_enrol = prov_cmd->add_subcommand("enrol", "enrol a provisioner's public key");
    std::string prov_name, prov_key, prov_prefix;
    std::vector<std::string> prov_ops;
    prov_enrol->add_option("--name", prov_name, "technician or tool name")->required();
    prov_enrol->add_option("--public-key", prov_key, "Ed25519 public key, 64 hex digits")->required();
    prov_enrol->add_option("--operations", prov_ops, "operations it may ask tokens for")->required()->delimiter(',');
    prov_enrol->add_option("--device-prefix", prov_prefix, "restrict to device ids with this prefix (hex)");
    auto* prov_list = prov_cmd->add_subcommand("list", "list provisioners");
    auto* prov_revoke = prov_cmd->add_subcommand("revoke", "revoke a provisioner");
    std::string prov_id, prov_reason;
    prov_revoke->add_option("id", prov_id, "provisioner id")->required();
    prov_revoke->add_option("--reason", prov_reason, "why")->required();

    auto* enr_cmd = app.add_subcommand("enrolment-token", "one-time tokens with which a technician's tool enrols its own key");
    enr_cmd->require_subcommand(1);
    auto* enr_create = enr_cmd->add_subcommand("create", "issue a token (printed once; give it to the technician)");
    std::string enr_name, enr_prefix;
    std::vector<std::string> enr_ops;
    std::int64_t enr_ttl = 86400;
    enr_create->add_option("--name", enr_name, "technician or tool name")->required();
    enr_create->add_option("--operations", enr_ops, "operations the enrolled provisioner may ask tokens for")->required()->delimiter(',');
    enr_create->add_option("--device-prefix", enr_prefix, "restrict to device ids with this prefix (hex)");
    enr_create->add_option("--ttl", enr_ttl, "seconds until the token expires")->capture_default_str()->check(CLI::Range(60, 30 * 86400));

    auto* mfr_cmd = app.add_subcommand("manufacturer", "manufacturers whose attestations vouch for devices");
    mfr_cmd->require_subcommand(1);
    auto* mfr_add = mfr_cmd->add_subcommand("add", "add a manufacturer key");
    std::string mfr_name, mfr_key;
    mfr_add->add_option("--name", mfr_name, "manufacturer name as in its attestations")->required();
    mfr_add->add_option("--public-key", mfr_key, "Ed25519 public key, 64 hex digits")->required();

    auto* inv_cmd = app.add_subcommand("inventory", "device inventory");
    inv_cmd->require_subcommand(1);
    auto* inv_import = inv_cmd->add_subcommand("import", "import devices from a JSON file {\"devices\": [...]}");
    std::string inv_file;
    inv_import->add_option("file", inv_file, "JSON file")->required()->check(CLI::ExistingFile);

    auto* sub_cmd = app.add_subcommand("subscriber", "subscribers");
    sub_cmd->require_subcommand(1);
    auto* sub_list = sub_cmd->add_subcommand("list", "list subscribers (never K or OPc)");
    SubscriberQuery q;
    sub_list->add_option("--state", q.state, "pending, active, deprovisioned or expired");
    sub_list->add_option("--device", q.device, "device id");
    sub_list->add_option("--limit", q.limit, "page size")->capture_default_str();
    sub_list->add_option("--cursor", q.cursor, "next_cursor of the previous page");
    auto* sub_sweep = sub_cmd->add_subcommand("expire", "expire pending subscribers past their deadline now");

    auto* dev_cmd = app.add_subcommand("device", "devices");
    dev_cmd->require_subcommand(1);
    auto* dev_show = dev_cmd->add_subcommand("show", "show a device and its subscribers");
    std::string dev_id, dev_reason;
    dev_show->add_option("id", dev_id, "device id")->required();
    auto* dev_deprov = dev_cmd->add_subcommand("deprovision", "deprovision a device through the network");
    dev_deprov->add_option("id", dev_id, "device id")->required();
    dev_deprov->add_option("--reason", dev_reason, "why")->required();

    auto* audit_cmd = app.add_subcommand("audit", "the hash-chained audit log");
    audit_cmd->require_subcommand(1);
    auto* audit_verify = audit_cmd->add_subcommand("verify", "verify the whole chain");
    auto* audit_export = audit_cmd->add_subcommand("export", "export the log as JSON lines");
    std::string audit_out;
    audit_export->add_option("--out", audit_out, "file to write (default: standard output)");

    auto* core_cmd = app.add_subcommand("core", "the core-network connector ([core] in the configuration; decision 0011)");
    core_cmd->require_subcommand(1);
    auto* core_status = core_cmd->add_subcommand("status", "outbox depth, failing rows and the oldest pending change");
    auto* core_reconcile = core_cmd->add_subcommand(
        "reconcile", "compare active subscribers with the core (missing, extra, different keys); exit 7 on drift");
    bool core_repair = false, core_json = false;
    core_reconcile->add_flag("--repair", core_repair,
                             "queue the fixes in the outbox and deliver them now; exit 0 once no drift is left");
    core_reconcile->add_flag("--json", core_json, "print the report as JSON (IMSIs only, never keys)");

    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? kOk : kUsage;
    }

    try {
        if (*serve_cmd) return serve(config_path, listen, port);
        if (*init_cmd) return init(config_path, root_key, admin_name);
        if (*migrate_cmd) {
            const BackendConfig cfg = load_config_or_throw(config_path);
            auto db = open_database(cfg, true);
            auto v = db->schema_version();
            std::cout << "schema version " << (v ? *v : 0) << "\n";
            return kOk;
        }
        if (*root_create) {
            const auto seeds = KeySeeds::random();
            if (auto st = write_key_file(root_out, seeds, passphrase_from(root_pass_env)); !st) throw Failure{kKeys, st.error().message};
            const auto k = crypto::signing_key_from_seed(std::span<const std::uint8_t, 32>(seeds.sign.data(), 32));
            std::cout << to_hex(k.public_key) << "\n";
            return kOk;
        }
        if (*root_certify) {
            auto root = read_key_file(root_in, passphrase_from(root_pass_env));
            if (!root) throw Failure{kKeys, root.error().message};
            auto text = read_text_file(operator_pub);
            if (!text) throw Failure{kKeys, text.error().message};
            Bytes raw;
            std::string hex;
            for (char ch : *text) {
                if (!std::isspace(static_cast<unsigned char>(ch))) hex += ch;
            }
            auto keys = from_hex(hex, raw) ? OperatorKeys::decode(raw) : Result<OperatorKeys>(make_error(ErrorCode::malformed, ""));
            if (!keys) throw Failure{kKeys, operator_pub + " is not an exported operator public key"};
            const auto rk = crypto::signing_key_from_seed(std::span<const std::uint8_t, 32>(root->sign.data(), 32));
            if (auto st = write_public_file(cert_out, base64_encode(certify_operator(rk, *keys).encode()) + "\n"); !st) {
                throw Failure{kKeys, st.error().message};
            }
            std::cerr << "certified operator '" << keys->name << "'\n";
            return kOk;
        }
        if (*op_export) {
            const BackendConfig cfg = load_config_or_throw(config_path);
            const auto ring = load_keyring(cfg);
            if (auto st = write_public_file(export_out, to_hex(ring.current.public_keys().encode()) + "\n"); !st) {
                throw Failure{kKeys, st.error().message};
            }
            return kOk;
        }
        if (*op_import) {
            const BackendConfig cfg = load_config_or_throw(config_path);
            const auto ring = load_keyring(cfg);
            auto text = read_text_file(import_in);
            if (!text) throw Failure{kKeys, text.error().message};
            Bytes rpk;
            if (!from_hex(root_public, rpk) || rpk.size() != 32) throw Failure{kUsage, "--root-public must be 64 hex digits"};
            crypto::SignPublicKey root_pk{};
            std::copy(rpk.begin(), rpk.end(), root_pk.begin());
            auto raw = base64_decode(*text, 4096);
            if (!raw) throw Failure{kKeys, import_in + " is not a base64 certificate"};
            auto cert = SignedObject::decode(*raw);
            if (!cert) throw Failure{kKeys, import_in + " is not a certificate"};
            auto keys = verify_operator_certificate(*cert, root_pk);
            if (!keys) throw Failure{kKeys, "the certificate is not signed by that root: " + keys.error().message};
            if (keys->sign_key != ring.current.sign.public_key || keys->box_key != ring.current.box.public_key) {
                throw Failure{kKeys, "the certificate is for another operator key"};
            }
            if (auto st = write_public_file(cfg.resolve(cfg.operator_certificate), base64_encode(*raw) + "\n"); !st) throw Failure{kKeys, st.error().message};
            std::cerr << "installed the operator certificate\n";
            return kOk;
        }
        if (*op_rotate) {
            const BackendConfig cfg = load_config_or_throw(config_path);
            const auto ring = load_keyring(cfg);
            const auto dir = cfg.resolve(cfg.keyring_dir);
            std::filesystem::create_directories(dir);
            const auto retired = dir / (to_hex(ring.current.sign.public_key) + ".key");
            std::filesystem::rename(cfg.resolve(cfg.operator_key), retired);
            if (auto st = write_key_file(cfg.resolve(cfg.operator_key), KeySeeds::random(), passphrase_from(cfg.passphrase_env)); !st) {
                std::filesystem::rename(retired, cfg.resolve(cfg.operator_key));
                throw Failure{kKeys, st.error().message};
            }
            std::filesystem::remove(cfg.resolve(cfg.operator_certificate));
            if (!rotate_root.empty()) {
                auto root = read_key_file(rotate_root, root_passphrase());
                if (!root) throw Failure{kKeys, root.error().message};
                const auto fresh = load_keyring(cfg);
                const auto rk = crypto::signing_key_from_seed(std::span<const std::uint8_t, 32>(root->sign.data(), 32));
                if (auto st = write_public_file(cfg.resolve(cfg.operator_certificate),
                                                base64_encode(certify_operator(rk, fresh.current.public_keys()).encode()) + "\n");
                    !st) {
                    throw Failure{kKeys, st.error().message};
                }
            }
            std::cerr << "rotated: the old key signs notices for the devices it owns; new bundles use the new key\n";
            Local local(config_path);
            return print_reply(local.service->operator_info());
        }
        Local local(config_path);
        Service& s = *local.service;
        const Caller& me = local.caller;
        if (*tok_create) return print_reply(s.create_admin_token(me, {{"name", tok_name}, {"role", tok_role}}));
        if (*tok_list) return print_reply(s.list_admin_tokens(me));
        if (*tok_revoke) return print_reply(s.revoke_admin_token(me, tok_id));
        if (*prov_enrol) {
            json body{{"name", prov_name}, {"public_key", prov_key}, {"operations", prov_ops}};
            if (!prov_prefix.empty()) body["device_prefix"] = prov_prefix;
            return print_reply(s.enrol_provisioner(me, body));
        }
        if (*prov_list) return print_reply(s.list_provisioners(me));
        if (*prov_revoke) return print_reply(s.revoke_provisioner(me, prov_id, {{"reason", prov_reason}}));
        if (*mfr_add) return print_reply(s.add_manufacturer(me, {{"name", mfr_name}, {"public_key", mfr_key}}));
        if (*enr_create) {
            json body{{"name", enr_name}, {"operations", enr_ops}, {"ttl_s", enr_ttl}};
            if (!enr_prefix.empty()) body["device_prefix"] = enr_prefix;
            return print_reply(s.create_enrolment_token(me, body));
        }
        if (*inv_import) {
            std::ifstream in(inv_file);
            std::stringstream ss;
            ss << in.rdbuf();
            json body = json::parse(ss.str(), nullptr, false);
            if (body.is_discarded()) throw Failure{kUsage, inv_file + " is not valid JSON"};
            return print_reply(s.import_inventory(me, body));
        }
        if (*sub_list) return print_reply(s.list_subscribers(me, q));
        if (*sub_sweep) {
            auto n = s.sweep();
            if (!n) throw Failure{kStorage, n.error().message};
            std::cout << json{{"expired", *n}}.dump(2) << "\n";
            return kOk;
        }
        if (*dev_show) return print_reply(s.get_device(me, dev_id));
        if (*dev_deprov) return print_reply(s.deprovision_device(me, dev_id, {{"reason", dev_reason}}));
        if (*core_status) {
            auto r = s.core_status();
            if (!r) throw Failure{kStorage, r.error().message};
            std::cout << r->dump(2) << "\n";
            return kOk;
        }
        if (*core_reconcile) {
            auto core = open_core(local.cfg, *local.db);
            if (!core) throw Failure{kConfig, "no [core] section in " + config_path + ": there is nothing to reconcile with"};
            auto r = s.core_reconcile(me, *core, core_repair, node_name());
            if (!r) {
                std::cerr << "credprov-backend: " << r.error().message << "\n";
                return r.error().code == ErrorCode::storage ? kStorage : kCoreDown;
            }
            if (core_json) {
                std::cout << r->dump(2) << "\n";
            } else {
                const json& j = *r;
                std::cout << j["core"].get<std::string>() << " (" << j["endpoint"].get<std::string>() << "): "
                          << j["active"] << " active subscribers, " << j["core_subscribers"] << " in the core ("
                          << j["foreign"] << " not managed by credprov), " << j["in_flight"].size() << " with changes in flight\n";
                for (const auto& i : j["missing"]) std::cout << "missing   " << i.get<std::string>() << "\n";
                for (const auto& i : j["extra"]) std::cout << "extra     " << i.get<std::string>() << "\n";
                for (const auto& d : j["different"]) {
                    std::cout << "different " << d["imsi"].get<std::string>() << ": " << d["what"].get<std::string>() << "\n";
                }
                if (j.contains("repair")) {
                    std::cout << "repair: " << j["repair"]["queued"] << " changes queued and delivered; "
                              << (j["drift"].get<bool>() ? "drift remains" : "no drift left") << "\n";
                    if (j["repair"].contains("last_error")) {
                        std::cout << "last delivery error: " << j["repair"]["last_error"].get<std::string>() << "\n";
                    }
                } else if (!j["drift"].get<bool>()) {
                    std::cout << "no drift\n";
                }
            }
            return (*r)["drift"].get<bool>() ? kCoreDrift : kOk;
        }
        if (*audit_verify) {
            const Reply r = s.audit_verify(me);
            (void)print_reply(r);
            return r.ok() && r.body["ok"].get<bool>() ? kOk : kAuditBroken;
        }
        if (*audit_export) {
            std::ofstream file;
            if (!audit_out.empty()) {
                file.open(audit_out);
                if (!file) throw Failure{kUsage, "cannot write " + audit_out};
            }
            std::ostream& out = audit_out.empty() ? std::cout : file;
            std::int64_t after = 0;
            for (;;) {
                const Reply r = s.audit_list(me, after, 1000);
                if (!r.ok()) return print_reply(r);
                const auto& items = r.body["items"];
                for (const auto& e : items) out << e.dump() << "\n";
                if (items.size() < 1000) break;
                after = items.back()["seq"].get<std::int64_t>();
            }
            return kOk;
        }
    } catch (const Failure& f) {
        std::cerr << "credprov-backend: " << f.message << "\n";
        return f.code;
    } catch (const std::filesystem::filesystem_error& e) {
        std::cerr << "credprov-backend: " << e.what() << "\n";
        return kKeys;
    }
    return kUsage;
}

