// HistoryModel (history_model.hpp).
#include "credprov/gui/history_model.hpp"

#include <QDateTime>

#include "credprov/provisioner/workspace.hpp"

namespace credprov::gui {

HistoryModel::HistoryModel(Technician& technician, QObject* parent) : QAbstractListModel(parent), technician_(technician) {
    connect(&technician_, &Technician::changed, this, &HistoryModel::refresh);
    refresh();
}

int HistoryModel::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : count(); }

QVariant HistoryModel::data(const QModelIndex& index, int role) const {
    if (!index.isValid() || index.row() < 0 || index.row() >= count()) return {};
    const Row& r = shown_[static_cast<std::size_t>(index.row())];
    switch (role) {
        case KindRole: return r.kind;
        case DeviceRole: return r.device;
        case StateRole: return r.state;
        case ImsiRole: return r.imsi;
        case DetailRole: return r.detail;
        case StartedRole: return r.started;
        case Qt::DisplayRole: return r.kind + " " + r.device + " " + r.state;
        default: return {};
    }
}

QHash<int, QByteArray> HistoryModel::roleNames() const {
    return {{KindRole, "kind"},   {DeviceRole, "device"}, {StateRole, "state"},
            {ImsiRole, "imsi"},   {DetailRole, "detail"}, {StartedRole, "started"}};
}

void HistoryModel::setFilter(const QString& filter) {
    if (filter == filter_) return;
    filter_ = filter;
    emit filterChanged();
    apply_filter();
}

void HistoryModel::refresh() {
    all_.clear();
    auto ws = provisioner::Workspace::open(technician_.home_path());
    if (ws) {
        auto ops = ws->history(500);
        if (ops) {
            for (const auto& op : *ops) {
                all_.push_back(Row{QString::fromStdString(op.kind), QString::fromStdString(op.device_id),
                                   QString::fromStdString(op.state), QString::fromStdString(op.imsi),
                                   QString::fromStdString(op.detail),
                                   QDateTime::fromSecsSinceEpoch(op.started_at).toString(Qt::ISODate)});
            }
        }
    }
    apply_filter();
}

void HistoryModel::apply_filter() {
    beginResetModel();
    shown_.clear();
    const QString f = filter_.trimmed();
    for (const auto& r : all_) {
        if (f.isEmpty() || r.kind.contains(f, Qt::CaseInsensitive) || r.device.contains(f, Qt::CaseInsensitive) ||
            r.state.contains(f, Qt::CaseInsensitive) || r.imsi.contains(f, Qt::CaseInsensitive) ||
            r.detail.contains(f, Qt::CaseInsensitive)) {
            shown_.push_back(r);
        }
    }
    endResetModel();
    emit countChanged();
}

}  // namespace credprov::gui
