// A lab around one real credprov-backend process: a temporary folder with a
// configuration, a provisioning root, `credprov-backend init`, and the
// server started on a free loopback port, on SQLite or on the PostgreSQL
// server the test script started (CREDPROV_TEST_POSTGRES_URL; each lab gets
// a database of its own). Requests go over real HTTP (cpp-httplib's client).
//
// Further nodes (add_node) are more `serve` processes on the same database
// with the same operator keys and configuration, as an operator runs several
// backend nodes: each in a folder of its own holding copies of the lab's
// configuration and key files, with its own port and log.
//
// Every response can be appended to CREDPROV_API_TRACE (JSON lines) so the
// OpenAPI check can validate the shapes the server really sent.
// Setup failures throw std::runtime_error.
#pragma once

#include <httplib.h>

#include <cstdio>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <regex>
#include <stdexcept>

#include "agent_process.hpp"
#include "credprov/backend/database.hpp"
#include "credprov/backend/encoding.hpp"
#include "credprov/backend/request_auth.hpp"
#include "protocol_world.hpp"

namespace credprov::testing {

using json = nlohmann::json;

enum class Storage { sqlite, postgres };

inline std::optional<std::string> postgres_url() {
    const char* v = std::getenv("CREDPROV_TEST_POSTGRES_URL");
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
}

// Appends a URL parameter to a libpq URL ("postgresql://host:port/db?x=y").
inline std::string with_database(const std::string& url, const std::string& db) {
    const auto q = url.find('?');
    const std::string base = url.substr(0, q);
    const std::string query = q == std::string::npos ? "" : url.substr(q);
    const auto slash = base.rfind('/');
    return base.substr(0, slash + 1) + db + query;
}

struct LabOptions {
    std::uint64_t pending_ttl_s{900};
    std::uint64_t sweep_interval_s{30};
    std::uint64_t rate_per_second{10000};
    std::uint64_t rate_burst{10000};
    std::size_t max_body_bytes{64 * 1024};
    // The operator's OP (32 hex digits): written to a 0600 file named by
    // [subscribers] op_file, so OPc is derived from it. Empty: random OPc.
    std::string op_hex;
    std::string extra_toml;
};

struct Resp {
    int status{0};
    json body;
    std::string raw;
    std::string content_type;
    std::string retry_after;
};

class BackendLab {
public:
    std::filesystem::path dir = make_dir();
    std::filesystem::path config = dir / "backend.toml";
    std::filesystem::path log = dir / "backend.log";
    std::string database_url;
    Storage storage;
    std::string admin_token;
    crypto::SignPublicKey operator_key{};
    std::optional<SignedObject> certificate;
    int port{0};

