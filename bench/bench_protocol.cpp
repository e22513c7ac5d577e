// Protocol benchmark: round trips, bytes and CPU per provisioning.
//
// The measured flow is the common sealed case: an unowned device whose keys
// the provisioner knows (label + backend inventory), a root-certified
// operator, a sealed bundle fetched before the link came up, no manufacturer
// attestation. Prints "BENCH <name> <value> <unit>" lines.
//
//   bench_protocol [--short] [--iterations N]
//
// CPU time is thread CPU time (CLOCK_THREAD_CPUTIME_ID) spent inside each
// role's protocol calls. The floor is the same list of libsodium primitive
// calls the flow needs, on buffers of the same sizes, without any protocol
// code around them; overhead_ratio = (device + provisioner) / floor.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include <sodium.h>

#include "credprov/protocol/framing.hpp"
#include "flow.hpp"
#include "bench_figures.hpp"

using credprov::bench::print;

using namespace credprov;
using namespace credprov::testing;

namespace {

double thread_cpu_us() {
    timespec ts{};
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return static_cast<double>(ts.tv_sec) * 1e6 + static_cast<double>(ts.tv_nsec) / 1e3;
}

struct Timer {
    double& acc;
    double start = thread_cpu_us();
    ~Timer() { acc += thread_cpu_us() - start; }
};

struct Sample {
    double device_us{0};
    double provisioner_us{0};
    std::vector<std::size_t> sizes;
    int round_trips{0};
};

// One complete provisioning with per-role CPU accounting. Setup work that
// happens before the link (token, bundle, certificate issued by the backend)
// is outside both figures.
Sample provision_once(bool keys_known) {
    World w;
    auto token = w.token();
    auto bundle = w.bundle();
    Sample s;
    auto setup = w.setup(token, keys_known);
    setup.transport = TransportType::ble;
    std::optional<ProvisionerSession> p;
    std::optional<DeviceSession> d;
    {
        Timer t{s.provisioner_us};
        p.emplace(std::move(setup), w.code);
    }
    {
        Timer t{s.device_us};
        d.emplace(w.device, w.trust, w.host, w.code, TransportType::ble);
    }
    Bytes m1, m2, m3, m4;
    {
        Timer t{s.provisioner_us};
        m1 = p->start().value();
    }
    {
        Timer t{s.device_us};
        m2 = d->handle(m1).reply;
    }
    ++s.round_trips;
    {
        Timer t{s.provisioner_us};
        if (!p->read_pair_response(m2)) std::abort();
        m3 = p->authorise(deliver(bundle)).value();
    }
    {
        Timer t{s.device_us};
        m4 = d->handle(m3).reply;
    }
    ++s.round_trips;
    {
        Timer t{s.provisioner_us};
        auto r = p->read_response(m4);
        if (!r || !r->receipt) std::abort();
    }
    s.sizes = {m1.size(), m2.size(), m3.size(), m4.size()};
    return s;
}

// The libsodium primitives one provisioning needs, both roles together.
double floor_once() {
    static std::vector<std::uint8_t> msg(700, 0x5a);
    unsigned char sk[64], pk[32], sig[64], sig200[64], seed[32], h[64], g[32], y[32], Y[32], K[32], key[32], n[12] = {};
    unsigned char ct[800];
    unsigned long long clen = 0;
    randombytes_buf(seed, sizeof seed);
    crypto_sign_seed_keypair(pk, sk, seed);
    crypto_sign_detached(sig200, nullptr, msg.data(), 200, sk);
    const double start = thread_cpu_us();
    for (int role = 0; role < 2; ++role) {
        // CPace: generator, share, shared point, ISK, confirmation key.
        crypto_hash_sha512(h, msg.data(), 160);
        crypto_core_ristretto255_from_hash(g, h);
        crypto_core_ristretto255_scalar_random(y);
        if (crypto_scalarmult_ristretto255(Y, y, g) != 0) std::abort();
        if (crypto_scalarmult_ristretto255(K, y, Y) != 0) std::abort();
        crypto_hash_sha512(h, msg.data(), 180);  // ISK
        crypto_hash_sha512(h, msg.data(), 96);   // mac key
        // Ta and Tb, HKDF extract + two expands, transcript hash.
        for (int i = 0; i < 5; ++i) crypto_auth_hmacsha512(h, msg.data(), 64, key);
        crypto_hash_sha512(h, msg.data(), 200);
    }
    // Provisioner: sign transcript, seal M3, open M4, verify device signature and receipt.
    crypto_sign_detached(sig, nullptr, msg.data(), 160, sk);
    crypto_aead_chacha20poly1305_ietf_encrypt(ct, &clen, msg.data(), 640, n, 1, nullptr, n, key);
    crypto_aead_chacha20poly1305_ietf_encrypt(ct, &clen, msg.data(), 150, n, 1, nullptr, n, key);  // open ~ same cost
    for (int i = 0; i < 2; ++i) {
        if (crypto_sign_verify_detached(sig, msg.data(), 160, pk) != 0) std::abort();
    }
    crypto_hash_sha512(h, msg.data(), 260);  // bundle hash for the receipt
    // Device: open M3; verify certificate, token, provisioner signature,
    // bundle; open the sealed keys; sign receipt and transcript; seal M4.
    crypto_aead_chacha20poly1305_ietf_encrypt(ct, &clen, msg.data(), 640, n, 1, nullptr, n, key);
    for (int i = 0; i < 4; ++i) {
        if (crypto_sign_verify_detached(sig200, msg.data(), 200, pk) != 0) std::abort();
    }
    if (crypto_scalarmult_curve25519(K, y, g) != 0) std::abort();
    crypto_hash_sha512(h, msg.data(), 200);
    for (int i = 0; i < 3; ++i) crypto_auth_hmacsha512(h, msg.data(), 64, key);
    crypto_aead_chacha20poly1305_ietf_encrypt(ct, &clen, msg.data(), 32, msg.data(), 200, nullptr, n, key);
    crypto_hash_sha512(h, msg.data(), 260);
    crypto_sign_detached(sig, nullptr, msg.data(), 200, sk);
    crypto_sign_detached(sig, nullptr, msg.data(), 160, sk);
    crypto_aead_chacha20poly1305_ietf_encrypt(ct, &clen, msg.data(), 150, n, 1, nullptr, n, key);
    return thread_cpu_us() - start;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}


}  // namespace

