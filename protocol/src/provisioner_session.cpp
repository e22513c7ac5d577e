// Provisioner role state machine; terminal failure wipes keys.
#include "credprov/protocol/provisioner_session.hpp"

#include <algorithm>

#include "credprov/protocol/device_session.hpp"  // channel_identifier, transcript_signature_input

namespace credprov {

namespace {
std::uint8_t type_byte(MessageType t) { return static_cast<std::uint8_t>(t); }

}  // namespace

Error ProvisionerSession::refused(ByteView message) {
    auto e = ErrorMessage::decode(message);
    if (!e) return fail(e.error());
    std::string text = "device refused: " + std::string(to_string(e->code));
    if (e->code == ErrorCode::backoff) {
        text += ", retry in " + std::to_string(e->retry_after_s) + " s";
        retry_after_s_ = e->retry_after_s;
    }
    if (e->code == ErrorCode::auth_failed) text = "pairing failed: wrong setup code or tampered handshake";
    return fail(make_error(e->code, std::move(text)));
}

ProvisionerSession::ProvisionerSession(ProvisionerSetup setup, const SetupCode& code)
    : setup_(std::move(setup)), code_(code) {
    crypto::ensure_initialised();
    device_keys_ = setup_.device_keys;
}

ProvisionerSession::~ProvisionerSession() {
    if (channel_) channel_->wipe();
}

Error ProvisionerSession::fail(Error e) {
    state_ = State::failed;
    if (channel_) channel_->wipe();
    mac_key_.reset();
    eph_.reset();
    return e;
}

Result<Bytes> ProvisionerSession::start() {
    ByteArray<kSidBytes> sid{};
    crypto::random_bytes(sid);
    return start_with_sid(sid);
}

Result<Bytes> ProvisionerSession::start_with_sid(const ByteArray<kSidBytes>& sid) {
    if (state_ != State::start) return fail(make_error(ErrorCode::bad_state, "session already started"));
    if (setup_.key == nullptr) return fail(make_error(ErrorCode::internal, "no provisioner key configured"));
    // Refuse early, with a clear message, what the device would refuse anyway.
    auto token = AuthorisationToken::decode(setup_.token.body);
    if (!token) return fail(token.error());
    if (!setup_.check_token_locally) {
        // Only the device decides.
    } else if (!(token->provisioner_key == setup_.key->public_key)) {
        return fail(make_error(ErrorCode::not_authorised, "authorisation token was issued to another provisioner"));
    } else if (!token->covers(setup_.device)) {
        return fail(make_error(ErrorCode::not_authorised, "authorisation token does not cover this device"));
    } else if (setup_.now) {
        if (*setup_.now > token->not_after) return fail(make_error(ErrorCode::expired, "authorisation token has expired"));
        if (*setup_.now < token->not_before) {
            return fail(make_error(ErrorCode::not_yet_valid, "authorisation token is not valid yet"));
        }
    }
    if (setup_.device_keys && !(DeviceId::from_public_key(setup_.device_keys->identity) == setup_.device)) {
        return fail(make_error(ErrorCode::wrong_device, "known device key does not match the label's device id"));
    }

    sid_ = sid;
    ProvisionerAd ad;
    ad.modes = setup_.modes;
    ad.device_keys_known = setup_.device_keys.has_value();
    ada_ = ad.encode();
    const Bytes ci = channel_identifier(setup_.transport, setup_.device);
    const cpace::Generator g = cpace::calculate_generator(code_.prs(), ci, sid_);
    auto eph = cpace::Ephemeral::generate(g);
    if (!eph) return fail(eph.error());
    eph_.emplace(std::move(*eph));
    PairRequest m1;
    m1.sid = sid_;
    m1.ya = eph_->public_share();
    m1.ada = ada_;
    m1_ = m1.encode();
    state_ = State::await_pair_response;
    return m1_;
}

Status ProvisionerSession::read_pair_response(ByteView message) {
    if (state_ != State::await_pair_response) return fail(make_error(ErrorCode::bad_state, "no pair response expected"));
    auto type = peek_type(message);
    if (!type) return fail(type.error());
    if (*type == MessageType::error) return refused(message);
    auto m2 = PairResponse::decode(message);
    if (!m2) return fail(m2.error());
    auto adb = DeviceAd::decode(m2->adb);
    if (!adb) return fail(adb.error());
    if (adb->version != kProtocolVersion) {
        return fail(make_error(ErrorCode::unsupported_version, "device chose an unsupported protocol version"));
    }
    device_ad_ = *adb;

    auto isk = eph_->isk(cpace::Role::initiator, sid_, ada_, m2->yb, m2->adb);
    eph_.reset();
    if (!isk) return fail(isk.error());
    mac_key_.emplace(cpace::confirmation_key(sid_, *isk));
    const cpace::Tag tb = cpace::confirmation_tag(*mac_key_, m2->yb, m2->adb);
    if (!ct_equal(ByteView(tb).first(kConfirmTagBytes), m2->tb)) {
        return fail(make_error(ErrorCode::auth_failed, "pairing failed: wrong setup code or tampered handshake"));
    }
    th_ = transcript_hash(m1_, m2->yb, m2->adb);
    channel_.emplace(*isk, th_, Direction::provisioner_to_device);

    if (m2->record) {
        if (setup_.device_keys) return fail(make_error(ErrorCode::malformed, "device sent keys that were not asked for"));
        auto plain = channel_->open(type_byte(MessageType::pair_response), *m2->record);
        if (!plain) return fail(plain.error());
        auto keys = DeviceKeys::decode(plain->view());
        if (!keys) return fail(keys.error());
        if (!(DeviceId::from_public_key(keys->identity) == setup_.device)) {
            return fail(make_error(ErrorCode::wrong_device, "device key does not match the label's device id"));
        }
        if (auto s = verify_box_key(keys->identity, keys->box, keys->box_signature); !s) {
            return fail(make_error(ErrorCode::bad_signature, "device box key is not signed by its identity key"));
        }
        device_keys_ = KnownDeviceKeys{keys->identity, keys->box, keys->box_signature};
        attestation_ = keys->attestation;
    } else if (!setup_.device_keys) {
        return fail(make_error(ErrorCode::malformed, "device did not send its keys"));
    }
    state_ = State::paired;
    return {};
}

Result<Bytes> ProvisionerSession::send_request(Request request, bool first) {
    ProvisionerPayload payload;
    if (first) {
        payload.transcript_signature =
            crypto::sign(*setup_.key, context::transcript_provisioner,
                         transcript_signature_input(th_, setup_.key->public_key, device_keys_->identity));
        payload.token = setup_.token;
        if (device_ad_.owner == OwnerState::unowned) payload.operator_certificate = setup_.operator_certificate;
    }
    payload.request = request;
    pending_ = std::move(request);
    const Bytes record = channel_->seal(type_byte(MessageType::record), payload.encode());
    state_ = State::await_response;
    return record;
}

Result<Bytes> ProvisionerSession::authorise(Request request) {
    if (state_ != State::paired) return fail(make_error(ErrorCode::bad_state, "not paired"));
    Authorise m3;
    // Ta = MAC(mac_key, lv_cat(Ya, ADa)): Ya is in M1.
    auto m1 = PairRequest::decode(m1_);
    const cpace::Tag ta = cpace::confirmation_tag(*mac_key_, m1->ya, m1->ada);
    mac_key_.reset();
    std::copy_n(ta.begin(), kConfirmTagBytes, m3.ta.begin());
    auto record = send_request(std::move(request), true);
    if (!record) return record.error();
    m3.record = std::move(*record);
    return m3.encode();
}

Result<Bytes> ProvisionerSession::request(Request request) {
    if (state_ != State::ready) return fail(make_error(ErrorCode::bad_state, "session not ready for a request"));
    auto record = send_request(std::move(request), false);
    if (!record) return record.error();
    return Record{std::move(*record)}.encode();
}

Result<Response> ProvisionerSession::read_response(ByteView message) {
    if (state_ != State::await_response) return fail(make_error(ErrorCode::bad_state, "no response expected"));
    auto type = peek_type(message);
    if (!type) return fail(type.error());
    if (*type == MessageType::error) return refused(message);
    auto rec = Record::decode(message);
    if (!rec) return fail(rec.error());
    auto plain = channel_->open(type_byte(MessageType::record), rec->record);
    if (!plain) return fail(plain.error());
    auto payload = DevicePayload::decode(plain->view());
    if (!payload) return fail(payload.error());
    Response& resp = payload->response;
    if (!resp.ok) {
        return fail(make_error(resp.status, "device refused: " + (resp.message.empty() ? std::string(to_string(resp.status))
                                                                                      : resp.message)));
    }
    if (first_response_) {
        if (!payload->transcript_signature) {
            return fail(make_error(ErrorCode::malformed, "device response lacks its handshake signature"));
        }
        const Bytes input = transcript_signature_input(th_, device_keys_->identity, setup_.key->public_key);
        if (!crypto::verify(device_keys_->identity, context::transcript_device, input, *payload->transcript_signature)) {
            return fail(make_error(ErrorCode::bad_signature, "device signature over the handshake does not verify"));
        }
        first_response_ = false;
    } else if (payload->transcript_signature) {
        return fail(make_error(ErrorCode::malformed, "unexpected handshake signature"));
    }
    const Request& req = *pending_;
    if (req.op == Operation::deliver_sealed || req.op == Operation::deliver_field) {
        if (!resp.receipt) return fail(make_error(ErrorCode::malformed, "delivery answered without a receipt"));
        if (auto s = verify_receipt(*resp.receipt, device_keys_->identity, setup_.device, req.object->hash(),
                                    digest(setup_.key->public_key));
            !s) {
            return fail(s.error());
        }
        if ((req.op == Operation::deliver_field) != resp.receipt->field_keys.has_value()) {
            return fail(make_error(ErrorCode::malformed, "receipt does not match the delivery mode"));
        }
    }
    pending_.reset();
    state_ = State::ready;
    return std::move(resp);
}

}  // namespace credprov
