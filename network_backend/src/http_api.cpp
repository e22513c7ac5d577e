// REST API wiring over cpp-httplib (see http_api.hpp).
#include "credprov/backend/http_api.hpp"

#include <httplib.h>
#include <spdlog/spdlog.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <charconv>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include <regex>
#include <unordered_map>

#include "embedded_migrations.hpp"
#include "request_fields.hpp"

namespace credprov::backend {

std::string_view openapi_document() { return embedded::openapi_json(); }

namespace {

using Params = std::vector<std::string>;
using Handler = std::function<Reply(Service&, const Caller&, const Params&, const json&, const httplib::Request&)>;

struct Route {
    RouteInfo info;
    Handler handler;
    bool batchable{false};  // may be a request inside POST /v1/batch (decision 0014)
};

// Requests one kept-alive connection may carry before the server closes it
// (httplib's default is 5). An open connection holds a worker thread while
// it waits for its next request, so a client beyond [server] threads waits
// for a turn: closing after 100 requests gives it one soon enough.
constexpr std::size_t kKeepAliveRequests = 100;

constexpr Role kAdmin = Role::admin;
constexpr Role kAuditor = Role::auditor;
constexpr Role kManager = Role::provisioner_manager;
constexpr Role kCore = Role::core_network;

Access anyone() { return Access{true, false, {}}; }
Access roles(std::vector<Role> r) { return Access{false, false, std::move(r)}; }
Access provisioner() { return Access{false, true, {}}; }

// Query parameters of a listing, each validated.
bool query_int(const httplib::Request& req, const char* name, std::int64_t& out, std::string& error) {
    if (!req.has_param(name)) return true;
    const std::string v = req.get_param_value(name);
    const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc{} || p != v.data() + v.size() || v.size() > 19) {
        error = std::string("query parameter '") + name + "' must be an integer";
        return false;
    }
    return true;
}

std::vector<Route> build_routes() {
    std::vector<Route> r;
    auto add = [&](std::string method, std::string path, Access access, Handler h) {
        r.push_back(Route{RouteInfo{std::move(method), std::move(path), std::move(access)}, std::move(h)});
    };
    auto batchable = [&] { r.back().batchable = true; };
    // ---- public ----
    add("GET", "/healthz", anyone(), [](Service& s, const Caller&, const Params&, const json&, const httplib::Request&) {
        return s.health();
    });
    add("GET", "/v1/operator", anyone(), [](Service& s, const Caller&, const Params&, const json&, const httplib::Request&) {
        return s.operator_info();
    });
    // ---- admin tokens ----
    add("POST", "/v1/admin/tokens", roles({kAdmin}),
        [](Service& s, const Caller& c, const Params&, const json& b, const httplib::Request&) { return s.create_admin_token(c, b); });
    add("GET", "/v1/admin/tokens", roles({kAdmin}),
        [](Service& s, const Caller& c, const Params&, const json&, const httplib::Request&) { return s.list_admin_tokens(c); });
    add("DELETE", "/v1/admin/tokens/{id}", roles({kAdmin}),
        [](Service& s, const Caller& c, const Params& p, const json&, const httplib::Request&) { return s.revoke_admin_token(c, p[0]); });
    // ---- provisioners, manufacturers, inventory ----
    add("POST", "/v1/provisioners", roles({kAdmin, kManager}),
        [](Service& s, const Caller& c, const Params&, const json& b, const httplib::Request&) { return s.enrol_provisioner(c, b); });
    add("GET", "/v1/provisioners", roles({kAdmin, kManager, kAuditor}),
        [](Service& s, const Caller& c, const Params&, const json&, const httplib::Request&) { return s.list_provisioners(c); });
    add("GET", "/v1/provisioners/{id}", roles({kAdmin, kManager, kAuditor}),
        [](Service& s, const Caller& c, const Params& p, const json&, const httplib::Request&) { return s.get_provisioner(c, p[0]); });
    add("POST", "/v1/provisioners/{id}/revoke", roles({kAdmin, kManager}),
        [](Service& s, const Caller& c, const Params& p, const json& b, const httplib::Request&) {
            return s.revoke_provisioner(c, p[0], b);
        });
    add("POST", "/v1/enrolment-tokens", roles({kAdmin, kManager}),
        [](Service& s, const Caller& c, const Params&, const json& b, const httplib::Request&) {
            return s.create_enrolment_token(c, b);
        });
    add("POST", "/v1/enrol", anyone(),
        [](Service& s, const Caller& c, const Params&, const json& b, const httplib::Request&) { return s.enrol_with_token(c, b); });
    add("POST", "/v1/manufacturers", roles({kAdmin}),
        [](Service& s, const Caller& c, const Params&, const json& b, const httplib::Request&) { return s.add_manufacturer(c, b); });
    add("GET", "/v1/manufacturers", roles({kAdmin, kManager, kAuditor}),
        [](Service& s, const Caller& c, const Params&, const json&, const httplib::Request&) { return s.list_manufacturers(c); });
    add("POST", "/v1/inventory", roles({kAdmin, kManager}),
        [](Service& s, const Caller& c, const Params&, const json& b, const httplib::Request&) { return s.import_inventory(c, b); });
    // ---- subscribers and devices ----
    add("GET", "/v1/subscribers", roles({kAdmin, kManager, kAuditor}),
        [](Service& s, const Caller& c, const Params&, const json&, const httplib::Request& req) {
            SubscriberQuery q;
            std::string error;
            q.state = req.get_param_value("state");
            q.device = req.get_param_value("device");
            q.provisioner = req.get_param_value("provisioner");
            q.cursor = req.get_param_value("cursor");
            if (!query_int(req, "since", q.since, error) || !query_int(req, "until", q.until, error) ||
                !query_int(req, "limit", q.limit, error)) {
                return Reply::problem(400, "invalid-request", "The request is not valid", error);
            }
            return s.list_subscribers(c, q);
        });
    add("GET", "/v1/subscribers/{imsi}", roles({kAdmin, kManager, kAuditor}),
        [](Service& s, const Caller& c, const Params& p, const json&, const httplib::Request&) { return s.get_subscriber(c, p[0]); });
    add("POST", "/v1/subscribers/{imsi}/vectors", roles({kAdmin, kCore}),
        [](Service& s, const Caller& c, const Params& p, const json& b, const httplib::Request&) { return s.vectors(c, p[0], b); });
    add("POST", "/v1/vectors", roles({kAdmin, kCore}),
        [](Service& s, const Caller& c, const Params&, const json& b, const httplib::Request&) { return s.vectors_batch(c, b); });
    add("POST", "/v1/subscribers/{imsi}/resync", roles({kAdmin, kCore}),
        [](Service& s, const Caller& c, const Params& p, const json& b, const httplib::Request&) { return s.resync(c, p[0], b); });
    add("GET", "/v1/devices/{device_id}", roles({kAdmin, kManager, kAuditor}),
        [](Service& s, const Caller& c, const Params& p, const json&, const httplib::Request&) { return s.get_device(c, p[0]); });
    add("POST", "/v1/devices/{device_id}/deprovision", Access{false, true, {kAdmin}},
        [](Service& s, const Caller& c, const Params& p, const json& b, const httplib::Request&) {
            return s.deprovision_device(c, p[0], b);
        });
    add("POST", "/v1/devices/{device_id}/commands", Access{false, true, {kAdmin}},
        [](Service& s, const Caller& c, const Params& p, const json& b, const httplib::Request&) {
            return s.issue_owner_command(c, p[0], b);
        });
    add("GET", "/v1/devices/{device_id}/notice", anyone(),
        [](Service& s, const Caller& c, const Params& p, const json&, const httplib::Request&) { return s.device_notice(c, p[0]); });
    // ---- provisioners' own calls ----
    add("POST", "/v1/tokens", provisioner(),
        [](Service& s, const Caller& c, const Params&, const json& b, const httplib::Request&) { return s.issue_token(c, b); });
    batchable();
    add("POST", "/v1/bundles", provisioner(),
        [](Service& s, const Caller& c, const Params&, const json& b, const httplib::Request&) { return s.mint_bundle(c, b); });
    batchable();
    add("POST", "/v1/receipts", provisioner(),
        [](Service& s, const Caller& c, const Params&, const json& b, const httplib::Request&) { return s.submit_receipt(c, b); });
    batchable();
    // Several of the three calls above in one signed request; ApiServer::Impl
    // runs them (run_batch), so the handler here is never called.
    add("POST", "/v1/batch", provisioner(), nullptr);
    add("POST", "/v1/field-pools", provisioner(),
        [](Service& s, const Caller& c, const Params&, const json& b, const httplib::Request&) { return s.reserve_field_pool(c, b); });
    add("POST", "/v1/field-pools/{pool_id}/return", provisioner(),
        [](Service& s, const Caller& c, const Params& p, const json& b, const httplib::Request&) {
            return s.return_field_pool(c, p[0], b);
        });
    // ---- the device's network path ----
    add("POST", "/v1/attach/challenge", anyone(),
        [](Service& s, const Caller& c, const Params&, const json& b, const httplib::Request&) { return s.attach_challenge(c, b); });
    add("POST", "/v1/attach/response", anyone(),
        [](Service& s, const Caller& c, const Params&, const json& b, const httplib::Request&) { return s.attach_response(c, b); });
    // ---- audit ----
    add("GET", "/v1/audit", roles({kAdmin, kAuditor}),
        [](Service& s, const Caller& c, const Params&, const json&, const httplib::Request& req) {
            std::int64_t after = 0, limit = 100;
            std::string error;
            if (!query_int(req, "after", after, error) || !query_int(req, "limit", limit, error)) {
                return Reply::problem(400, "invalid-request", "The request is not valid", error);
            }
            return s.audit_list(c, after, limit);
        });
    add("GET", "/v1/audit/verify", roles({kAdmin, kAuditor}),
        [](Service& s, const Caller& c, const Params&, const json&, const httplib::Request&) { return s.audit_verify(c); });
    return r;
}

// Token bucket per identity (or peer address before authentication).
class RateLimiter {
public:
    RateLimiter(double rate, double burst) : rate_(rate), burst_(burst) {}
    // 0 when allowed, else seconds until `cost` tokens are available. A
    // cost above the burst is charged as the burst (it could never pass).
    std::uint64_t take(const std::string& key, double cost = 1.0) {
        cost = std::min(cost, burst_);
        const auto t = std::chrono::steady_clock::now();
        std::lock_guard lock(m_);
        if (buckets_.size() > 100000) buckets_.clear();  // bounded memory under address spraying
        auto [it, fresh] = buckets_.try_emplace(key, Bucket{burst_, t});
        Bucket& b = it->second;
        if (!fresh) {
            const double dt = std::chrono::duration<double>(t - b.last).count();
            b.tokens = std::min(burst_, b.tokens + dt * rate_);
            b.last = t;
        }
        if (b.tokens >= cost) {
            b.tokens -= cost;
            return 0;
        }
        return static_cast<std::uint64_t>((cost - b.tokens) / rate_) + 1;
    }

