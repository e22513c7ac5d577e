// One operation on one device as the GUI shows it (QML: `task`): provision,
// query, diagnose or deprovision. Shows the steps of the core's flow (for a
// provisioning: authorise, pair, bundle, deliver, receipt) with progress, the
// outcome in plain words, the next action to take, and the result (device
// id, IMSI, state, time, and what the device reported). Runs the provisioner
// core on a worker thread; progress and the result arrive on the UI thread as
// property changes. One operation at a time.
//
// Cancel: the core finishes the step it is in (a link step times out on its
// own); the attempt stays in the journal, so provisioning the same device
// again resumes it without a second credential.
//
// A wrong setup code and the device's back-off are told apart (`wrongCode`,
// `retryAfter`): the technician retypes the code, or waits that long.
#pragma once

#include <QObject>
#include <QString>
#include <QVariantList>
#include <atomic>
#include <memory>
#include <thread>

#include "credprov/gui/technician.hpp"

namespace credprov::gui {

class DeviceTask : public QObject {
    Q_OBJECT
    Q_PROPERTY(Kind kind READ kind NOTIFY changed)
    Q_PROPERTY(State state READ state NOTIFY changed)
    Q_PROPERTY(int step READ step NOTIFY changed)
    Q_PROPERTY(int steps READ steps NOTIFY changed)
    Q_PROPERTY(QString stepText READ stepText NOTIFY changed)
    Q_PROPERTY(QString message READ message NOTIFY changed)
    Q_PROPERTY(QString nextAction READ nextAction NOTIFY changed)
    Q_PROPERTY(QString deviceId READ deviceId NOTIFY changed)
    Q_PROPERTY(QString imsi READ imsi NOTIFY changed)
    Q_PROPERTY(QString deviceState READ deviceState NOTIFY changed)
    Q_PROPERTY(QString finishedAt READ finishedAt NOTIFY changed)
    Q_PROPERTY(QVariantList details READ details NOTIFY changed)
    Q_PROPERTY(bool wrongCode READ wrongCode NOTIFY changed)
    Q_PROPERTY(int retryAfter READ retryAfter NOTIFY changed)
    Q_PROPERTY(bool running READ running NOTIFY changed)
    Q_PROPERTY(bool failed READ failed NOTIFY changed)
    Q_PROPERTY(bool holdToDevice READ holdToDevice NOTIFY changed)

public:
    enum class Kind { None, Provision, Query, Diagnose, Deprovision };
    Q_ENUM(Kind)
    enum class State { Idle, Running, Cancelling, Succeeded, Queued, Cancelled, Failed };
    Q_ENUM(State)

    explicit DeviceTask(Technician& technician, QObject* parent = nullptr);
    ~DeviceTask() override;

    [[nodiscard]] Kind kind() const { return kind_; }
    [[nodiscard]] State state() const { return state_; }
    [[nodiscard]] int step() const { return step_; }
    [[nodiscard]] int steps() const { return steps_; }
    [[nodiscard]] QString stepText() const { return step_text_; }
    [[nodiscard]] QString message() const { return message_; }
    [[nodiscard]] QString nextAction() const { return next_action_; }
    [[nodiscard]] QString deviceId() const { return device_id_; }
    [[nodiscard]] QString imsi() const { return imsi_; }
    [[nodiscard]] QString deviceState() const { return device_state_; }
    [[nodiscard]] QString finishedAt() const { return finished_at_; }
    // What the device or the backend reported, as {name, value} rows.
    [[nodiscard]] QVariantList details() const { return details_; }
    [[nodiscard]] bool wrongCode() const { return wrong_code_; }
    // Seconds the device asks to wait before the next pairing (0: none).
    [[nodiscard]] int retryAfter() const { return retry_after_; }
    [[nodiscard]] bool running() const { return state_ == State::Running || state_ == State::Cancelling; }
    [[nodiscard]] bool failed() const { return state_ == State::Failed || state_ == State::Cancelled; }
    // Running over NFC and still looking for the device: "hold the phone to it".
    [[nodiscard]] bool holdToDevice() const { return running() && nfc_ && step_ <= pairing_step_; }

    // address: tcp://host:port, unix:/path, ble:[id][@hciN] or nfc:[connstring];
    // the device: a label payload (CP1:...) in `label`, or a device id and
    // setup code. fieldMode: an authorisation from the local pool (offline).
    Q_INVOKABLE void provision(const QString& address, const QString& label, const QString& deviceId, const QString& code,
                               bool fieldMode);
    // What the device holds (state, IMSI, settings, software).
    Q_INVOKABLE void query(const QString& address, const QString& label, const QString& deviceId, const QString& code);
    // Every diagnostic the device has (self test, store, AKA, transport).
    Q_INVOKABLE void diagnose(const QString& address, const QString& label, const QString& deviceId, const QString& code);
    // Through the backend only; the device need not be reachable. The GUI
    // asks for a confirmation that names the device first.
    // The device from the label, or else from the device id.
    Q_INVOKABLE void deprovision(const QString& label, const QString& deviceId, const QString& reason);
    // The device id a label payload or a typed id names ("" if neither
    // parses): what a confirmation shows before a deprovisioning.
    [[nodiscard]] Q_INVOKABLE QString deviceIdOf(const QString& label, const QString& deviceId) const;
    Q_INVOKABLE void cancel();
    // Back to Idle after a result has been seen.
    Q_INVOKABLE void reset();
    // The result as text (device, IMSI, state, time, message) for the clipboard.
    [[nodiscard]] Q_INVOKABLE QString summary() const;
    Q_INVOKABLE void copySummary() const;

signals:
    void changed();

private:
    struct Work;
    void start(Kind kind, const QString& address, const QString& label, const QString& deviceId, const QString& code,
               std::function<provisioner::FlowResult(provisioner::Provisioner&, provisioner::Target&)> flow);
    void finish(Kind kind, const provisioner::FlowResult& r, const QString& device);
    void fail_now(Kind kind, const QString& message);
    void clear_outcome();  // message, next action, result

    Technician& technician_;
    Kind kind_{Kind::None};
    State state_{State::Idle};
    int step_{0};
    int steps_{0};
    int pairing_step_{0};
    bool nfc_{false};
    QString step_text_, message_, next_action_, device_id_, imsi_, device_state_, finished_at_;
    QVariantList details_;
    bool wrong_code_{false};
    int retry_after_{0};
    std::shared_ptr<std::atomic<bool>> cancelled_;
    std::thread worker_;
};

// The next thing a technician can do after an outcome (plain words).
[[nodiscard]] QString next_action_for(int outcome);

}  // namespace credprov::gui
