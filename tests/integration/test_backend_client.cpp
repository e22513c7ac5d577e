// The provisioner's HTTP client (CLI and app) against a real backend: one
// kept connection for a session's requests, and a connection the backend
// closed while idle is opened again without the caller seeing it.
#include <thread>

#include "backend_flows.hpp"
#include "backend_test.hpp"
#include "credprov/provisioner/backend_client.hpp"

using namespace credprov;
using namespace credprov::testing;

TEST_CASE("provisioner backend client: requests after the backend closed the idle kept connection still get answers") {
    BackendLab lab(Storage::sqlite);
    Technician tech(lab);
    SimDevice dev(lab.trust());
    lab.import_device(dev.identity);
    provisioner::BackendClient client("http://127.0.0.1:" + std::to_string(lab.port), "", &tech.key, 10);
    const json ask{{"device_id", dev.identity.id.to_string()}, {"operations", {"deliver-sealed", "query"}}, {"ttl_s", 600}};
    auto first = client.post("/v1/tokens", ask);
    REQUIRE_MESSAGE(first.status == 201, first.describe());
    auto minted = client.post("/v1/bundles", json{{"device", BackendLab::device_json(dev.identity)}});
    REQUIRE_MESSAGE(minted.status == 201, minted.describe());
    // The backend closes a connection idle for 5 s (cpp-httplib's keep-alive
    // timeout); the delivery to the device may well take longer.
    std::this_thread::sleep_for(std::chrono::milliseconds(5500));
    auto again = client.post("/v1/bundles", json{{"device", BackendLab::device_json(dev.identity)}});
    REQUIRE_MESSAGE(again.reachable, again.describe());
    CHECK(again.status == 200);  // the same pending bundle, idempotently
    CHECK(again.body["object_id"] == minted.body["object_id"]);
    auto op = client.get("/v1/operator");
    CHECK(op.status == 200);
}