    // Gives back what take() charged for a request that did not run after
    // all (a batch refused for its size): only a request that ran costs.
    void refund(const std::string& key, double amount) {
        std::lock_guard lock(m_);
        if (auto it = buckets_.find(key); it != buckets_.end()) it->second.tokens = std::min(burst_, it->second.tokens + amount);
    }

private:
    struct Bucket {
        double tokens;
        std::chrono::steady_clock::time_point last;
    };
    double rate_, burst_;
    std::mutex m_;
    std::unordered_map<std::string, Bucket> buckets_;
};

// Threads that help run a batch's requests at once (decision 0014): the
// calling thread takes requests too, so a batch never waits for a helper,
// and the helpers let several requests of one batch share a group commit.
class BatchHelpers {
public:
    explicit BatchHelpers(std::size_t threads) {
        // The helpers take no signals, whenever the server is made: the
        // process's SIGTERM goes to the thread that waits for it (a helper
        // taking it would end the process without a clean stop).
        sigset_t all, before;
        sigfillset(&all);
        pthread_sigmask(SIG_BLOCK, &all, &before);
        for (std::size_t i = 0; i < threads; ++i) threads_.emplace_back([this] { loop(); });
        pthread_sigmask(SIG_SETMASK, &before, nullptr);
    }
    ~BatchHelpers() {
        {
            std::lock_guard lock(m_);
            stop_ = true;
        }
        wake_.notify_all();
        for (auto& t : threads_) t.join();
    }
    BatchHelpers(const BatchHelpers&) = delete;
    BatchHelpers& operator=(const BatchHelpers&) = delete;

