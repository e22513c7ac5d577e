// ProvisionTask (provision_task.hpp).
#include "credprov/gui/provision_task.hpp"

#include <sodium.h>

#include <QMetaObject>

#include "credprov/protocol/identifiers.hpp"
#include "credprov/provisioner/provisioning.hpp"
#include "credprov/provisioner/workspace.hpp"

namespace credprov::gui {

using provisioner::Outcome;

QString next_action_for(int outcome) {
    switch (static_cast<Outcome>(outcome)) {
        case Outcome::ok: return QObject::tr("Done. The device is provisioned and active.");
        case Outcome::usage: return QObject::tr("Check the device id and the setup code on the label, or scan the label again.");
        case Outcome::not_enrolled: return QObject::tr("Enrol this installation in Settings with a token from your operator.");
        case Outcome::backend: return QObject::tr("The operator's backend did not answer: check the network, then try again. Nothing was sent to the device.");
        case Outcome::link: return QObject::tr("Bring the device closer (or check its address) and try again; a retry resumes where this stopped. After wrong codes the device asks you to wait.");
        case Outcome::device_refused: return QObject::tr("The device refused: it may already be provisioned. Query it to see its state.");
        case Outcome::queued: return QObject::tr("The device is provisioned; its receipt is sent when you are back online (Send waiting receipts).");
        case Outcome::storage: return QObject::tr("This installation's local storage failed: check free space and permissions.");
    }
    return {};
}

ProvisionTask::ProvisionTask(Technician& technician, QObject* parent) : QObject(parent), technician_(technician) {}

ProvisionTask::~ProvisionTask() {
    if (cancelled_) *cancelled_ = true;
    if (worker_.joinable()) worker_.join();
}

void ProvisionTask::start(const QString& address, const QString& label, const QString& deviceId, const QString& code,
                          bool fieldMode) {
    if (running()) return;
    if (worker_.joinable()) worker_.join();
    provisioner::Target t;
    t.address = address.trimmed().toStdString();
    if (!label.trimmed().isEmpty()) {
        std::string text = label.trimmed().toStdString();
        auto payload = BootstrapPayload::parse(text);
        sodium_memzero(text.data(), text.size());
        if (!payload) {
            finish(static_cast<int>(Outcome::usage), tr("The label could not be read: %1").arg(QString::fromStdString(payload.error().message)), {}, {});
            return;
        }
        t.device = payload->device;
        t.code = payload->code.reveal();
    } else {
        auto id = DeviceId::parse(deviceId.trimmed().toStdString());
        if (!id) {
            finish(static_cast<int>(Outcome::usage), tr("The device id must be the 26 letters and digits on the label."), {}, {});
            return;
        }
        t.device = *id;
        t.code = code.trimmed().toStdString();
    }
    if (t.address.empty()) {
        sodium_memzero(t.code.data(), t.code.size());
        finish(static_cast<int>(Outcome::usage), tr("Choose how to reach the device (BLE, NFC or an address)."), {}, {});
        return;
    }
    state_ = State::Running;
    step_ = 0;
    steps_ = 0;
    step_text_ = tr("starting");
    message_.clear();
    next_action_.clear();
    device_id_ = QString::fromStdString(t.device.to_string());
    imsi_.clear();
    emit changed();

    cancelled_ = std::make_shared<std::atomic<bool>>(false);
    worker_ = std::thread([this, home = technician_.home_path(), t = std::move(t), fieldMode, cancelled = cancelled_]() mutable {
        auto progress = [this, cancelled](int n, int of, const std::string& what) {
            if (*cancelled) return;
            QMetaObject::invokeMethod(
                this,
                [this, n, of, what = QString::fromStdString(what)] {
                    if (state_ != State::Running) return;
                    step_ = n;
                    steps_ = of;
                    step_text_ = what;
                    emit changed();
                },
                Qt::QueuedConnection);
        };
        provisioner::FlowResult r;
        auto ws = provisioner::Workspace::open(home);
        if (!ws) {
            r = {Outcome::storage, ws.error().message, {}};
        } else {
            auto settings = ws->settings();
            auto key = ws->has_key() ? ws->load_key() : Result<crypto::SigningKey>(make_error(ErrorCode::not_authorised, "no key"));
            if (!settings || settings->backend.empty() || !key) {
                r = {Outcome::not_enrolled, "this installation is not enrolled", {}};
            } else {
                provisioner::Provisioner p(*ws, *settings, *key, progress);
                r = p.provision(t, provisioner::ProvisionOptions{fieldMode ? provisioner::Mode::field : provisioner::Mode::sealed, false});
            }
        }
        sodium_memzero(t.code.data(), t.code.size());
        const QString imsi = r.details.contains("imsi") && r.details["imsi"].is_string()
                                 ? QString::fromStdString(r.details["imsi"].get<std::string>())
                                 : QString();
        QMetaObject::invokeMethod(
            this,
            [this, outcome = static_cast<int>(r.outcome), message = QString::fromStdString(r.message), imsi] {
                finish(outcome, message, device_id_, imsi);
                technician_.refresh();
            },
            Qt::QueuedConnection);
    });
}

void ProvisionTask::finish(int outcome, const QString& message, const QString& device, const QString& imsi) {
    const bool was_cancelled = state_ == State::Cancelling;
    const auto o = static_cast<Outcome>(outcome);
    if (o == Outcome::ok) state_ = State::Succeeded;
    else if (o == Outcome::queued) state_ = State::Queued;
    else state_ = was_cancelled ? State::Cancelled : State::Failed;
    message_ = was_cancelled && o != Outcome::ok && o != Outcome::queued ? tr("Cancelled. %1").arg(message) : message;
    next_action_ = next_action_for(outcome);
    device_id_ = device;
    imsi_ = imsi;
    emit changed();
}

void ProvisionTask::cancel() {
    if (state_ != State::Running) return;
    if (cancelled_) *cancelled_ = true;
    state_ = State::Cancelling;
    step_text_ = tr("stopping after the current step");
    emit changed();
}

void ProvisionTask::reset() {
    if (running()) return;
    state_ = State::Idle;
    step_ = steps_ = 0;
    step_text_.clear();
    message_.clear();
    next_action_.clear();
    device_id_.clear();
    imsi_.clear();
    emit changed();
}

}  // namespace credprov::gui
