// libFuzzer harness for everything the backend decodes from a request: the
// JSON body (nlohmann), the strict field readers behind every endpoint, the
// base64 and CBOR inside them, and the provisioner signature header.
//
// Input: one selector byte (which endpoint), then the body text. The service
// runs on an in-memory SQLite database migrated once; the harness checks that
// nothing crashes, that every refusal is a well-formed problem (4xx/5xx with
// a string detail) and that success answers are JSON objects.
// Must never touch the file system or the network.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "credprov/backend/http_api.hpp"
#include "credprov/backend/request_auth.hpp"
#include "credprov/backend/service.hpp"

using namespace credprov;
using namespace credprov::backend;

namespace {

void require(bool condition) {
    if (!condition) std::abort();
}

struct Fixture {
    std::unique_ptr<Database> db;
    Metrics metrics;
    std::unique_ptr<Service> service;
    Caller admin;
    Caller provisioner;

    Fixture() {
        BackendConfig cfg;
        cfg.allow_plain_http = true;
        db = std::move(Database::open("sqlite::memory:", 1)).value();
        require(db->migrate().ok());
        KeySeeds seeds = KeySeeds::random();
        OperatorKeyring ring{OperatorIdentity::from_seeds(seeds, "Fuzz Operator"), {}};
        service = std::make_unique<Service>(cfg, *db, std::move(ring), DataKey::random(), metrics,
                                            [] { return std::uint64_t{1'800'000'000}; });
        admin.kind = Caller::Kind::local;
        admin.id = "fuzz";
        provisioner.kind = Caller::Kind::provisioner;
        provisioner.id = "prv_fuzz";
        Provisioner p;
        p.id = "prv_fuzz";
        p.name = "fuzz";
        p.key = crypto::generate_signing_key().public_key;
        p.operations = {Operation::query, Operation::deliver_sealed, Operation::deliver_field, Operation::deprovision};
        provisioner.provisioner = p;
    }
};

void check(const Reply& r) {
    require(r.body.is_object());
    if (!r.ok()) {
        require(r.status >= 400 && r.status < 600);
        require(r.body.contains("detail") && r.body["detail"].is_string());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static Fixture f;
    if (size == 0) return 0;
    const std::uint8_t selector = data[0];
    const std::string text(reinterpret_cast<const char*>(data + 1), size - 1);
    // The signature header parser sees the raw text too.
    if (auto sig = parse_signature_header(text); sig) (void)verify_request(*sig, "POST", "/v1/tokens", text);
    json body = json::parse(text, nullptr, false);
    if (body.is_discarded()) return 0;
    Service& s = *f.service;
    switch (selector % 18) {
        case 0: check(s.enrol_provisioner(f.admin, body)); break;
        case 1: check(s.import_inventory(f.admin, body)); break;
        case 2: check(s.create_admin_token(f.admin, body)); break;
        case 3: check(s.add_manufacturer(f.admin, body)); break;
        case 4: check(s.issue_token(f.provisioner, body)); break;
        case 5: check(s.mint_bundle(f.provisioner, body)); break;
        case 6: check(s.submit_receipt(f.provisioner, body)); break;
        case 7: check(s.reserve_field_pool(f.provisioner, body)); break;
        case 8: check(s.attach_challenge(f.admin, body)); break;
        case 9: check(s.attach_response(f.admin, body)); break;
        case 10: check(s.vectors(f.admin, body.is_object() ? body.value("imsi", std::string("001010000000001")) : "x", body)); break;
        case 11: check(s.resync(f.admin, "001010000000001", body)); break;
        case 12: check(s.deprovision_device(f.admin, body.is_object() ? body.value("device", std::string("x")) : "x", body)); break;
        case 13: check(s.create_enrolment_token(f.admin, body)); break;
        case 14: check(s.enrol_with_token(f.admin, body)); break;
        case 15: check(s.vectors_batch(f.admin, body)); break;
        case 16: {
            // POST /v1/batch's envelope: every accepted request is a
            // batchable path with an object body inside `body`.
            const std::vector<std::string> batchable{"/v1/tokens", "/v1/bundles", "/v1/receipts"};
            if (auto parsed = parse_batch(body, batchable)) {
                require(!parsed->empty() && parsed->size() <= kBatchMax);
                for (const auto& one : *parsed) {
                    require(std::find(batchable.begin(), batchable.end(), one.path) != batchable.end());
                    require(one.body != nullptr && one.body->is_object());
                }
            }
            break;
        }
        default: check(s.revoke_provisioner(f.admin, "prv_fuzz", body)); break;
    }
    return 0;
}
