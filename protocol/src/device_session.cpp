// Device role state machine. One switch over State; every failure is
// terminal and wipes the channel keys and the confirmation key.
#include "credprov/protocol/device_session.hpp"

#include <algorithm>
#include <array>

#include <sodium.h>

namespace credprov {

namespace {

constexpr std::string_view kChannelLabel = "credprov/v1";

std::uint8_t type_byte(MessageType t) { return static_cast<std::uint8_t>(t); }

const OperatorKeys* effective_owner(const DeviceTrust& trust, const DeviceRecord& record) {
    if (trust.pinned_owner) return &*trust.pinned_owner;
    if (record.owner) return &*record.owner;
    return nullptr;
}

OwnerState owner_state_of(const DeviceTrust& trust, const DeviceRecord& record) {
    if (trust.pinned_owner) return OwnerState::pinned;
    return record.owner ? OwnerState::owned : OwnerState::unowned;
}

bool field_mode_enabled(const DeviceTrust& trust, const DeviceRecord& record) {
    return record.settings.field_mode_allowed.value_or(trust.field_mode_allowed);
}

// Applies an owner command to a copy of the record; shared by the in-session
// and the network paths so both enforce the same rules.
Result<DeviceRecord> apply_owner_command(const DeviceTrust& trust, const DeviceRecord& record, const DeviceId& device,
                                         const OwnerCommand& cmd) {
    DeviceRecord next = record;
    next.owner_counter = cmd.counter;
    next.time_high_water = std::max(next.time_high_water, cmd.issued_at);
    switch (cmd.kind) {
        case OwnerCommandKind::deprovision:
            if (!cmd.payload.empty()) return make_error(ErrorCode::malformed, "deprovision notice carries a payload");
            next.credential.reset();
            next.deprovision_epoch = cmd.counter;
            break;
        case OwnerCommandKind::reconfigure: {
            auto s = DeviceSettings::decode(cmd.payload);
            if (!s) return s.error();
            if (s->label) next.settings.label = s->label;
            if (s->field_mode_allowed) next.settings.field_mode_allowed = s->field_mode_allowed;
            if (s->advertise_when_provisioned) next.settings.advertise_when_provisioned = s->advertise_when_provisioned;
            if (s->attach_check_interval_s) next.settings.attach_check_interval_s = s->attach_check_interval_s;
            break;
        }
        case OwnerCommandKind::diagnose: {
            auto d = decode_diagnostics(cmd.payload);
            if (!d) return d.error();
            break;
        }
        case OwnerCommandKind::transfer: {
            if (trust.pinned_owner) {
                return make_error(ErrorCode::mode_not_allowed, "device has a pinned owner and cannot be transferred");
            }
            auto keys = OperatorKeys::decode(cmd.payload);
            if (!keys) return keys.error();
            next.owner = *keys;
            break;
        }
    }
    (void)device;
    return next;
}

}  // namespace

// ---- identity ---------------------------------------------------------------

DeviceIdentity DeviceIdentity::generate() {
    DeviceIdentity d{crypto::generate_signing_key(), crypto::generate_box_key(), {}, {}, {}};
    d.box_signature = sign_box_key(d.identity, d.box.public_key);
    d.id = DeviceId::from_public_key(d.identity.public_key);
    return d;
}

DeviceIdentity DeviceIdentity::from_seeds(std::span<const std::uint8_t, 32> identity_seed,
                                          std::span<const std::uint8_t, 32> box_seed) {
    DeviceIdentity d{crypto::signing_key_from_seed(identity_seed), crypto::box_key_from_seed(box_seed), {}, {}, {}};
    d.box_signature = sign_box_key(d.identity, d.box.public_key);
    d.id = DeviceId::from_public_key(d.identity.public_key);
    return d;
}

Bytes channel_identifier(TransportType transport, const DeviceId& device) {
    const std::array<std::uint8_t, 1> t{static_cast<std::uint8_t>(transport)};
    return cpace::lv_cat({as_bytes(kChannelLabel), t, device.bytes});
}

Bytes transcript_signature_input(const crypto::Hash& th, const crypto::SignPublicKey& signer,
                                 const crypto::SignPublicKey& peer) {
    Bytes in;
    in.reserve(th.size() + signer.size() + peer.size());
    append(in, th);
    append(in, signer);
    append(in, peer);
    return in;
}

// ---- session ----------------------------------------------------------------

DeviceSession::DeviceSession(const DeviceIdentity& identity, const DeviceTrust& trust, DeviceHost& host,
                             const SetupCode& code, TransportType transport, std::optional<std::uint64_t> trusted_now)
    : identity_(identity), trust_(trust), host_(host), code_(code), transport_(transport), trusted_now_(trusted_now) {
    crypto::ensure_initialised();
}

DeviceSession::~DeviceSession() {
    if (channel_) channel_->wipe();
}

DeviceSession::Step DeviceSession::fail(Error e, bool notify_in_channel) {
    Step step;
    if (notify_in_channel && channel_ && channel_->usable()) {
        DevicePayload p;
        p.response = Response::failure(e);
        step.reply = Record{channel_->seal(type_byte(MessageType::record), p.encode())}.encode();
    } else {
        // Before a channel exists the peer only learns the cause, never details.
        step.reply = ErrorMessage{e.code, 0}.encode();
    }
    state_ = State::failed;
    if (channel_) channel_->wipe();
    mac_key_.reset();
    step.error = std::move(e);
    return step;
}

DeviceSession::Step DeviceSession::handle(ByteView message) {
    // Checked before anything reads the input: a failed session answers
    // nothing, whatever arrives (it used to send an error notice again for
    // input that did not decode).
    if (state_ == State::failed) return Step{{}, make_error(ErrorCode::bad_state, "session already failed")};
    auto type = peek_type(message);
    if (!type) return fail(type.error(), state_ == State::ready);
    switch (state_) {
        case State::await_pair_request:
            if (*type != MessageType::pair_request) break;
            return on_pair_request(message);
        case State::await_authorise:
            if (*type != MessageType::authorise) break;
            return on_authorise(message);
        case State::ready:
            if (*type != MessageType::record) break;
            return on_record(message);
        case State::failed:
            return Step{{}, make_error(ErrorCode::bad_state, "session already failed")};
    }
    return fail(make_error(ErrorCode::bad_state, "message not expected in this state"), false);
}

DeviceSession::Step DeviceSession::on_pair_request(ByteView message) {
    auto m1 = PairRequest::decode(message);
    if (!m1) return fail(m1.error(), false);
    auto ada = ProvisionerAd::decode(m1->ada);
    if (!ada) return fail(ada.error(), false);
    if (std::find(ada->versions.begin(), ada->versions.end(), kProtocolVersion) == ada->versions.end()) {
        return fail(make_error(ErrorCode::unsupported_version, "no common protocol version"), false);
    }
    ada_ = *ada;

    // The attempt is on record before anything derived from the setup code
    // leaves the device: an aborted session still counts.
    auto decision = host_.record_pairing_attempt();
    if (!decision) return fail(decision.error(), false);
    if (!decision->allowed) {
        Step step;
        step.reply = ErrorMessage{ErrorCode::backoff, decision->retry_after_s}.encode();
        step.error = make_error(ErrorCode::backoff, "too many failed pairing attempts; back-off running");
        state_ = State::failed;
        return step;
    }

    const DeviceRecord& record = host_.record();
    DeviceAd adb;
    adb.version = kProtocolVersion;
    adb.modes = kModeSealed | (field_mode_enabled(trust_, record) ? kModeField : 0);
    adb.owner = owner_state_of(trust_, record);
    modes_ = adb.modes & ada_.modes;
    adb_ = adb.encode();

    sid_ = m1->sid;
    ya_ = m1->ya;
    ada_bytes_ = m1->ada;
    const Bytes ci = channel_identifier(transport_, identity_.id);
    const cpace::Generator g = cpace::calculate_generator(code_.prs(), ci, sid_);
    auto eph = cpace::Ephemeral::generate(g);
    if (!eph) return fail(eph.error(), false);
    auto isk = eph->isk(cpace::Role::responder, sid_, adb_, m1->ya, m1->ada);
    if (!isk) return fail(isk.error(), false);

    PairResponse m2;
    m2.yb = eph->public_share();
    m2.adb = adb_;
    th_ = transcript_hash(message, m2.yb, m2.adb);
    channel_.emplace(*isk, th_, Direction::device_to_provisioner);
    mac_key_.emplace(cpace::confirmation_key(sid_, *isk));
    const cpace::Tag tb = cpace::confirmation_tag(*mac_key_, m2.yb, m2.adb);
    std::copy_n(tb.begin(), kConfirmTagBytes, m2.tb.begin());
    if (!ada_.device_keys_known) {
        DeviceKeys keys{identity_.identity.public_key, identity_.box.public_key, identity_.box_signature,
                        identity_.attestation};
        m2.record = channel_->seal(type_byte(MessageType::pair_response), keys.encode());
    }
    yb_ = m2.yb;
    state_ = State::await_authorise;
    return Step{m2.encode(), std::nullopt};
}

DeviceSession::Step DeviceSession::on_authorise(ByteView message) {
    auto m3 = Authorise::decode(message);
    if (!m3) return fail(m3.error(), false);

    // Ta = MAC(mac_key, lv_cat(Ya, ADa)), truncated: the provisioner's proof
    // that it derived the same ISK, i.e. knows the setup code.
    const cpace::Tag ta = cpace::confirmation_tag(*mac_key_, ya_, ada_bytes_);
    if (!ct_equal(ByteView(ta).first(kConfirmTagBytes), m3->ta)) {
        return fail(make_error(ErrorCode::auth_failed, "pairing failed: wrong setup code or tampered handshake"), false);
    }
    mac_key_.reset();
    if (auto s = host_.confirm_pairing(); !s) return fail(s.error(), false);

    auto plain = channel_->open(type_byte(MessageType::record), m3->record);
    if (!plain) return fail(plain.error(), false);
    auto payload = ProvisionerPayload::decode(plain->view());
    if (!payload) return fail(payload.error(), true);
    if (!payload->transcript_signature || !payload->token) {
        return fail(make_error(ErrorCode::malformed, "first request lacks the provisioner signature or token"), true);
    }

    const DeviceRecord& record = host_.record();
    // Whose signatures count: the owner's, else an operator the pinned root
    // certifies (or, as an explicit lab opt-in, any operator presented).
    if (const OperatorKeys* owner = effective_owner(trust_, record)) {
        operator_ = *owner;
    } else if (!payload->operator_certificate) {
        return fail(make_error(ErrorCode::untrusted_operator, "unowned device needs an operator certificate"), true);
    } else if (trust_.provisioning_root) {
        auto keys = verify_operator_certificate(*payload->operator_certificate, *trust_.provisioning_root);
        if (!keys) return fail(keys.error(), true);
        operator_ = *keys;
    } else if (trust_.lab_trust_on_first_use) {
        auto keys = OperatorKeys::decode(payload->operator_certificate->body);
        if (!keys) return fail(keys.error(), true);
        operator_ = *keys;
    } else {
        return fail(make_error(ErrorCode::untrusted_operator, "device has no provisioning root to check operators"), true);
    }

    auto token = verify_token(*payload->token, operator_->sign_key);
    if (!token) return fail(token.error(), true);
    const Bytes signed_input =
        transcript_signature_input(th_, token->provisioner_key, identity_.identity.public_key);
    if (auto s = crypto::verify(token->provisioner_key, context::transcript_provisioner, signed_input,
                                *payload->transcript_signature);
        !s) {
        return fail(make_error(ErrorCode::bad_signature, "provisioner signature over the handshake does not verify"),
                    true);
    }
    if (!token->covers(identity_.id)) {
        return fail(make_error(ErrorCode::not_authorised, "authorisation token is for another device"), true);
    }
    const std::uint64_t now = std::max(record.time_high_water, trusted_now_.value_or(0));
    if (token->not_after < now) return fail(make_error(ErrorCode::expired, "authorisation token has expired"), true);
    if (trusted_now_ && token->not_before > *trusted_now_) {
        return fail(make_error(ErrorCode::not_yet_valid, "authorisation token is not valid yet"), true);
    }
    token_ = std::move(*token);

    DevicePayload reply;
    reply.response = execute(payload->request);
    if (!reply.response.ok) {
        return fail(Error{reply.response.status, reply.response.message}, true);
    }
    reply.transcript_signature =
        crypto::sign(identity_.identity, context::transcript_device,
                     transcript_signature_input(th_, identity_.identity.public_key, token_->provisioner_key));
    state_ = State::ready;
    return reply_in_channel(std::move(reply));
}

DeviceSession::Step DeviceSession::on_record(ByteView message) {
    auto rec = Record::decode(message);
    if (!rec) return fail(rec.error(), false);
    auto plain = channel_->open(type_byte(MessageType::record), rec->record);
    if (!plain) return fail(plain.error(), false);
    auto payload = ProvisionerPayload::decode(plain->view());
    if (!payload) return fail(payload.error(), true);
    if (payload->transcript_signature || payload->token || payload->operator_certificate) {
        return fail(make_error(ErrorCode::malformed, "credentials may only be presented once per session"), true);
    }
    DevicePayload reply;
    reply.response = execute(payload->request);
    if (!reply.response.ok) return fail(Error{reply.response.status, reply.response.message}, true);
    return reply_in_channel(std::move(reply));
}

Response DeviceSession::execute(const Request& request) {
    const DeviceRecord& record = host_.record();
    const Operation op = request.op;
    if (!token_->allows(op)) {
        return Response::failure(make_error(ErrorCode::not_authorised, "authorisation token does not allow " +
                                                                           std::string(to_string(op))));
    }
    const std::uint64_t now = std::max(record.time_high_water, trusted_now_.value_or(0));
    const Digest provisioner_hash = digest(token_->provisioner_key);
    Response resp;

    switch (op) {
        case Operation::query: {
            DeviceInfo info;
            info.device = identity_.id;
            info.owner_state = owner_state_of(trust_, record);
            if (const OperatorKeys* o = effective_owner(trust_, record)) info.owner_key_hash = digest(o->sign_key);
            info.owner_counter = record.owner_counter;
            info.provisioned = record.credential.has_value();
            if (record.credential) {
                info.bundle = record.credential->id;
                info.profile = record.credential->profile;
            }
            info.settings = record.settings;
            info.software = host_.software();
            resp.info = std::move(info);
            return resp;
        }
        case Operation::deliver_sealed:
        case Operation::deliver_field: {
            if (!request.object) return Response::failure(make_error(ErrorCode::malformed, "delivery without an object"));
            const bool field = op == Operation::deliver_field;
            if (field && ((modes_ & kModeField) == 0 || !field_mode_enabled(trust_, record))) {
                return Response::failure(make_error(ErrorCode::mode_not_allowed, "field mode is not allowed here"));
            }
            const Digest object_hash = request.object->hash();
            ReceiptContent content;
            content.device = identity_.id;
            content.object_hash = object_hash;
            content.provisioner_key_hash = provisioner_hash;
            DeviceRecord next = record;
            StoredCredential cred;
            std::optional<SubscriberKeys> keys;
            std::uint64_t not_after = 0;
            std::uint64_t issued_at = 0;
            if (!field) {
                auto bundle = verify_bundle(*request.object, operator_->sign_key);
                if (!bundle) return Response::failure(bundle.error());
                if (!(bundle->device == identity_.id)) {
                    return Response::failure(make_error(ErrorCode::wrong_device, "bundle is bound to another device"));
                }
                if (bundle->epoch <= record.deprovision_epoch) {
                    return Response::failure(
                        make_error(ErrorCode::stale_counter, "bundle predates the device's last deprovisioning"));
                }
                content.object_id = bundle->id;
                cred.profile = bundle->profile;
                not_after = bundle->not_after;
                issued_at = bundle->issued_at;
                if (!record.credential) {
                    auto opened = open_keys(context::seal_bundle, identity_.box, operator_->box_key,
                                            identity_.box.public_key, bundle->encode_header(), bundle->sealed);
                    if (!opened) return Response::failure(opened.error());
                    keys = std::move(*opened);
                }
            } else {
                auto auth = verify_field_authorisation(*request.object, operator_->sign_key);
                if (!auth) return Response::failure(auth.error());
                if (!ct_equal(auth->provisioner_key_hash, provisioner_hash)) {
                    return Response::failure(
                        make_error(ErrorCode::not_authorised, "field authorisation belongs to another provisioner"));
                }
                content.object_id = auth->id;
                cred.profile = auth->profile;
                cred.field_mode = true;
                not_after = auth->not_after;
                issued_at = auth->issued_at;
            }
            // Re-delivery of what is already stored converges on the stored
            // receipt. A sealed bundle re-delivered by another provisioner
            // (the first one's link dropped) gets the same statement signed
            // for the provisioner now asking; nothing is written again.
            if (record.credential) {
                if (record.credential->id == content.object_id &&
                    ct_equal(record.credential->object_hash, object_hash)) {
                    auto stored = Receipt::decode(record.credential->receipt);
                    if (!stored) return Response::failure(make_error(ErrorCode::storage, "stored receipt unreadable"));
                    const bool same_provisioner =
                        verify_receipt(*stored, identity_.identity.public_key, identity_.id, object_hash,
                                       provisioner_hash)
                            .ok();
                    if (same_provisioner || record.credential->field_mode) {
                        resp.receipt = *stored;
                    } else {
                        resp.receipt = sign_receipt(identity_.identity, content);
                    }
                    return resp;
                }
                return Response::failure(
                    make_error(ErrorCode::already_provisioned, "device already holds a credential; deprovision first"));
            }
            if (not_after < now) return Response::failure(make_error(ErrorCode::expired, "credential has expired"));
            if (field) {
                keys = SubscriberKeys::random();
                ByteArray<16> salt{};
                crypto::random_bytes(salt);
                content.field_salt = salt;
                auto sealed = seal_keys(context::seal_field, identity_.box, operator_->box_key,
                                        identity_.box.public_key, content.encode_header(), *keys);
                if (!sealed) return Response::failure(sealed.error());
                content.field_keys = *sealed;
            }
            const Receipt receipt = sign_receipt(identity_.identity, content);
            cred.id = content.object_id;
            cred.object_hash = object_hash;
            cred.receipt = receipt.encode();
            next.credential = std::move(cred);
            // Adoption: the operator that signed both token and object becomes
            // the owner, and only now that the credential is committed.
            if (!trust_.pinned_owner && !next.owner) next.owner = *operator_;
            next.time_high_water = std::max({next.time_high_water, token_->not_before, issued_at});
            if (auto s = host_.commit(next, &*keys); !s) return Response::failure(s.error());
            resp.receipt = receipt;
            return resp;
        }
        case Operation::reconfigure:
        case Operation::diagnose:
        case Operation::deprovision:
        case Operation::transfer: {
            if (!request.object) return Response::failure(make_error(ErrorCode::malformed, "owner command missing"));
            const OperatorKeys* owner = effective_owner(trust_, record);
            if (owner == nullptr) {
                return Response::failure(make_error(ErrorCode::not_owner, "device has no owner yet"));
            }
            auto cmd = verify_owner_command(*request.object, owner->sign_key, identity_.id, record.owner_counter);
            if (!cmd) return Response::failure(cmd.error());
            if (operation_of(cmd->kind) != op) {
                return Response::failure(make_error(ErrorCode::not_authorised, "owner command does not match the request"));
            }
            auto next = apply_owner_command(trust_, record, identity_.id, *cmd);
            if (!next) return Response::failure(next.error());
            if (auto c = host_.consent(cmd->kind); !c) return Response::failure(c.error());
            if (auto s = host_.commit(*next, nullptr); !s) return Response::failure(s.error());
            if (cmd->kind == OwnerCommandKind::diagnose) {
                auto which = decode_diagnostics(cmd->payload);
                resp.diagnostics = host_.run_diagnostics(*which);
            }
            resp.counter = cmd->counter;
            return resp;
        }
    }
    return Response::failure(make_error(ErrorCode::unknown_critical, "unknown operation"));
}

DeviceSession::Step DeviceSession::reply_in_channel(DevicePayload payload) {
    Step step;
    step.reply = Record{channel_->seal(type_byte(MessageType::record), payload.encode())}.encode();
    return step;
}

Result<DeviceRecord> apply_network_deprovision(const DeviceIdentity& identity, const DeviceTrust& trust,
                                               const DeviceRecord& record, const SignedObject& notice) {
    const OperatorKeys* owner = effective_owner(trust, record);
    if (owner == nullptr) return make_error(ErrorCode::not_owner, "device has no owner to accept a notice from");
    auto cmd = verify_owner_command(notice, owner->sign_key, identity.id, record.owner_counter);
    if (!cmd) return cmd.error();
    if (cmd->kind != OwnerCommandKind::deprovision) {
        return make_error(ErrorCode::not_authorised, "only deprovisioning is accepted over the network path");
    }
    return apply_owner_command(trust, record, identity.id, *cmd);
}

}  // namespace credprov
