// BACKEND_TEST runs one test body against a fresh backend on SQLite and
// again on PostgreSQL. Without a PostgreSQL server (CREDPROV_TEST_POSTGRES_URL
// unset) the PostgreSQL variant fails in CI and is reported as not run
// elsewhere, so CI can never silently skip it.
#pragma once

#include <doctest/doctest.h>

#include "backend_flows.hpp"

namespace credprov::testing {

inline bool postgres_available_or_report() {
    if (postgres_url()) return true;
    const char* ci = std::getenv("CI");
    if (ci != nullptr && std::string(ci) == "true") {
        FAIL("CREDPROV_TEST_POSTGRES_URL is not set: scripts/test starts PostgreSQL for these tests");
    }
    MESSAGE("PostgreSQL variant not run: CREDPROV_TEST_POSTGRES_URL is not set (run through scripts/test)");
    return false;
}

}  // namespace credprov::testing

#define CREDPROV_BACKEND_TEST_IMPL(fn, title, opts)                                                   \
    static void fn(::credprov::testing::BackendLab& lab);                                             \
    TEST_CASE("backend/sqlite: " title) {                                                             \
        ::credprov::testing::BackendLab lab(::credprov::testing::Storage::sqlite, opts);              \
        fn(lab);                                                                                      \
    }                                                                                                 \
    TEST_CASE("backend/postgresql: " title) {                                                         \
        if (!::credprov::testing::postgres_available_or_report()) return;                             \
        ::credprov::testing::BackendLab lab(::credprov::testing::Storage::postgres, opts);            \
        fn(lab);                                                                                      \
    }                                                                                                 \
    static void fn(::credprov::testing::BackendLab& lab)

#define BACKEND_TEST_WITH(fn, title, opts) CREDPROV_BACKEND_TEST_IMPL(fn, title, opts)
#define BACKEND_TEST(fn, title) CREDPROV_BACKEND_TEST_IMPL(fn, title, ::credprov::testing::LabOptions{})