    // Runs fn(i) for every i in [0, n), on this thread and at most
    // `helpers` others; returns when all have returned.
    void run(std::size_t n, std::size_t helpers, const std::function<void(std::size_t)>& fn) {
        Task task{&fn, n};
        helpers = std::min({helpers, threads_.size(), n > 0 ? n - 1 : 0});
        {
            std::lock_guard lock(m_);
            for (std::size_t i = 0; i < helpers; ++i) queue_.push_back(&task);
        }
        for (std::size_t i = 0; i < helpers; ++i) wake_.notify_one();
        task.work();
        // Every request is taken: helpers that have not started are not
        // needed; wait for those still running one.
        std::unique_lock lock(m_);
        std::erase(queue_, &task);
        left_.wait(lock, [&] { return task.active == 0; });
    }

private:
    struct Task {
        const std::function<void(std::size_t)>* fn;
        std::size_t n;
        std::atomic<std::size_t> next{0};
        int active{0};  // helpers inside work(), under m_
        void work() {
            for (std::size_t i = next++; i < n; i = next++) (*fn)(i);
        }
    };
    void loop() {
        std::unique_lock lock(m_);
        for (;;) {
            wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
            if (queue_.empty()) return;  // stopping
            Task* task = queue_.front();
            queue_.pop_front();
            ++task->active;
            lock.unlock();
            task->work();
            lock.lock();
            --task->active;
            left_.notify_all();
        }
    }
    std::mutex m_;
    std::condition_variable wake_, left_;
    std::deque<Task*> queue_;
    bool stop_{false};
    std::vector<std::thread> threads_;
};

// Helper threads in the server, and how many one batch may use.
constexpr std::size_t kBatchHelperThreads = 32;
constexpr std::size_t kBatchHelpersPerBatch = 7;

std::string to_regex(const std::string& path) {
    static const std::regex param(R"(\{[a-z_]+\})");
    return std::regex_replace(path, param, "([^/]+)");
}

}  // namespace

