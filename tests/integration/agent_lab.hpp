// A lab around one real credprov-agentd process: a state directory created
// with credprov-agentctl factory-init, an operator (root, certificate,
// tokens, bundles) and a provisioner that runs real sessions over a Unix
// socket. Used by the integration tests and the agent benchmark.
//
// Setup failures throw std::runtime_error (the caller is a test or a bench).
#pragma once

#include <stdexcept>

#include "agent_process.hpp"
#include "credprov/transport/stream_transport.hpp"
#include "protocol_world.hpp"

namespace credprov::testing {

inline std::filesystem::path make_temp_dir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "credprov-agent-XXXXXX").string();
    if (::mkdtemp(tmpl.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    return tmpl;
}

struct AgentLab {
    std::filesystem::path dir = make_temp_dir();
    std::filesystem::path state = dir / "state";
    std::filesystem::path socket = dir / "agent.sock";
    std::filesystem::path log = dir / "agentd.log";
    World operator_side;  // root, operator, provisioner (its in-memory device is unused)
    DeviceId device;
    std::string code;

    AgentLab() {
        auto init = run_command({CREDPROV_AGENTCTL, "--state-dir", state.string(), "factory-init", "--root",
                                 to_hex(operator_side.root.public_key)});
        if (init.exit_code != 0) throw std::runtime_error("factory-init failed: " + init.out);
        auto label = run_command({CREDPROV_AGENTCTL, "--state-dir", state.string(), "label"});
        if (label.exit_code != 0) throw std::runtime_error("label failed");
        device = DeviceId::parse(field_of(label.out, "device id")).value();
        code = field_of(label.out, "setup code");
    }
    ~AgentLab() {
        std::error_code ec;
        std::filesystem::remove_all(dir, ec);
    }
    AgentLab(const AgentLab&) = delete;
    AgentLab& operator=(const AgentLab&) = delete;

    std::unique_ptr<AgentProcess> start(std::vector<std::string> extra = {}) {
        // A killed agent leaves its socket file behind: remove it, so that
        // waiting for the socket waits for the new agent.
        std::error_code ec;
        std::filesystem::remove(socket, ec);
        auto p = std::make_unique<AgentProcess>(
            CREDPROV_AGENTD,
            [&] {
                std::vector<std::string> args{"--state-dir", state.string(), "--listen", "unix:" + socket.string()};
                args.insert(args.end(), extra.begin(), extra.end());
                return args;
            }(),
            log);
        if (!p->wait_for_socket(socket, std::chrono::seconds(5))) throw std::runtime_error("agentd did not start");
        return p;
    }

    // One provisioner session: pair, then `op`, then `more` requests.
    struct Outcome {
        Result<Response> first{make_error(ErrorCode::internal, "not run")};
        std::vector<Response> more;  // answers to `more`, in order, until one failed
        std::optional<Error> more_error;
        std::optional<SignedObject> bundle;
        Bytes k;  // the credential the backend minted, for assertions
        Bytes opc;
    };

    Outcome session(Operation op, std::vector<Request> more = {}, std::string use_code = {}) {
        using namespace std::chrono_literals;
        Outcome o;
        auto addr = transport::Address::parse("unix:" + socket.string()).value();
        auto link = transport::StreamTransport::connect(addr, 2s);
        if (!link) {
            o.first = link.error();
            return o;
        }
        auto code_obj = std::move(SetupCode::parse(use_code.empty() ? code : use_code)).value();
        AuthorisationToken t;
        t.provisioner_key = operator_side.provisioner.public_key;
        t.device = device;
        t.operations = {Operation::deliver_sealed, Operation::query, Operation::deprovision, Operation::diagnose,
                        Operation::reconfigure};
        t.not_before = static_cast<std::uint64_t>(std::time(nullptr)) - 60;
        t.not_after = t.not_before + 3600;
        ProvisionerSetup setup;
        setup.device = device;
        setup.transport = TransportType::tcp;  // stream links, TCP or Unix
        setup.key = &operator_side.provisioner;
        setup.token = issue_token(operator_side.op.sign, t);
        setup.operator_certificate = operator_side.certificate;
        ProvisionerSession p(std::move(setup), code_obj);
        auto& l = **link;
        auto exchange = [&](const Bytes& m) -> Result<Bytes> {
            if (auto s = l.send(m); !s) return s.error();
            return receive(l, 5s);
        };
        auto m2 = exchange(p.start().value());
        if (!m2) {
            o.first = m2.error();
            return o;
        }
        if (auto s = p.read_pair_response(*m2); !s) {
            o.first = s.error();
            return o;
        }
        Request req{op, std::nullopt};
        if (op == Operation::deliver_sealed) {
            // The backend's part: a bundle for the keys the device just presented.
            CredentialBundle b;
            b.id = BundleId::random();
            b.device = device;
            b.epoch = 1000;
            b.profile = test_profile();
            b.issued_at = t.not_before;
            b.not_after = t.not_after;
            auto keys = SubscriberKeys::random();
            o.k.assign(keys.k.data(), keys.k.data() + 16);
            o.opc.assign(keys.opc.data(), keys.opc.data() + 16);
            o.bundle = issue_bundle(operator_side.op.sign, operator_side.op.box, p.device_keys().box, b, keys).value();
            req.object = o.bundle;
        }
        auto m4 = exchange(p.authorise(req).value());
        if (!m4) {
            o.first = m4.error();
            return o;
        }
        o.first = p.read_response(*m4);
        for (auto& r : more) {
            if (!o.first) break;
            auto m = p.request(r);
            if (!m) {
                o.more_error = m.error();
                break;
            }
            auto reply = exchange(*m);
            if (!reply) {
                o.more_error = reply.error();
                break;
            }
            auto resp = p.read_response(*reply);
            if (!resp) {
                o.more_error = resp.error();
                break;
            }
            o.more.push_back(std::move(*resp));
        }
        return o;
    }

    CommandResult status() { return run_command({CREDPROV_AGENTCTL, "--state-dir", state.string(), "status", "--json"}); }
};

}  // namespace credprov::testing
