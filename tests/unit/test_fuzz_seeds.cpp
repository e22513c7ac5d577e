// Generates the seed corpora of the decoder fuzzers (protocol/fuzz/corpus/):
// with CREDPROV_WRITE_SEEDS=<dir> set, writes <dir>/messages/,
// <dir>/signed_objects/ and <dir>/device_session/; without it, writes nothing
// and only checks that the seeds can be built.
//
//   CREDPROV_WRITE_SEEDS=protocol/fuzz/corpus ./build/tests/credprov_unit_tests -tc='fuzz seeds*'
#include <doctest/doctest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "codec_samples.hpp"

using namespace credprov;
namespace samples = credprov::testing::samples;
using credprov::testing::kNow;

namespace {

struct Seed {
    std::string family;
    std::string name;
    Bytes bytes;
};

// Real handshakes between a provisioner and the fixed device of the
// device-session fuzzer. The device's CPace share is random, so only M1
// replays meaningfully; later messages still reach their decoders.
std::vector<Seed> device_session_seeds() {
    const auto& k = samples::keys();
    std::vector<Seed> out;
    Bytes an_m3;
    for (bool keys_known : {true, false}) {
        testing::MemoryDeviceHost host;
        DeviceSession device(k.device, samples::fixed_trust(), host, samples::fixed_code(), TransportType::loopback,
                             kNow);
        ProvisionerSetup setup;
        setup.device = k.device.id;
        setup.transport = TransportType::loopback;
        setup.key = &k.provisioner;
        setup.token = samples::token();
        setup.operator_certificate = samples::certificate();
        if (keys_known) setup.device_keys = KnownDeviceKeys{k.device.identity.public_key, k.device.box.public_key, std::nullopt};
        setup.now = kNow;
        ProvisionerSession prov(std::move(setup), samples::fixed_code());

        auto m1 = prov.start();
        REQUIRE(m1.ok());
        auto m2 = device.handle(*m1);
        REQUIRE_FALSE(m2.error.has_value());
        REQUIRE(prov.read_pair_response(m2.reply).ok());
        auto m3 = prov.authorise(Request{Operation::deliver_sealed, samples::bundle()});
        REQUIRE(m3.ok());
        auto m4 = device.handle(*m3);
        REQUIRE_FALSE(m4.error.has_value());
        auto resp = prov.read_response(m4.reply);
        REQUIRE(resp.ok());
        auto m5 = prov.request(Request{Operation::query, std::nullopt});
        REQUIRE(m5.ok());

        an_m3 = *m3;
        const std::string tag = keys_known ? "" : "_keys_unknown";
        Bytes one;
        samples::append_framed(one, *m1);
        out.push_back({"device_session", "m1" + tag, one});
        Bytes two = one;
        samples::append_framed(two, *m3);
        out.push_back({"device_session", "m1_m3" + tag, two});
        Bytes three = two;
        append(three, *m5);
        out.push_back({"device_session", "m1_m3_m5" + tag, three});
    }
    // A session the device must refuse early: an M3 first, and an error message.
    out.push_back({"device_session", "authorise_first", an_m3});
    out.push_back({"device_session", "error_message", ErrorMessage{ErrorCode::backoff, 30}.encode()});
    return out;
}

}  // namespace

TEST_CASE("fuzz seeds: written to $CREDPROV_WRITE_SEEDS only when it is set") {
    std::vector<Seed> seeds;
    for (auto& s : samples::all_samples()) seeds.push_back({s.family, s.name, std::move(s.bytes)});
    for (auto& s : device_session_seeds()) seeds.push_back(std::move(s));
    CHECK(seeds.size() > 40);

    // The session input splitter gives back the messages a seed was framed from.
    const auto parts = samples::split_session_input(seeds[seeds.size() - 3].bytes);  // m1_m3_m5_keys_unknown
    CHECK(parts.size() == 3);

    const char* dir = std::getenv("CREDPROV_WRITE_SEEDS");
    if (dir == nullptr || *dir == '\0') return;
    namespace fs = std::filesystem;
    for (const auto& s : seeds) {
        const fs::path family = fs::path(dir) / s.family;
        fs::create_directories(family);
        std::ofstream f(family / s.name, std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char*>(s.bytes.data()), static_cast<std::streamsize>(s.bytes.size()));
        REQUIRE(f.good());
    }
    MESSAGE("wrote ", seeds.size(), " seeds under ", dir);
}
