// The technician's workspace as the GUI sees it (QML: `technician`): whether
// this installation is enrolled, with which backend, how many receipts wait
// for the backend, and enrolment itself. A view over libcredprov-provisioner:
// no protocol or backend logic here. Long work runs off the UI thread; one
// operation at a time (`busy`).
#pragma once

#include <QObject>
#include <QString>
#include <atomic>
#include <filesystem>
#include <functional>
#include <thread>

#include "credprov/provisioner/provisioning.hpp"

namespace credprov::gui {

// Opens the workspace at `home` and runs `flow` with this installation's
// provisioner (its settings and key); answers not_enrolled or storage when
// there is none. Called on worker threads: each opens its own workspace.
[[nodiscard]] provisioner::FlowResult with_provisioner(const std::filesystem::path& home, const provisioner::Progress& progress,
                                                      const std::function<provisioner::FlowResult(provisioner::Provisioner&)>& flow);

class Technician : public QObject {
    Q_OBJECT
    Q_PROPERTY(bool enrolled READ enrolled NOTIFY changed)
    Q_PROPERTY(QString backendUrl READ backendUrl NOTIFY changed)
    Q_PROPERTY(int queuedReceipts READ queuedReceipts NOTIFY changed)
    Q_PROPERTY(bool busy READ busy NOTIFY busyChanged)
    Q_PROPERTY(QString error READ error NOTIFY errorChanged)
    Q_PROPERTY(QString home READ home CONSTANT)

public:
    // home: the workspace folder (the CLI's --home; default ~/.config/credprov).
    explicit Technician(std::filesystem::path home, QObject* parent = nullptr);
    ~Technician() override;

    [[nodiscard]] bool enrolled() const { return enrolled_; }
    [[nodiscard]] QString backendUrl() const { return backend_url_; }
    [[nodiscard]] int queuedReceipts() const { return queued_; }
    [[nodiscard]] bool busy() const { return busy_; }
    [[nodiscard]] QString error() const { return error_; }
    [[nodiscard]] QString home() const { return QString::fromStdString(home_.string()); }
    [[nodiscard]] const std::filesystem::path& home_path() const { return home_; }

    // Re-reads the workspace (settings, key, queue).
    Q_INVOKABLE void refresh();
    // Creates this installation's key if needed and enrols it with an
    // enrolment token from the operator (cpe_...). The token is wiped after use.
    Q_INVOKABLE void enroll(const QString& backendUrl, const QString& enrolmentToken, const QString& name);
    // Posts the receipts that wait for the backend (after field work offline).
    Q_INVOKABLE void flushQueue();

signals:
    void changed();
    void busyChanged();
    void errorChanged();
    void finished(bool ok, const QString& message);

private:
    void run(std::function<std::pair<bool, QString>()> work);
    void set_error(const QString& e);

    std::filesystem::path home_;
    bool enrolled_{false};
    QString backend_url_;
    int queued_{0};
    bool busy_{false};
    QString error_;
    std::thread worker_;
};

}  // namespace credprov::gui