Result<std::vector<BatchRequest>> parse_batch(const json& body, const std::vector<std::string>& batchable) {
    auto invalid = [](std::string detail) { return make_error(ErrorCode::malformed, std::move(detail)); };
    Fields f(body);
    const json* list = f.get("requests", true);
    if (!f.done()) return invalid(f.error());
    if (!list->is_array() || list->empty() || list->size() > kBatchMax) {
        return invalid("field 'requests' must be an array of 1 to " + std::to_string(kBatchMax) + " requests");
    }
    std::vector<BatchRequest> out;
    for (std::size_t i = 0; i < list->size(); ++i) {
        const std::string at = "requests[" + std::to_string(i) + "]: ";
        Fields r((*list)[i]);
        auto path = r.text("path", 1, 64);
        const json* one = r.get("body", true);
        if (!r.done()) return invalid(at + r.error());
        if (!one->is_object()) return invalid(at + "field 'body' must be an object");
        if (std::find(batchable.begin(), batchable.end(), *path) == batchable.end()) {
            std::string paths;
            for (const auto& p : batchable) paths += (paths.empty() ? "" : ", ") + p;
            return invalid(at + "field 'path' must be one of " + paths);
        }
        out.push_back(BatchRequest{*path, one});
    }
    return out;
}

std::vector<RouteInfo> api_routes() {
    std::vector<RouteInfo> out;
    for (const auto& r : build_routes()) out.push_back(r.info);
    out.push_back(RouteInfo{"GET", "/metrics", anyone()});
    out.push_back(RouteInfo{"GET", "/openapi.json", anyone()});
    return out;
}

struct ApiServer::Impl {
    Service& service;
    Metrics& metrics;
    std::shared_ptr<spdlog::logger> log;
    std::unique_ptr<httplib::Server> server;
    RateLimiter per_identity;
    RateLimiter per_address;
    std::vector<Route> routes;
    std::vector<std::string> batchable;  // the paths POST /v1/batch may carry
    int listen_fd{-1};  // the listening socket, seen while httplib creates it
    BatchHelpers helpers{kBatchHelperThreads};

    Impl(Service& s, Metrics& m, std::shared_ptr<spdlog::logger> l)
        : service(s), metrics(m), log(std::move(l)),
          per_identity(static_cast<double>(s.config().rate_per_second), static_cast<double>(s.config().rate_burst)),
          per_address(4.0 * static_cast<double>(s.config().rate_per_second), 4.0 * static_cast<double>(s.config().rate_burst)),
          routes(build_routes()) {
        for (const Route& r : routes) {
            if (r.batchable) batchable.push_back(r.info.path);
        }
    }

    void write(httplib::Response& res, const Reply& reply) {
        res.status = reply.status;
        if (reply.retry_after_s > 0) res.set_header("Retry-After", std::to_string(reply.retry_after_s));
        res.set_header("Cache-Control", "no-store");
        res.set_content(reply.body.dump(), reply.ok() ? "application/json" : "application/problem+json");
    }

