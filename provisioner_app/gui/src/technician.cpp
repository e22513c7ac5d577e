// Technician (technician.hpp).
#include "credprov/gui/technician.hpp"

#include <sodium.h>

#include <QMetaObject>

#include "credprov/provisioner/provisioning.hpp"
#include "credprov/provisioner/workspace.hpp"

namespace credprov::gui {

using provisioner::Outcome;
using provisioner::Workspace;

provisioner::FlowResult with_provisioner(const std::filesystem::path& home, const provisioner::Progress& progress,
                                         const std::function<provisioner::FlowResult(provisioner::Provisioner&)>& flow) {
    auto ws = Workspace::open(home);
    if (!ws) return {Outcome::storage, ws.error().message, {}};
    auto settings = ws->settings();
    if (!settings || settings->backend.empty() || !ws->has_key()) return {Outcome::not_enrolled, "this installation is not enrolled", {}};
    auto key = ws->load_key();
    if (!key) return {Outcome::storage, key.error().message, {}};
    provisioner::Provisioner p(*ws, *settings, *key, progress);
    return flow(p);
}

Technician::Technician(std::filesystem::path home, QObject* parent) : QObject(parent), home_(std::move(home)) { refresh(); }

Technician::~Technician() {
    if (worker_.joinable()) worker_.join();
}

void Technician::set_error(const QString& e) {
    if (e == error_) return;
    error_ = e;
    emit errorChanged();
}

void Technician::refresh() {
    auto ws = Workspace::open(home_);
    if (!ws) {
        set_error(QString::fromStdString(ws.error().message));
        return;
    }
    auto settings = ws->settings();
    auto queue = ws->pending_receipts();
    enrolled_ = settings && !settings->backend.empty() && ws->has_key();
    backend_url_ = settings ? QString::fromStdString(settings->backend) : QString();
    queued_ = queue ? static_cast<int>(queue->size()) : 0;
    emit changed();
}

void Technician::run(std::function<std::pair<bool, QString>()> work) {
    if (busy_) return;
    if (worker_.joinable()) worker_.join();
    busy_ = true;
    emit busyChanged();
    worker_ = std::thread([this, work = std::move(work)] {
        auto [ok, message] = work();
        QMetaObject::invokeMethod(
            this,
            [this, ok = ok, message = message] {
                busy_ = false;
                set_error(ok ? QString() : message);
                refresh();
                emit busyChanged();
                emit finished(ok, message);
            },
            Qt::QueuedConnection);
    });
}

void Technician::enroll(const QString& backendUrl, const QString& enrolmentToken, const QString& name) {
    std::string url = backendUrl.trimmed().toStdString();
    std::string token = enrolmentToken.trimmed().toStdString();
    std::string who = name.trimmed().isEmpty() ? std::string("credprov-app") : name.trimmed().toStdString();
    if (url.empty() || token.empty()) {
        set_error(tr("Enter the backend URL and the enrolment token from your operator."));
        return;
    }
    run([home = home_, url, token, who]() mutable -> std::pair<bool, QString> {
        auto ws = Workspace::open(home);
        if (!ws) {
            sodium_memzero(token.data(), token.size());
            return {false, QString::fromStdString(ws.error().message)};
        }
        auto r = provisioner::enroll(*ws, url, "", token, who);
        sodium_memzero(token.data(), token.size());
        return {r.outcome == Outcome::ok, QString::fromStdString(r.message)};
    });
}

void Technician::flushQueue() {
    run([home = home_]() -> std::pair<bool, QString> {
        auto r = with_provisioner(home, {}, [](provisioner::Provisioner& p) { return p.flush_queue(); });
        return {r.outcome == Outcome::ok, QString::fromStdString(r.message)};
    });
}

}  // namespace credprov::gui