int main(int argc, char** argv) {
    int iterations = 300;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--short") iterations = 5;
        else if (a == "--iterations" && i + 1 < argc) iterations = std::max(1, std::atoi(argv[++i]));
        else if (a == "-h" || a == "--help") {
            std::puts("usage: bench_protocol [--short] [--iterations N]\n"
                      "Prints BENCH lines: round trips, bytes and CPU per provisioning.");
            return 0;
        } else {
            std::fprintf(stderr, "bench_protocol: unknown argument '%s' (try --help)\n", a.c_str());
            return 2;
        }
    }
    if (sodium_init() < 0) return 1;

    (void)provision_once(true);  // warm-up
    std::vector<double> dev, prov, flo;
    Sample last;
    for (int i = 0; i < iterations; ++i) {
        last = provision_once(true);
        dev.push_back(last.device_us);
        prov.push_back(last.provisioner_us);
        flo.push_back(floor_once());
    }
    std::size_t total = 0;
    std::size_t framing_stream = 0;
    std::size_t framing_ble = 0;
    for (auto n : last.sizes) {
        total += n;
        framing_stream += kStreamPrefixSize;
        framing_ble += framing_overhead(n, 185 - 3);  // ATT MTU 185 minus the 3-byte ATT header
    }
    const Sample unknown = provision_once(false);
    std::size_t total_unknown = 0;
    for (auto n : unknown.sizes) total_unknown += n;

    const double d = median(dev), p = median(prov), f = median(flo);
    print("protocol.round_trips", last.round_trips, "round-trips");
    print("protocol.bytes_total", static_cast<double>(total), "bytes");
    for (std::size_t i = 0; i < last.sizes.size(); ++i) {
        const std::string name = "protocol.bytes_m" + std::to_string(i + 1);
        print(name.c_str(), static_cast<double>(last.sizes[i]), "bytes");
    }
    print("protocol.bytes_total.keys_in_m2", static_cast<double>(total_unknown), "bytes");
    print("protocol.bytes_framing", static_cast<double>(framing_stream), "bytes");
    print("protocol.bytes_framing.ble_mtu185", static_cast<double>(framing_ble), "bytes");
    print("protocol.cpu_us.device", d, "us");
    print("protocol.cpu_us.provisioner", p, "us");
    print("protocol.cpu_us.floor", f, "us");
    print("protocol.overhead_ratio", (d + p) / f, "ratio");
    return 0;
}
