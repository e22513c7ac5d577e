// What every benchmark prints and how it summarises timings: one line per
// figure, "BENCH <name> <value> <unit>", which scripts/bench and CI read.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

namespace credprov::bench {

inline void print(const char* name, double value, const char* unit) {
    std::printf("BENCH %s %.6g %s\n", name, value, unit);
    std::fflush(stdout);
}

// The p-quantile (0..1) of `v`, nearest rank; 0 for no sample.
inline double percentile(std::vector<double> v, double p) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

template <typename Duration>
double ms(Duration d) {
    return std::chrono::duration<double, std::milli>(d).count();
}
template <typename Duration>
double seconds(Duration d) {
    return std::chrono::duration<double>(d).count();
}

}  // namespace credprov::bench