    void finish(const httplib::Request& req, httplib::Response& res, const std::string& route, const std::string& actor,
                std::chrono::steady_clock::time_point started) {
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
        metrics.add("credprov_http_requests_total",
                    labels({{"route", route}, {"method", req.method}, {"status", std::to_string(res.status)}}));
        metrics.observe_latency(route, seconds);
        if (log) {
            const json line{{"msg", "request"},     {"method", req.method},     {"route", route},
                            {"status", res.status}, {"ms", seconds * 1000.0},   {"actor", actor},
                            {"remote", req.remote_addr}};
            if (res.status >= 500) {
                log->error(line.dump());
            } else {
                log->info(line.dump());
            }
        }
    }

    // RFC 9110: every 401 names the schemes the route accepts.
    static void challenge(httplib::Response& res, const Access& access) {
        std::string schemes;
        if (!access.roles.empty()) schemes = "Bearer realm=\"credprov\"";
        if (access.provisioner) schemes += std::string(schemes.empty() ? "" : ", ") + std::string(kSignatureScheme);
        res.set_header("WWW-Authenticate", schemes);
    }
    static Reply storage_unavailable() {
        return Reply::problem(503, "storage-unavailable", "Storage is unavailable",
                              "the database did not answer; nothing was changed; retry later");
    }

    // POST /v1/batch (decision 0014): the requests in `body` run at once, in
    // no set order, each exactly as if it had come alone on a connection of
    // its own with this request's signature: its own transaction, audit
    // entries, answer and metrics.
    // The batch is checked as a whole first, so a malformed one runs nothing.
    Reply run_batch(const Caller& caller, const json& body, const httplib::Request& req) {
        auto parsed = parse_batch(body, batchable);
        if (!parsed) return Reply::problem(400, "invalid-request", "The request is not valid", parsed.error().message);
        std::vector<const Route*> targets;
        for (const BatchRequest& one : *parsed) {
            targets.push_back(&*std::find_if(routes.begin(), routes.end(),
                                             [&](const Route& r) { return r.batchable && r.info.path == one.path; }));
        }
        // The rate limit counts every request in the batch: the first was
        // charged when the batch came in, and is given back if the rest
        // cannot be (else a client waiting out Retry-After would spend each
        // refill on the batch's first request and never get through).
        if (targets.size() > 1) {
            const std::string key = "provisioner:" + caller.id;
            if (auto wait = per_identity.take(key, static_cast<double>(targets.size() - 1)); wait > 0) {
                per_identity.refund(key, 1.0);
                metrics.add("credprov_rate_limited_total");
                Reply r = Reply::problem(429, "rate-limited", "Too many requests", "slow down and retry after the indicated time");
                r.retry_after_s = wait;
                return r;
            }
        }
        std::vector<Reply> answers(targets.size());
        helpers.run(targets.size(), kBatchHelpersPerBatch, [&](std::size_t i) {
            Reply& one = answers[i];
            try {
                one = targets[i]->handler(service, caller, {}, *(*parsed)[i].body, req);
            } catch (const std::exception&) {
                one = Reply::problem(500, "internal", "Internal error", "the request could not be processed; nothing was changed");
            }
            metrics.add("credprov_batch_requests_total",
                        labels({{"route", targets[i]->info.path}, {"status", std::to_string(one.status)}}));
            if (one.status == 503 && log) log->error(json{{"msg", "storage failure"}, {"route", targets[i]->info.path}}.dump());
        });
        json responses = json::array();
        for (Reply& one : answers) responses.push_back(json{{"status", one.status}, {"body", std::move(one.body)}});
        return Reply::success(json{{"responses", std::move(responses)}});
    }