    explicit BackendLab(Storage s, LabOptions o = {}) : storage(s), options_(o) {
        if (s == Storage::postgres) {
            auto base = postgres_url();
            if (!base) throw std::runtime_error("CREDPROV_TEST_POSTGRES_URL is not set");
            const std::string name = "lab_" + to_hex(random16()).substr(0, 16);
            auto admin = backend::connect(*base);
            if (!admin) throw std::runtime_error("cannot reach PostgreSQL: " + admin.error().message);
            if (auto st = (*admin)->script("CREATE DATABASE " + name); !st) {
                throw std::runtime_error("CREATE DATABASE failed: " + st.error().message);
            }
            database_url = with_database(*base, name);
        } else {
            database_url = "sqlite:" + (dir / "backend.db").string();
        }
        write_config();
        auto rk = run_command({CREDPROV_BACKEND, "root", "create", "--out", (dir / "root.key").string()});
        if (rk.exit_code != 0) throw std::runtime_error("root create failed");
        Bytes rb;
        if (!from_hex(rk.out.substr(0, 64), rb) || rb.size() != 32) throw std::runtime_error("root create printed no key");
        std::copy(rb.begin(), rb.end(), root_public_.begin());
        auto init = run_command({CREDPROV_BACKEND, "-c", config.string(), "init", "--root-key", (dir / "root.key").string()});
        if (init.exit_code != 0) throw std::runtime_error("init failed (exit " + std::to_string(init.exit_code) + ")");
        const json j = json::parse(init.out);
        admin_token = j["admin_token"]["token"].get<std::string>();
        Bytes b;
        (void)from_hex(j["operator"]["sign_key"].get<std::string>(), b);
        std::copy(b.begin(), b.end(), operator_key.begin());
        auto cert = backend::base64_decode(j["operator"]["certificate"].get<std::string>());
        certificate = SignedObject::decode(*cert).value();
        start();
    }
    ~BackendLab() {
        nodes_.clear();
        server_.reset();
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    BackendLab(const BackendLab&) = delete;
    BackendLab& operator=(const BackendLab&) = delete;

    // Starts the server and waits for its "listening" log line. With
    // same_port, on the port it had before (clients keep their URL).
    void start(bool same_port = false) { server_ = serve(config, log, same_port ? port : -1, port); }
    void kill_server() {
        if (server_) server_->signal(SIGKILL);
        if (server_) server_->wait();
        server_.reset();
    }

    // ---- further nodes --------------------------------------------------------------
    // Starts another node on the same database: a folder of its own with
    // copies of the configuration and of the operator's key files (what an
    // operator copies to a second machine; the provisioning root stays
    // offline), its own free port and log. Returns its number: node 0 is the
    // lab's own server, nodes 1, 2, ... are added ones.
    std::size_t add_node() {
        const std::size_t n = nodes_.size() + 1;
        auto node = std::make_unique<Node>();
        node->dir = dir / ("node-" + std::to_string(n));
        std::filesystem::create_directories(node->dir);
        for (const char* name : {"backend.toml", "operator.key", "data.key", "operator.cert", "operator-keys.d"}) {
            if (!std::filesystem::exists(dir / name)) continue;
            std::filesystem::copy(dir / name, node->dir / name,
                                  std::filesystem::copy_options::recursive | std::filesystem::copy_options::overwrite_existing);
        }
        node->config = node->dir / "backend.toml";
        node->log = node->dir / "backend.log";
        node->process = serve(node->config, node->log, -1, node->port);
        nodes_.push_back(std::move(node));
        return n;
    }
    [[nodiscard]] std::size_t node_count() const { return nodes_.size() + 1; }
    [[nodiscard]] int node_port(std::size_t n) const { return n == 0 ? port : nodes_.at(n - 1)->port; }
    [[nodiscard]] std::filesystem::path node_log(std::size_t n) const { return n == 0 ? log : nodes_.at(n - 1)->log; }
    // SIGKILL, as a crash of that machine; node 0 is the lab's own server.
    void kill_node(std::size_t n) {
        if (n == 0) return kill_server();
        auto& p = nodes_.at(n - 1)->process;
        if (p) p->signal(SIGKILL);
        if (p) p->wait();
        p.reset();
    }
    int stop_server() {
        if (!server_) return -1;
        server_->signal(SIGTERM);
        const int rc = server_->wait();
        server_.reset();
        return rc;
    }

    // ---- requests -----------------------------------------------------------------
    Resp request(const std::string& method, const std::string& path, const std::optional<json>& body,
                 const httplib::Headers& headers, const std::string& raw_body = {}, const std::string& type = "application/json") {
        return request_at(0, method, path, body, headers, raw_body, type);
    }
    // The same, to node n (0: the lab's own server).
    Resp request_at(std::size_t n, const std::string& method, const std::string& path, const std::optional<json>& body,
                    const httplib::Headers& headers, const std::string& raw_body = {},
                    const std::string& type = "application/json") {
        httplib::Client cli("127.0.0.1", node_port(n));
        cli.set_connection_timeout(5);
        cli.set_read_timeout(20);
        const std::string payload = body ? body->dump() : raw_body;
        httplib::Result r{nullptr, httplib::Error::Unknown};
        if (method == "GET") r = cli.Get(path, headers);
        else if (method == "DELETE") r = cli.Delete(path, headers);
        else r = cli.Post(path, headers, payload, type);
        Resp out;
        if (!r) {  // status 0: no answer; say why in the test's output
            out.raw = "no answer from " + method + " " + path + ": " + httplib::to_string(r.error());
            std::fprintf(stderr, "backend lab: %s\n", out.raw.c_str());
            return out;
        }
        out.status = r->status;
        out.raw = r->body;
        out.content_type = r->get_header_value("Content-Type");
        out.retry_after = r->get_header_value("Retry-After");
        out.body = json::parse(r->body, nullptr, false);
        trace(method, path, out);
        return out;
    }
    Resp admin(const std::string& method, const std::string& path, const std::optional<json>& body = std::nullopt,
               const std::string& token = {}) {
        return admin_at(0, method, path, body, token);
    }
    Resp admin_at(std::size_t n, const std::string& method, const std::string& path,
                  const std::optional<json>& body = std::nullopt, const std::string& token = {}) {
        return request_at(n, method, path, body, {{"Authorization", "Bearer " + (token.empty() ? admin_token : token)}});
    }
    Resp anon(const std::string& method, const std::string& path, const std::optional<json>& body = std::nullopt) {
        return request(method, path, body, {});
    }
    Resp signed_by(const crypto::SigningKey& key, const std::string& method, const std::string& path, const json& body,
                   std::uint64_t at = 0) {
        return signed_at(0, key, method, path, body, at);
    }
    Resp signed_at(std::size_t n, const crypto::SigningKey& key, const std::string& method, const std::string& path,
                   const json& body, std::uint64_t at = 0) {
        const std::string payload = body.dump();
        const std::uint64_t ts = at ? at : static_cast<std::uint64_t>(std::time(nullptr));
        return request_at(n, method, path, std::nullopt,
                          {{"Authorization", backend::sign_request(key, method, path, ts, payload)}}, payload);
    }
    std::string token_for(const std::string& role) {
        auto r = admin("POST", "/v1/admin/tokens", json{{"name", role + " holder"}, {"role", role}});
        if (r.status != 201) throw std::runtime_error("cannot create a " + role + " token");
        return r.body["token"].get<std::string>();
    }
    // Enrols `key` with these operations (admin); returns the provisioner id.
    std::string enrol(const crypto::SigningKey& key, std::vector<std::string> ops, const std::string& prefix = {}) {
        json body{{"name", "technician"}, {"public_key", to_hex(key.public_key)}, {"operations", ops}};
        if (!prefix.empty()) body["device_prefix"] = prefix;
        auto r = admin("POST", "/v1/provisioners", body);
        if (r.status != 201 && r.status != 200) throw std::runtime_error("enrol failed: " + r.raw);
        return r.body["id"].get<std::string>();
    }
    static json device_json(const DeviceIdentity& d) {
        return json{{"device_id", d.id.to_string()},
                    {"identity_key", to_hex(d.identity.public_key)},
                    {"box_key", to_hex(d.box.public_key)},
                    {"box_signature", to_hex(d.box_signature)}};
    }
    void import_device(const DeviceIdentity& d) {
        auto r = admin("POST", "/v1/inventory", json{{"devices", json::array({device_json(d)})}});
        if (r.status != 200) throw std::runtime_error("inventory import failed: " + r.raw);
    }

    // Direct database access, for tamper tests and crash checks.
    std::unique_ptr<backend::Connection> db() {
        auto c = backend::connect(database_url);
        if (!c) throw std::runtime_error("cannot open the lab database: " + c.error().message);
        return std::move(*c);
    }
    // A fingerprint of every state table (not the audit log).
    std::string state_fingerprint() {
        auto c = db();
        std::string out;
        for (const char* q : {"SELECT imsi, state, object_id, keys_enc, sqn FROM subscribers ORDER BY imsi",
                              "SELECT id, revoked_at FROM provisioners ORDER BY id",
                              "SELECT id, revoked_at FROM admin_tokens ORDER BY id",
                              "SELECT device_id, owner_counter, notice FROM devices ORDER BY device_id",
                              "SELECT name FROM manufacturers ORDER BY name",
                              "SELECT id, state FROM field_authorisations ORDER BY id",
                              "SELECT next_msin FROM imsi_allocator"}) {
            auto rows = c->query(q);
            if (!rows) throw std::runtime_error(rows.error().message);
            for (const auto& r : *rows) {
                for (std::size_t i = 0; i < r.cols.size(); ++i) out += r.str(i) + "|";
                out += "\n";
            }
        }
        return out;
    }

    // What a device made for this operator pins: the provisioning root
    // (field mode allowed, so field-pool tests can use it too).
    DeviceTrust trust() const { return DeviceTrust{root_public_, std::nullopt, false, true}; }
    const crypto::SignPublicKey& root_public() const { return root_public_; }

private:
    struct Node {
        std::filesystem::path dir, config, log;
        int port{0};
        std::unique_ptr<AgentProcess> process;
    };

    // Runs `serve` with this configuration (on `fixed_port` unless it is
    // negative) and waits for its "listening" log line; sets `port`.
    static std::unique_ptr<AgentProcess> serve(const std::filesystem::path& config_file, const std::filesystem::path& log_file,
                                               int fixed_port, int& port_out) {
        const auto before = std::filesystem::exists(log_file) ? std::filesystem::file_size(log_file) : 0;
        std::vector<std::string> args{"-c", config_file.string(), "serve"};
        if (fixed_port >= 0) args.insert(args.end(), {"--port", std::to_string(fixed_port)});
        auto process = std::make_unique<AgentProcess>(CREDPROV_BACKEND, args, log_file);
        const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(10);
        static const std::regex listening(R"re("msg":"listening".*"port":([0-9]+))re");
        while (std::chrono::steady_clock::now() < end) {
            const std::string text = read_file(log_file).substr(before);
            std::smatch m;
            if (std::regex_search(text, m, listening)) {
                port_out = std::stoi(m[1].str());
                return process;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        throw std::runtime_error("credprov-backend did not start: " + read_file(log_file));
    }

    static std::filesystem::path make_dir() {
        std::string tmpl = (std::filesystem::temp_directory_path() / "credprov-backend-XXXXXX").string();
        if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
        return tmpl;
    }
    static ByteArray<16> random16() {
        ByteArray<16> b{};
        crypto::random_bytes(b);
        return b;
    }
    std::string write_op_file() const {
        const auto path = dir / "op.hex";
        { std::ofstream(path) << options_.op_hex << "\n"; }
        std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
        return path.string();
    }
    void write_config() {
        std::ofstream out(config);
        out << "[server]\nlisten = \"127.0.0.1\"\nport = 0\nallow_plain_http = true\nthreads = 32\n"
            << "max_body_bytes = " << options_.max_body_bytes << "\n"
            << "[storage]\ndatabase = \"" << database_url << "\"\n"
            << "[operator]\nname = \"Lab Operator\"\n"
            << "[subscribers]\nplmn = \"00101\"\nnetwork_name = \"credprov-lab\"\n"
            << (options_.op_hex.empty() ? std::string() : "op_file = \"" + write_op_file() + "\"\n")
            << "pending_ttl_s = " << options_.pending_ttl_s << "\nsweep_interval_s = " << options_.sweep_interval_s << "\n"
            << "[limits]\nrate_per_second = " << options_.rate_per_second << "\nrate_burst = " << options_.rate_burst << "\n"
            << "[log]\nformat = \"json\"\nlevel = \"info\"\n"
            << options_.extra_toml;
    }
    // CREDPROV_API_TRACE names a folder; each test process appends to its
    // own trace-<pid>.jsonl there (CTest runs processes in parallel).
    void trace(const std::string& method, const std::string& path, const Resp& r) {
        const char* dir_name = std::getenv("CREDPROV_API_TRACE");
        if (dir_name == nullptr || *dir_name == '\0') return;
        static std::mutex m;
        std::lock_guard lock(m);
        std::filesystem::create_directories(dir_name);
        std::ofstream out(std::filesystem::path(dir_name) / ("trace-" + std::to_string(::getpid()) + ".jsonl"), std::ios::app);
        json rec{{"method", method}, {"path", path}, {"status", r.status}, {"content_type", r.content_type}};
        rec["body"] = r.body.is_discarded() ? json(r.raw) : r.body;
        out << rec.dump() << "\n";
    }

    LabOptions options_;
    crypto::SignPublicKey root_public_{};
    std::unique_ptr<AgentProcess> server_;
    std::vector<std::unique_ptr<Node>> nodes_;
};

}  // namespace credprov::testing
