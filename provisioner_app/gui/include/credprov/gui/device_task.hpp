// One provisioning as the GUI shows it (QML: `provisioning`): the steps of
// the core's flow (pair, authorise, deliver, receipt, active) with progress,
// the outcome in plain words and the next action to take. Runs the
// provisioner core on a worker thread; progress and the result arrive on the
// UI thread as property changes.
//
// Cancel: the core finishes the step it is in (a link step times out on its
// own); the attempt stays in the journal, so provisioning the same device
// again resumes it without a second credential.
#pragma once

#include <QObject>
#include <QString>
#include <atomic>
#include <memory>
#include <thread>

#include "credprov/gui/technician.hpp"

namespace credprov::gui {

class ProvisionTask : public QObject {
    Q_OBJECT
    Q_PROPERTY(State state READ state NOTIFY changed)
    Q_PROPERTY(int step READ step NOTIFY changed)
    Q_PROPERTY(int steps READ steps NOTIFY changed)
    Q_PROPERTY(QString stepText READ stepText NOTIFY changed)
    Q_PROPERTY(QString message READ message NOTIFY changed)
    Q_PROPERTY(QString nextAction READ nextAction NOTIFY changed)
    Q_PROPERTY(QString deviceId READ deviceId NOTIFY changed)
    Q_PROPERTY(QString imsi READ imsi NOTIFY changed)
    Q_PROPERTY(bool running READ running NOTIFY changed)

public:
    enum class State { Idle, Running, Cancelling, Succeeded, Queued, Cancelled, Failed };
    Q_ENUM(State)

    explicit ProvisionTask(Technician& technician, QObject* parent = nullptr);
    ~ProvisionTask() override;

    [[nodiscard]] State state() const { return state_; }
    [[nodiscard]] int step() const { return step_; }
    [[nodiscard]] int steps() const { return steps_; }
    [[nodiscard]] QString stepText() const { return step_text_; }
    [[nodiscard]] QString message() const { return message_; }
    [[nodiscard]] QString nextAction() const { return next_action_; }
    [[nodiscard]] QString deviceId() const { return device_id_; }
    [[nodiscard]] QString imsi() const { return imsi_; }
    [[nodiscard]] bool running() const { return state_ == State::Running || state_ == State::Cancelling; }

    // address: tcp://host:port, unix:/path, ble:[id][@hciN] or nfc:[connstring];
    // target: a label payload (CP1:...) in `label`, or a device id and setup code.
    // fieldMode: use an authorisation from the local pool (works offline).
    Q_INVOKABLE void start(const QString& address, const QString& label, const QString& deviceId, const QString& code,
                           bool fieldMode);
    Q_INVOKABLE void cancel();
    // Back to Idle after a result has been seen.
    Q_INVOKABLE void reset();

signals:
    void changed();

private:
    void finish(int outcome, const QString& message, const QString& device, const QString& imsi);

    Technician& technician_;
    State state_{State::Idle};
    int step_{0};
    int steps_{0};
    QString step_text_, message_, next_action_, device_id_, imsi_;
    std::shared_ptr<std::atomic<bool>> cancelled_;
    std::thread worker_;
};

// The next thing a technician can do after an outcome (plain words).
[[nodiscard]] QString next_action_for(int outcome);

}  // namespace credprov::gui