    void handle(const Route& route, const httplib::Request& req, httplib::Response& res) {
        const auto started = std::chrono::steady_clock::now();
        Caller caller;
        caller.remote = req.remote_addr;
        auto done = [&](const Reply& reply) {
            write(res, reply);
            finish(req, res, route.info.path, caller.actor(), started);
        };
        if (auto wait = per_address.take("ip:" + req.remote_addr); wait > 0) {
            metrics.add("credprov_rate_limited_total");
            Reply r = Reply::problem(429, "rate-limited", "Too many requests", "slow down and retry after the indicated time");
            r.retry_after_s = wait;
            return done(r);
        }
        // ---- authentication ----
        const std::string auth = req.get_header_value("Authorization");
        const Access& access = route.info.access;
        if (!access.anonymous) {
            if (auth.starts_with("Bearer ") && !access.roles.empty()) {
                auto c = service.authenticate_admin(std::string_view(auth).substr(7), req.remote_addr);
                if (!c && c.error().code == ErrorCode::storage) return done(storage_unavailable());
                if (!c) {
                    service.record_auth_failure("admin-token", req.remote_addr, c.error().message);
                    challenge(res, access);
                    return done(Reply::problem(401, "unauthenticated", "Authentication required", c.error().message));
                }
                caller = *c;
                if (std::find(access.roles.begin(), access.roles.end(), caller.role) == access.roles.end()) {
                    service.record_auth_failure("role", req.remote_addr,
                                                "role " + std::string(to_string(caller.role)) + " on " + route.info.path);
                    return done(Reply::problem(403, "forbidden", "Forbidden",
                                               "role " + std::string(to_string(caller.role)) + " may not call this endpoint"));
                }
            } else if (auth.starts_with(std::string(kSignatureScheme) + " ") && access.provisioner) {
                auto c = service.authenticate_provisioner(auth, req.method, req.target, req.body, req.remote_addr);
                if (!c && c.error().code == ErrorCode::storage) return done(storage_unavailable());
                if (!c) {
                    service.record_auth_failure("provisioner-signature", req.remote_addr, c.error().message);
                    const int status = c.error().code == ErrorCode::not_authorised ? 403 : 401;
                    if (status == 401) challenge(res, access);
                    return done(Reply::problem(status, status == 403 ? "forbidden" : "unauthenticated",
                                               status == 403 ? "Forbidden" : "Authentication required", c.error().message));
                }
                caller = *c;
            } else {
                service.record_auth_failure("missing", req.remote_addr, "no usable Authorization on " + route.info.path);
                std::string how = access.provisioner && access.roles.empty()
                                      ? "sign the request as an enrolled provisioner (Credprov-Signature)"
                                  : access.provisioner ? "use an admin bearer token or a provisioner signature"
                                                       : "use an admin bearer token (Authorization: Bearer cpa_...)";
                challenge(res, access);
                return done(Reply::problem(401, "unauthenticated", "Authentication required", how));
            }
            const std::string key = caller.kind == Caller::Kind::admin ? "admin:" + caller.id : "provisioner:" + caller.id;
            if (auto wait = per_identity.take(key); wait > 0) {
                metrics.add("credprov_rate_limited_total");
                Reply r = Reply::problem(429, "rate-limited", "Too many requests", "slow down and retry after the indicated time");
                r.retry_after_s = wait;
                return done(r);
            }
        }
        // ---- body ----
        json body = json::object();
        if (req.method == "POST" && !req.body.empty()) {
            std::string type = req.get_header_value("Content-Type");
            std::transform(type.begin(), type.end(), type.begin(), [](unsigned char ch) { return static_cast<char>(std::tolower(ch)); });
            if (!type.starts_with("application/json")) {
                return done(Reply::problem(415, "unsupported-media-type", "Unsupported media type",
                                           "send the body as application/json"));
            }
            body = json::parse(req.body, nullptr, false);
            if (body.is_discarded()) {
                return done(Reply::problem(400, "malformed-json", "The body is not valid JSON", "the request body does not parse as JSON"));
            }
        }
        Params params;
        for (std::size_t i = 1; i < req.matches.size(); ++i) params.push_back(req.matches[i].str());
        Reply reply;
        try {
            reply = route.handler ? route.handler(service, caller, params, body, req) : run_batch(caller, body, req);
        } catch (const std::exception&) {
            // nlohmann or the standard library threw on something unexpected:
            // refuse the request without echoing anything.
            reply = Reply::problem(500, "internal", "Internal error", "the request could not be processed; nothing was changed");
        }
        if (reply.status == 503 && log) log->error(json{{"msg", "storage failure"}, {"route", route.info.path}}.dump());
        done(reply);
    }
};

ApiServer::ApiServer(Service& service, Metrics& metrics, std::shared_ptr<spdlog::logger> log)
    : impl_(std::make_unique<Impl>(service, metrics, std::move(log))) {}

ApiServer::~ApiServer() { stop(); }

