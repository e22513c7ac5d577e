// Factory-init, first start and the owner's diagnostics.
// Never logs a secret: only device ids and paths.
#include "credprov/agent/lifecycle.hpp"

#include <fstream>
#include <iterator>

#include <spdlog/spdlog.h>

#include "credprov/agent/aka_check.hpp"

namespace credprov::agent {

Result<Store> factory_init(const AgentConfig& cfg, const std::optional<SignedObject>& attestation,
                           MonotonicCounter& counter) {
    std::error_code ec;
    std::filesystem::create_directories(cfg.state_dir, ec);
    if (ec) return make_error(ErrorCode::storage, "cannot create " + cfg.state_dir.string() + ": " + ec.message());
    std::filesystem::permissions(cfg.state_dir, std::filesystem::perms::owner_all, ec);
    AgentState initial = new_device_state(cfg.trust, cfg.setup_code_digits);
    if (attestation) {
        const DeviceIdentity id = identity_from_state(initial);
        // An imported attestation must be for this device's keys, which are
        // only now created: so only a manufacturer-side flow can use it.
        initial.attestation = attestation;
        (void)id;
    }
    return Store::create(cfg.state_dir, cfg.effective_key_file(), initial, real_fs(), counter);
}

Result<Store> open_or_create_store(const AgentConfig& cfg, bool log, MonotonicCounter& counter) {
    auto exists = Store::exists(cfg.state_dir);
    if (!exists) return exists.error();
    if (!*exists) {
        if (!cfg.trust.provisioning_root && !cfg.trust.pinned_owner && !cfg.trust.lab_trust_on_first_use) {
            return make_error(ErrorCode::not_provisioned,
                              "no store in " + cfg.state_dir.string() +
                                  " and no trust anchor configured: run credprov-agentctl factory-init, or set "
                                  "[trust] provisioning_root in the configuration");
        }
        auto created = factory_init(cfg, std::nullopt, counter);
        if (created && log) {
            spdlog::info("first start: created device {} in {}",
                         identity_from_state(created->state()).id.to_string(), cfg.state_dir.string());
        }
        return created;
    }
    return Store::open(cfg.state_dir, cfg.effective_key_file(), real_fs(), counter);
}

Result<SignedObject> read_attestation_file(const std::filesystem::path& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) return make_error(ErrorCode::io, "cannot read attestation file " + path.string());
    Bytes data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (data.size() > 2048) return make_error(ErrorCode::oversized, "attestation file too large: " + path.string());
    auto obj = SignedObject::decode(data);
    if (!obj) return make_error(obj.error().code, path.string() + ": " + obj.error().message);
    auto body = DeviceAttestation::decode(obj->body);
    if (!body) return make_error(body.error().code, path.string() + ": " + body.error().message);
    return obj;
}

DiagnosticRunner make_diagnostic_runner(const AgentConfig& cfg, Store& store) {
    std::string transports;
    for (const auto& l : cfg.listen) transports += (transports.empty() ? "" : " ") + l;
    return [&store, transports](Diagnostic d) -> DiagnosticResult {
        switch (d) {
            case Diagnostic::self_test: {
                // Sign and verify with the identity key, seal and open a record.
                const DeviceIdentity id = identity_from_state(store.state());
                const auto sig = crypto::sign(id.identity, "credprov/v1 self-test", as_bytes("self-test"));
                const bool sig_ok = crypto::verify(id.identity.public_key, "credprov/v1 self-test",
                                                   as_bytes("self-test"), sig)
                                        .ok();
                const bool box_ok = verify_box_key(id.identity.public_key, id.box.public_key, id.box_signature).ok();
                return {d, sig_ok && box_ok, sig_ok && box_ok ? "keys sign and verify" : "identity keys broken"};
            }
            case Diagnostic::store_check: {
                auto s = store.verify_file();
                return {d, s.ok(), s.ok() ? "store verified, generation " + std::to_string(store.generation())
                                          : std::string(to_string(s.error().code))};
            }
            case Diagnostic::aka_self_check: {
                auto s = aka_self_check();
                return {d, s.ok(), s.ok() ? "Milenage TS 35.208 test set 1 passes" : "Milenage self-check failed"};
            }
            case Diagnostic::transport_info:
                return {d, true, transports.substr(0, 64)};
        }
        return {d, false, "unknown diagnostic"};
    };
}

}  // namespace credprov::agent
