// The journal as a searchable list (QML: `history`): what this installation
// did, newest first, with kind, device, state, IMSI and the outcome's detail.
// `filter` keeps the rows where any of those contains the text (case-insensitive).
#pragma once

#include <QAbstractListModel>
#include <QString>
#include <vector>

#include "credprov/gui/technician.hpp"

namespace credprov::gui {

class HistoryModel : public QAbstractListModel {
    Q_OBJECT
    Q_PROPERTY(QString filter READ filter WRITE setFilter NOTIFY filterChanged)
    Q_PROPERTY(int count READ count NOTIFY countChanged)

public:
    enum Role { KindRole = Qt::UserRole + 1, DeviceRole, StateRole, ImsiRole, DetailRole, StartedRole };
    struct Row {
        QString kind, device, state, imsi, detail, started;
    };

    explicit HistoryModel(Technician& technician, QObject* parent = nullptr);

    [[nodiscard]] int rowCount(const QModelIndex& parent = QModelIndex()) const override;
    [[nodiscard]] QVariant data(const QModelIndex& index, int role) const override;
    [[nodiscard]] QHash<int, QByteArray> roleNames() const override;

    [[nodiscard]] QString filter() const { return filter_; }
    void setFilter(const QString& filter);
    [[nodiscard]] int count() const { return static_cast<int>(shown_.size()); }

    // Re-reads the journal (the last 500 operations).
    Q_INVOKABLE void refresh();

signals:
    void filterChanged();
    void countChanged();

private:
    void apply_filter();

    Technician& technician_;
    QString filter_;
    std::vector<Row> all_;
    std::vector<Row> shown_;
};

}  // namespace credprov::gui
