// Prometheus text exposition of the backend's counters (see metrics.hpp).
#include "credprov/backend/metrics.hpp"

#include <array>
#include <sstream>

namespace credprov::backend {
namespace {

constexpr std::array<double, 10> kBounds{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0};

std::map<std::string, std::string>& help_texts() {
    static std::map<std::string, std::string> h{
        {"credprov_http_requests_total", "HTTP requests by route template, method and status."},
        {"credprov_batch_requests_total", "Requests inside POST /v1/batch, by route template and status."},
        {"credprov_registrations_total", "Subscribers activated by a valid device receipt, by mode."},
        {"credprov_bundles_issued_total", "Sealed credential bundles minted (pending subscribers)."},
        {"credprov_deprovisionings_total", "Subscribers deprovisioned through the network."},
        {"credprov_auth_failures_total", "Rejected authentications (admin tokens, provisioner signatures, AKA), by kind."},
        {"credprov_rate_limited_total", "Requests refused by the per-identity rate limit."},
        {"credprov_field_alarms_total", "Second receipts for an already used field authorisation."},
        {"credprov_expired_total", "Pending subscribers and field authorisations that expired."},
        {"credprov_vectors_issued_total", "AKA authentication vectors generated."},
        {"credprov_attach_total", "Attach checks by verdict."},
    };
    return h;
}

std::string fmt(double v) {
    std::ostringstream o;
    o.precision(12);
    o << v;
    return o.str();
}

}  // namespace

std::string labels(std::initializer_list<std::pair<std::string_view, std::string_view>> kv) {
    std::string out;
    for (const auto& [k, v] : kv) {
        if (!out.empty()) out += ',';
        out += k;
        out += "=\"";
        for (const char c : v) {
            if (c == '"' || c == '\\') out += '\\';
            if (c == '\n') {
                out += "\\n";
                continue;
            }
            out += c;
        }
        out += '"';
    }
    return out;
}

void Metrics::describe(const std::string& name, const std::string& help) { help_texts()[name] = help; }

void Metrics::add(const std::string& name, const std::string& label_set, double by) {
    std::lock_guard lock(m_);
    counters_[name][label_set] += by;
}

double Metrics::value(const std::string& name, const std::string& label_set) const {
    std::lock_guard lock(m_);
    auto it = counters_.find(name);
    if (it == counters_.end()) return 0;
    auto jt = it->second.find(label_set);
    return jt == it->second.end() ? 0 : jt->second;
}

void Metrics::observe_latency(const std::string& route, double seconds) {
    std::lock_guard lock(m_);
    Histogram& h = latency_[route];
    if (h.buckets.empty()) h.buckets.assign(kBounds.size(), 0);
    for (std::size_t i = 0; i < kBounds.size(); ++i) {
        if (seconds <= kBounds[i]) ++h.buckets[i];
    }
    ++h.count;
    h.sum += seconds;
}

std::string Metrics::render(const std::vector<Gauge>& gauges) const {
    std::ostringstream o;
    std::lock_guard lock(m_);
    // Every known counter is exposed, at zero until it moves, so dashboards
    // and alerts see it from the first scrape.
    for (const auto& [name, help] : help_texts()) {
        o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << " counter\n";
        auto it = counters_.find(name);
        if (it == counters_.end() || it->second.empty()) {
            o << name << " 0\n";
            continue;
        }
        for (const auto& [ls, v] : it->second) {
            o << name;
            if (!ls.empty()) o << '{' << ls << '}';
            o << ' ' << fmt(v) << '\n';
        }
    }
    const std::string h = "credprov_http_request_duration_seconds";
    o << "# HELP " << h << " HTTP request latency by route template.\n# TYPE " << h << " histogram\n";
    for (const auto& [route, hist] : latency_) {
        const std::string rl = labels({{"route", route}});
        for (std::size_t i = 0; i < kBounds.size(); ++i) {
            o << h << "_bucket{" << rl << ",le=\"" << fmt(kBounds[i]) << "\"} " << hist.buckets[i] << '\n';
        }
        o << h << "_bucket{" << rl << ",le=\"+Inf\"} " << hist.count << '\n';
        o << h << "_sum{" << rl << "} " << fmt(hist.sum) << '\n';
        o << h << "_count{" << rl << "} " << hist.count << '\n';
    }
    for (const Gauge& g : gauges) {
        o << "# HELP " << g.name << ' ' << g.help << "\n# TYPE " << g.name << " gauge\n";
        for (const auto& [ls, v] : g.samples) {
            o << g.name;
            if (!ls.empty()) o << '{' << ls << '}';
            o << ' ' << fmt(v) << '\n';
        }
    }
    return o.str();
}

}  // namespace credprov::backend