Status ApiServer::bind() {
    const BackendConfig& cfg = impl_->service.config();
    if (!cfg.tls_certificate.empty()) {
        const auto cert = cfg.resolve(cfg.tls_certificate).string();
        const auto key = cfg.resolve(cfg.tls_private_key).string();
        auto ssl = std::make_unique<httplib::SSLServer>(cert.c_str(), key.c_str());
        if (!ssl->is_valid()) {
            return make_error(ErrorCode::io, "cannot load the TLS certificate or private key (" + cert + ", " + key + ")");
        }
        impl_->server = std::move(ssl);
    } else {
        impl_->server = std::make_unique<httplib::Server>();
    }
    httplib::Server& s = *impl_->server;
    s.set_payload_max_length(cfg.max_body_bytes);
    s.set_read_timeout(10, 0);
    s.set_write_timeout(10, 0);
    // Answers go out as headers and body in separate writes: with Nagle's
    // algorithm a kept-alive client's delayed ACK holds the body back 40 ms.
    s.set_tcp_nodelay(true);
    s.new_task_queue = [n = cfg.threads] { return new httplib::ThreadPool(n); };
    // A core network keeps its connections open; every reconnection costs
    // a handshake.
    s.set_keep_alive_max_count(kKeepAliveRequests);
    // httplib listens with a backlog of 5: a burst of new connections (a
    // fleet of provisioners after an outage) overflows it, their SYNs are
    // dropped and retried a second later. Keep the listening socket to
    // widen its backlog once bound (listen() again only resizes the queue).
    s.set_socket_options([impl = impl_.get()](int fd) {
        const int one = 1;
        ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        impl->listen_fd = fd;
    });
    Impl* impl = impl_.get();
    for (const Route& route : impl->routes) {
        const Route* rp = &route;
        auto h = [impl, rp](const httplib::Request& req, httplib::Response& res) { impl->handle(*rp, req, res); };
        const std::string pattern = to_regex(route.info.path);
        if (route.info.method == "GET") s.Get(pattern, h);
        else if (route.info.method == "POST") s.Post(pattern, h);
        else if (route.info.method == "DELETE") s.Delete(pattern, h);
    }
    s.Get("/metrics", [impl](const httplib::Request& req, httplib::Response& res) {
        const auto started = std::chrono::steady_clock::now();
        res.status = 200;
        res.set_header("Cache-Control", "no-store");
        res.set_content(impl->metrics.render(impl->service.gauges()), "text/plain; version=0.0.4; charset=utf-8");
        impl->finish(req, res, "/metrics", "anonymous", started);
    });
    s.Get("/openapi.json", [impl](const httplib::Request& req, httplib::Response& res) {
        const auto started = std::chrono::steady_clock::now();
        res.status = 200;
        res.set_header("Cache-Control", "no-cache");
        res.set_content(std::string(openapi_document()), "application/json");
        impl->finish(req, res, "/openapi.json", "anonymous", started);
    });
    // Whatever httplib answers by itself (unknown route, oversized body,
    // bad request line) is a problem document too.
    s.set_error_handler([](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty()) return;
        std::string slug = "http-" + std::to_string(res.status), detail = "the request was refused";
        if (res.status == 404) slug = "not-found", detail = "no such endpoint; see /openapi.json";
        if (res.status == 413) slug = "payload-too-large", detail = "the request body is larger than the server accepts";
        if (res.status == 400) slug = "invalid-request", detail = "the HTTP request is malformed";
        const Reply r = Reply::problem(res.status, slug, res.status == 413 ? "Payload too large" : "Request refused", detail);
        res.set_header("Cache-Control", "no-store");
        res.set_content(r.body.dump(), "application/problem+json");
    });
    const int port = cfg.port == 0 ? s.bind_to_any_port(cfg.listen) : (s.bind_to_port(cfg.listen, cfg.port) ? cfg.port : -1);
    if (port <= 0) {
        return make_error(ErrorCode::io, "cannot listen on " + cfg.listen + ":" + std::to_string(cfg.port) +
                                             " (address in use, or not an address of this host)");
    }
    if (impl_->listen_fd >= 0) ::listen(impl_->listen_fd, SOMAXCONN);
    port_ = port;
    return {};
}

bool ApiServer::run() { return impl_->server && impl_->server->listen_after_bind(); }

void ApiServer::stop() {
    if (impl_ && impl_->server) impl_->server->stop();
}

}  // namespace credprov::backend
