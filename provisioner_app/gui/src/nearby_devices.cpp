// NearbyDevices (nearby_devices.hpp).
#include "credprov/gui/nearby_devices.hpp"

#include <sodium.h>

#include <QMetaObject>
#include <QRegularExpression>
#include <algorithm>

#include "credprov/protocol/identifiers.hpp"
#ifdef CREDPROV_HAVE_BLE
#include "credprov/transport/ble/central.hpp"
#include "credprov/transport/ble/gatt_profile.hpp"
#endif

namespace credprov::gui {

Scanner default_scanner() {
#ifdef CREDPROV_HAVE_BLE
    return [](const std::string& adapter, std::chrono::milliseconds duration,
              const std::function<void(const NearbyDevice&)>& on_found) -> Result<std::vector<NearbyDevice>> {
        if (!transport::ble::valid_adapter_name(adapter)) return make_error(ErrorCode::malformed, "the adapter must be hci0..hci99");
        auto convert = [](const transport::ble::DiscoveredDevice& d) {
            return NearbyDevice{d.address, d.name, d.discriminator, d.provisioned,
                                d.rssi ? std::optional<int>(*d.rssi) : std::nullopt};
        };
        auto found = transport::ble::discover(transport::ble::CentralOptions{adapter, true, {}}, duration,
                                              [&](const transport::ble::DiscoveredDevice& d) { on_found(convert(d)); });
        if (!found) return found.error();
        std::vector<NearbyDevice> out;
        for (const auto& d : *found) out.push_back(convert(d));
        return out;
    };
#else
    return [](const std::string&, std::chrono::milliseconds,
              const std::function<void(const NearbyDevice&)>&) -> Result<std::vector<NearbyDevice>> {
        return make_error(ErrorCode::io, "this build has no BLE support: reach the device over NFC or by its address");
    };
#endif
}

NearbyDevices::NearbyDevices(Scanner scanner, QObject* parent)
    : QAbstractListModel(parent), scanner_(std::move(scanner)), alive_(std::make_shared<std::atomic<bool>>(true)) {}

NearbyDevices::~NearbyDevices() {
    *alive_ = false;
    if (worker_.joinable()) worker_.join();
}

int NearbyDevices::rowCount(const QModelIndex& parent) const { return parent.isValid() ? 0 : static_cast<int>(rows_.size()); }

QVariant NearbyDevices::data(const QModelIndex& index, int role) const {
    if (!index.isValid() || index.row() < 0 || index.row() >= count()) return {};
    const NearbyDevice& d = rows_[static_cast<std::size_t>(index.row())];
    switch (role) {
        case NameRole: return QString::fromStdString(d.name);
        case AddressRole: return QString::fromStdString(d.address);
        case DiscriminatorRole: return QString("%1").arg(d.discriminator, 4, 16, QChar('0'));
        case RssiRole: return d.rssi ? QVariant(*d.rssi) : QVariant();
        case ProvisionedRole: return d.provisioned;
        case MatchesRole: return wanted_discriminator_ && *wanted_discriminator_ == d.discriminator;
        default: return {};
    }
}

QHash<int, QByteArray> NearbyDevices::roleNames() const {
    return {{NameRole, "name"}, {AddressRole, "address"}, {DiscriminatorRole, "discriminator"},
            {RssiRole, "rssi"},  {ProvisionedRole, "provisioned"}, {MatchesRole, "matches"}};
}

void NearbyDevices::setWanted(const QString& text) {
    if (text == wanted_) return;
    wanted_ = text;
    std::string s = text.trimmed().toStdString();
    std::optional<std::uint16_t> disc;
    if (auto id = DeviceId::parse(s)) {
        disc = id->discriminator();
    } else if (auto payload = BootstrapPayload::parse(s)) {
        disc = payload->device.discriminator();
    }
    sodium_memzero(s.data(), s.size());
    wanted_discriminator_ = disc;
    if (!rows_.empty()) emit dataChanged(index(0), index(count() - 1), {MatchesRole});
    emit wantedChanged();
}

void NearbyDevices::set_error(const QString& e) {
    if (e == error_) return;
    error_ = e;
    emit errorChanged();
}

// One row per Bluetooth address; a newer advertisement updates it. The list
// is kept strongest signal first.
void NearbyDevices::upsert(const NearbyDevice& d) {
    auto it = std::find_if(rows_.begin(), rows_.end(), [&](const NearbyDevice& r) { return r.address == d.address; });
    if (it != rows_.end()) {
        const auto row = static_cast<int>(it - rows_.begin());
        NearbyDevice merged = d;
        if (merged.name.empty()) merged.name = it->name;
        if (!merged.rssi) merged.rssi = it->rssi;
        *it = merged;
        emit dataChanged(index(row), index(row));
        return;
    }
    auto weaker = std::find_if(rows_.begin(), rows_.end(),
                               [&](const NearbyDevice& r) { return r.rssi.value_or(-200) < d.rssi.value_or(-200); });
    const auto row = static_cast<int>(weaker - rows_.begin());
    beginInsertRows({}, row, row);
    rows_.insert(weaker, d);
    endInsertRows();
    emit countChanged();
}

void NearbyDevices::scan(const QString& adapter, double seconds) {
    if (scanning_) return;
    if (worker_.joinable()) worker_.join();
    const std::string hci = adapter.trimmed().isEmpty() ? std::string("hci0") : adapter.trimmed().toStdString();
    const auto duration = std::chrono::milliseconds(static_cast<long>(std::clamp(seconds, 0.5, 120.0) * 1000));
    beginResetModel();
    rows_.clear();
    endResetModel();
    emit countChanged();
    set_error({});
    scanning_ = true;
    emit scanningChanged();
    worker_ = std::thread([this, hci, duration, alive = alive_] {
        auto found = scanner_(hci, duration, [this, alive](const NearbyDevice& d) {
            if (!*alive) return;
            QMetaObject::invokeMethod(this, [this, d] { upsert(d); }, Qt::QueuedConnection);
        });
        if (!*alive) return;
        const QString error = found ? QString() : QString::fromStdString(found.error().message);
        auto all = found ? *found : std::vector<NearbyDevice>{};
        QMetaObject::invokeMethod(
            this,
            [this, error, all = std::move(all)] {
                for (const auto& d : all) upsert(d);  // a device seen only in the final list
                set_error(error);
                scanning_ = false;
                emit scanningChanged();
            },
            Qt::QueuedConnection);
    });
}

}  // namespace credprov::gui
