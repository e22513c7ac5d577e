// Provisioning flows against a BackendLab: a simulated device (the real
// DeviceSession over an in-memory host, the test double of the agent's
// store) and a provisioner that asks the real backend for tokens and bundles
// and hands receipts back. The two sessions exchange messages in memory; the
// backend calls are real HTTP.
#pragma once

#include "backend_lab.hpp"
#include "credprov/aka/usim.hpp"

namespace credprov::testing {

struct SimDevice {
    DeviceIdentity identity = DeviceIdentity::generate();
    MemoryDeviceHost host;
    SetupCode code = std::move(SetupCode::parse("2468013579")).value();
    DeviceTrust trust;
    explicit SimDevice(DeviceTrust t) : trust(std::move(t)) {}
};

struct Technician {
    BackendLab& lab;
    crypto::SigningKey key = crypto::generate_signing_key();
    std::string id;

    explicit Technician(BackendLab& l, std::vector<std::string> ops = {"query", "deliver-sealed", "deliver-field", "deprovision"})
        : lab(l) {
        id = lab.enrol(key, std::move(ops));
    }

    Resp post(const std::string& path, const json& body) { return post_at(0, path, body); }
    // The same requests to node n of the lab (0: its own server; see BackendLab::add_node).
    Resp post_at(std::size_t n, const std::string& path, const json& body) { return lab.signed_at(n, key, "POST", path, body); }

    std::optional<SignedObject> token(const DeviceId& d, std::vector<std::string> ops = {"deliver-sealed", "query"}) {
        return token_at(0, d, std::move(ops));
    }
    std::optional<SignedObject> token_at(std::size_t n, const DeviceId& d,
                                         std::vector<std::string> ops = {"deliver-sealed", "query"}) {
        auto r = post_at(n, "/v1/tokens", json{{"device_id", d.to_string()}, {"operations", ops}, {"ttl_s", 600}});
        if (r.status != 201) return std::nullopt;
        return SignedObject::decode(*backend::base64_decode(r.body["token"].get<std::string>())).value();
    }
    Resp mint(const SimDevice& d) { return mint_at(0, d); }
    Resp mint_at(std::size_t n, const SimDevice& d) {
        return post_at(n, "/v1/bundles", json{{"device", BackendLab::device_json(d.identity)}});
    }

    // Pair and run one request against the simulated device.
    Result<Response> deliver(SimDevice& d, const SignedObject& token, Request req, std::uint64_t modes = kModeSealed) {
        ProvisionerSetup s;
        s.device = d.identity.id;
        s.transport = TransportType::loopback;
        s.key = &key;
        s.token = token;
        s.operator_certificate = lab.certificate;
        s.device_keys = KnownDeviceKeys{d.identity.identity.public_key, d.identity.box.public_key, std::nullopt};
        s.modes = modes;
        s.now = static_cast<std::uint64_t>(std::time(nullptr));
        ProvisionerSession p(std::move(s), d.code);
        DeviceSession ds(d.identity, d.trust, d.host, d.code, TransportType::loopback);
        auto m1 = p.start();
        if (!m1) return m1.error();
        auto m2 = ds.handle(*m1);
        if (auto st = p.read_pair_response(m2.reply); !st) return st.error();
        auto m3 = p.authorise(std::move(req));
        if (!m3) return m3.error();
        auto m4 = ds.handle(*m3);
        return p.read_response(m4.reply);
    }

    // The whole sealed registration: token, bundle, delivery, receipt.
    struct Registration {
        Resp minted;
        Resp receipt;
        std::string imsi;
        std::string object_id;
        std::optional<Receipt> device_receipt;
    };
    Registration register_sealed(SimDevice& d) {
        Registration out;
        auto tok = token(d.identity.id);
        if (!tok) return out;
        out.minted = mint(d);
        if (out.minted.status != 201 && out.minted.status != 200) return out;
        out.imsi = out.minted.body["imsi"].get<std::string>();
        out.object_id = out.minted.body["object_id"].get<std::string>();
        auto bundle = SignedObject::decode(*backend::base64_decode(out.minted.body["bundle"].get<std::string>())).value();
        auto resp = deliver(d, *tok, Request{Operation::deliver_sealed, bundle});
        if (!resp || !resp->receipt) return out;
        out.device_receipt = resp->receipt;
        out.receipt = submit(out.object_id, *resp->receipt);
        return out;
    }
    Resp submit(const std::string& object_id, const Receipt& r, std::optional<json> device = std::nullopt) {
        return submit_at(0, object_id, r, std::move(device));
    }
    Resp submit_at(std::size_t n, const std::string& object_id, const Receipt& r, std::optional<json> device = std::nullopt) {
        json body{{"object_id", object_id}, {"receipt", backend::base64_encode(r.encode())}};
        if (device) body["device"] = *device;
        return post_at(n, "/v1/receipts", body);
    }
};

// The soft-USIM side of AKA with the keys the simulated device committed.
inline aka::SubscriberKeys usim_keys(const SimDevice& d) {
    return aka::SubscriberKeys::from_k_and_opc(aka::SubscriberKeys::KeyView(d.host.k.data(), 16),
                                               aka::SubscriberKeys::KeyView(d.host.opc.data(), 16));
}

template <std::size_t N>
ByteArray<N> hex_array(const json& v) {
    Bytes b;
    (void)from_hex(v.get<std::string>(), b);
    ByteArray<N> out{};
    std::copy_n(b.begin(), std::min(N, b.size()), out.begin());
    return out;
}

}  // namespace credprov::testing
