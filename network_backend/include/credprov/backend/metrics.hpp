// Counters and a latency histogram, rendered in the Prometheus text
// exposition format (version 0.0.4) for /metrics. Thread-safe. Label values
// are route templates and outcome names chosen by the service, never user
// input (bounded cardinality, nothing secret).
#pragma once

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

namespace credprov::backend {

class Metrics {
public:
    // Counter `name` with a rendered label set such as  route="/v1/tokens",status="200".
    void add(const std::string& name, const std::string& labels = {}, double by = 1.0);
    void observe_latency(const std::string& route, double seconds);
    [[nodiscard]] double value(const std::string& name, const std::string& labels = {}) const;

    struct Gauge {
        std::string name;
        std::string help;
        std::vector<std::pair<std::string, double>> samples;  // labels, value
    };
    // Renders every counter, the histogram and the gauges the caller measured.
    [[nodiscard]] std::string render(const std::vector<Gauge>& gauges) const;

    static void describe(const std::string& name, const std::string& help);

private:
    struct Histogram {
        std::vector<std::uint64_t> buckets;
        std::uint64_t count{0};
        double sum{0};
    };
    mutable std::mutex m_;
    std::map<std::string, std::map<std::string, double>> counters_;
    std::map<std::string, Histogram> latency_;
};

// "key=\"value\"" pairs joined by commas; values must be service-chosen.
[[nodiscard]] std::string labels(std::initializer_list<std::pair<std::string_view, std::string_view>> kv);

}  // namespace credprov::backend
