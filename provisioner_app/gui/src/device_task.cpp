// DeviceTask (device_task.hpp).
#include "credprov/gui/device_task.hpp"

#include <sodium.h>

#include <QClipboard>
#include <QDateTime>
#include <QGuiApplication>
#include <QMetaObject>

#include "credprov/protocol/identifiers.hpp"
#include "credprov/provisioner/provisioning.hpp"

namespace credprov::gui {

using provisioner::FlowResult;
using provisioner::Outcome;
using nlohmann::json;

QString next_action_for(int outcome) {
    switch (static_cast<Outcome>(outcome)) {
        case Outcome::ok: return QObject::tr("Done.");
        case Outcome::usage: return QObject::tr("Check the device id and the setup code on the label, or read the label again.");
        case Outcome::not_enrolled: return QObject::tr("Enrol this installation in Settings with a token from your operator.");
        case Outcome::backend: return QObject::tr("The operator's backend did not answer or refused: check the network, then try again.");
        case Outcome::link: return QObject::tr("Bring the device closer (or check its address) and try again; a retry resumes where this stopped.");
        case Outcome::device_refused: return QObject::tr("The device refused: it may already be provisioned. Query it to see its state.");
        case Outcome::queued: return QObject::tr("The device is provisioned; its receipt is sent when you are back online (Send waiting receipts).");
        case Outcome::storage: return QObject::tr("This installation's local storage failed: check free space and permissions.");
    }
    return {};
}

namespace {

// A scalar JSON value as the technician reads it.
QString text_of(const json& v) {
    if (v.is_string()) return QString::fromStdString(v.get<std::string>());
    if (v.is_boolean()) return v.get<bool>() ? QObject::tr("yes") : QObject::tr("no");
    if (v.is_number_float()) return QString::number(v.get<double>(), 'f', 0);
    return QString::fromStdString(v.dump());
}

// The rows of the result view: scalars and nested objects ("settings.label"),
// each diagnostic as "name: passed/failed (detail)". What the result grid
// shows already (device, IMSI, state), internal ids and the link's counters
// are left out.
QVariantList rows_of(const json& details) {
    QVariantList rows;
    auto add = [&rows](const QString& name, const QString& value) {
        rows.push_back(QVariantMap{{"name", name}, {"value", value}});
    };
    for (const auto& [key, value] : details.items()) {
        if (key == "attempt_id" || key == "link" || key == "reason" || key == "device_id" || key == "imsi" || key == "state")
            continue;
        if (key == "elapsed_ms" && value.is_number()) {
            add(QObject::tr("took"), QObject::tr("%1 ms").arg(value.get<double>(), 0, 'f', 0));
            continue;
        }
        if (key == "diagnostics" && value.is_array()) {
            for (const auto& d : value) {
                const QString detail = QString::fromStdString(d.value("detail", ""));
                add(QString::fromStdString(d.value("name", "")),
                    (d.value("ok", false) ? QObject::tr("passed") : QObject::tr("FAILED")) +
                        (detail.isEmpty() ? QString() : " (" + detail + ")"));
            }
        } else if (value.is_object()) {
            for (const auto& [k, v] : value.items()) add(QString::fromStdString(key + "." + k), text_of(v));
        } else if (!value.is_array()) {
            add(QString::fromStdString(key), text_of(value));
        }
    }
    return rows;
}

// The device's state after an operation, in the journal's words.
QString state_after(DeviceTask::Kind kind, const FlowResult& r) {
    const bool ok = r.outcome == Outcome::ok;
    switch (kind) {
        case DeviceTask::Kind::Provision:
            if (ok) return QObject::tr("active");
            if (r.outcome == Outcome::queued) return QObject::tr("provisioned, receipt waiting");
            return {};
        case DeviceTask::Kind::Query:
            if (!ok) return {};
            return r.details.value("provisioned", false) ? QObject::tr("provisioned") : QObject::tr("not provisioned");
        case DeviceTask::Kind::Deprovision: return ok ? QObject::tr("deprovisioned") : QString();
        default: return {};
    }
}

}  // namespace

DeviceTask::DeviceTask(Technician& technician, QObject* parent) : QObject(parent), technician_(technician) {}

DeviceTask::~DeviceTask() {
    if (cancelled_) *cancelled_ = true;
    if (worker_.joinable()) worker_.join();
}

void DeviceTask::fail_now(Kind kind, const QString& message) {
    FlowResult r{Outcome::usage, message.toStdString(), json::object()};
    finish(kind, r, {});
}

void DeviceTask::start(Kind kind, const QString& address, const QString& label, const QString& deviceId,
                       const QString& code, std::function<FlowResult(provisioner::Provisioner&, provisioner::Target&)> flow) {
    if (running()) return;
    if (worker_.joinable()) worker_.join();
    provisioner::Target t;
    t.address = address.trimmed().toStdString();
    if (!label.trimmed().isEmpty()) {
        std::string text = label.trimmed().toStdString();
        auto payload = BootstrapPayload::parse(text);
        sodium_memzero(text.data(), text.size());
        if (!payload) {
            fail_now(kind, tr("The label could not be read: %1").arg(QString::fromStdString(payload.error().message)));
            return;
        }
        t.device = payload->device;
        t.code = payload->code.reveal();
    } else {
        auto id = DeviceId::parse(deviceId.trimmed().toStdString());
        if (!id) {
            fail_now(kind, tr("The device id must be the 26 letters and digits on the label."));
            return;
        }
        t.device = *id;
        t.code = code.trimmed().toStdString();
    }
    if (kind != Kind::Deprovision && t.address.empty()) {
        sodium_memzero(t.code.data(), t.code.size());
        fail_now(kind, tr("Choose how to reach the device (BLE, NFC or an address)."));
        return;
    }
    kind_ = kind;
    state_ = State::Running;
    step_ = steps_ = 0;
    pairing_step_ = kind == Kind::Provision || kind == Kind::Diagnose ? 2 : 0;
    clear_outcome();
    nfc_ = t.address.rfind("nfc:", 0) == 0;
    step_text_ = nfc_ ? tr("hold the phone to the device") : tr("starting");
    device_id_ = QString::fromStdString(t.device.to_string());
    emit changed();

    cancelled_ = std::make_shared<std::atomic<bool>>(false);
    worker_ = std::thread([this, kind, home = technician_.home_path(), t = std::move(t), flow = std::move(flow),
                           cancelled = cancelled_]() mutable {
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
        FlowResult r = with_provisioner(home, progress, [&](provisioner::Provisioner& p) { return flow(p, t); });
        sodium_memzero(t.code.data(), t.code.size());
        QMetaObject::invokeMethod(
            this,
            [this, kind, r = std::move(r)] {
                finish(kind, r, device_id_);
                technician_.refresh();
            },
            Qt::QueuedConnection);
    });
}

void DeviceTask::provision(const QString& address, const QString& label, const QString& deviceId, const QString& code,
                           bool fieldMode) {
    start(Kind::Provision, address, label, deviceId, code, [fieldMode](provisioner::Provisioner& p, provisioner::Target& t) {
        return p.provision(t, provisioner::ProvisionOptions{fieldMode ? provisioner::Mode::field : provisioner::Mode::sealed, false});
    });
}

void DeviceTask::query(const QString& address, const QString& label, const QString& deviceId, const QString& code) {
    start(Kind::Query, address, label, deviceId, code,
          [](provisioner::Provisioner& p, provisioner::Target& t) { return p.query(t); });
}

void DeviceTask::diagnose(const QString& address, const QString& label, const QString& deviceId, const QString& code) {
    start(Kind::Diagnose, address, label, deviceId, code, [](provisioner::Provisioner& p, provisioner::Target& t) {
        std::vector<Diagnostic> all;
        for (std::uint64_t d = 1; d <= kMaxDiagnostic; ++d) all.push_back(static_cast<Diagnostic>(d));
        return p.diagnose(t, all);
    });
}

QString DeviceTask::deviceIdOf(const QString& label, const QString& deviceId) const {
    std::string text = (label.trimmed().isEmpty() ? deviceId : label).trimmed().toStdString();
    QString id;
    if (auto payload = BootstrapPayload::parse(text)) id = QString::fromStdString(payload->device.to_string());
    else if (auto parsed = DeviceId::parse(text)) id = QString::fromStdString(parsed->to_string());
    sodium_memzero(text.data(), text.size());
    return id;
}

void DeviceTask::deprovision(const QString& label, const QString& deviceId, const QString& reason) {
    const std::string why = reason.trimmed().isEmpty() ? std::string("deprovisioned by a technician") : reason.trimmed().toStdString();
    start(Kind::Deprovision, {}, label, deviceId, {},
          [why](provisioner::Provisioner& p, provisioner::Target& t) { return p.deprovision(t.device, why); });
}

void DeviceTask::finish(Kind kind, const FlowResult& result, const QString& device) {
    FlowResult r = result;
    if (!r.details.is_object()) r.details = json::object();  // a bare failure carries none
    const bool was_cancelled = state_ == State::Cancelling;
    kind_ = kind;
    if (r.outcome == Outcome::ok) state_ = State::Succeeded;
    else if (r.outcome == Outcome::queued) state_ = State::Queued;
    else state_ = was_cancelled ? State::Cancelled : State::Failed;
    const QString message = QString::fromStdString(r.message);
    message_ = state_ == State::Cancelled ? tr("Cancelled. %1").arg(message) : message;
    const std::string reason = r.details.value("reason", "");
    wrong_code_ = reason == "wrong_code";
    retry_after_ = reason == "backoff" ? r.details.value("retry_after_s", 0) : 0;
    if (wrong_code_) next_action_ = tr("Check the setup code on the label and type it again. After a few wrong codes the device asks you to wait.");
    else if (retry_after_ > 0) next_action_ = tr("Too many wrong codes: the device takes the next try in %n second(s).", "", retry_after_);
    else next_action_ = next_action_for(static_cast<int>(r.outcome));
    device_id_ = device;
    imsi_ = r.details.contains("imsi") && r.details["imsi"].is_string() ? QString::fromStdString(r.details["imsi"].get<std::string>())
                                                                        : QString();
    device_state_ = state_after(kind, r);
    finished_at_ = QDateTime::currentDateTime().toString("yyyy-MM-dd HH:mm:ss");
    details_ = rows_of(r.details);
    emit changed();
}

void DeviceTask::cancel() {
    if (state_ != State::Running) return;
    if (cancelled_) *cancelled_ = true;
    state_ = State::Cancelling;
    step_text_ = tr("stopping after the current step");
    emit changed();
}

void DeviceTask::reset() {
    if (running()) return;
    kind_ = Kind::None;
    state_ = State::Idle;
    step_ = steps_ = 0;
    step_text_.clear();
    clear_outcome();
    emit changed();
}

void DeviceTask::clear_outcome() {
    message_.clear();
    next_action_.clear();
    device_id_.clear();
    imsi_.clear();
    device_state_.clear();
    finished_at_.clear();
    details_.clear();
    wrong_code_ = false;
    retry_after_ = 0;
}

QString DeviceTask::summary() const {
    QStringList lines;
    if (!device_id_.isEmpty()) lines << tr("Device: %1").arg(device_id_);
    if (!imsi_.isEmpty()) lines << tr("IMSI: %1").arg(imsi_);
    if (!device_state_.isEmpty()) lines << tr("State: %1").arg(device_state_);
    if (!finished_at_.isEmpty()) lines << tr("Time: %1").arg(finished_at_);
    if (!message_.isEmpty()) lines << message_;
    return lines.join('\n');
}

void DeviceTask::copySummary() const {
    if (auto* clipboard = QGuiApplication::clipboard()) clipboard->setText(summary());
}

}  // namespace credprov::gui
