// Known-answer test data committed as "name: hex" lines ('#' comments and
// blank lines ignored) in tests/vectors/, read by the KAT tests.
#pragma once

#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <string>

#include "credprov/protocol/bytes.hpp"

namespace credprov::testing {

inline std::map<std::string, Bytes> load_vector_file(const std::string& file) {
    std::map<std::string, Bytes> out;
    std::ifstream in(std::string(CREDPROV_TEST_VECTORS_DIR) + "/" + file);
    REQUIRE_MESSAGE(in.good(), "cannot open " << file);
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        const auto colon = line.find(':');
        REQUIRE(colon != std::string::npos);
        const auto value_at = line.find_first_not_of(' ', colon + 1);
        REQUIRE(value_at != std::string::npos);
        Bytes value;
        REQUIRE_MESSAGE(from_hex(std::string_view(line).substr(value_at), value), "bad hex for " << line.substr(0, colon));
        out.emplace(line.substr(0, colon), std::move(value));
    }
    return out;
}

}  // namespace credprov::testing
