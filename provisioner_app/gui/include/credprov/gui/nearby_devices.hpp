// The devices nearby (QML: `nearby`): a live list from a BLE scan, updated
// as advertisements arrive: name, Bluetooth address, discriminator, signal
// strength, provisioned or not. A device only advertises the discriminator
// (the first 16 bits of its id); once the technician has the label or the
// device id (`wanted`), the rows it can be are marked (`matches`).
//
// The scan itself comes from a Scanner: the BlueZ central in a build with
// BLE (transport::ble::discover), else one that says BLE is missing. Tests
// give their own (a test double at the radio boundary; the real scan is
// tested on a real bluetoothd in tests/ble/).
#pragma once

#include <QAbstractListModel>
#include <QString>
#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "credprov/protocol/result.hpp"

namespace credprov::gui {

struct NearbyDevice {
    std::string address;  // Bluetooth address
    std::string name;
    std::uint16_t discriminator{0};
    bool provisioned{false};
    std::optional<int> rssi;  // dBm
};

// Scans on `adapter` for `duration`, calling on_found for every
// advertisement (from the scanning thread); the devices found, or why not.
using Scanner = std::function<Result<std::vector<NearbyDevice>>(
    const std::string& adapter, std::chrono::milliseconds duration, const std::function<void(const NearbyDevice&)>& on_found)>;

// The BlueZ scanner of this build (or one that answers "no BLE in this build").
[[nodiscard]] Scanner default_scanner();

class NearbyDevices : public QAbstractListModel {
    Q_OBJECT
    Q_PROPERTY(bool scanning READ scanning NOTIFY scanningChanged)
    Q_PROPERTY(QString error READ error NOTIFY errorChanged)
    Q_PROPERTY(int count READ count NOTIFY countChanged)
    Q_PROPERTY(QString wanted READ wanted WRITE setWanted NOTIFY wantedChanged)

public:
    enum Role { NameRole = Qt::UserRole + 1, AddressRole, DiscriminatorRole, RssiRole, ProvisionedRole, MatchesRole };

    explicit NearbyDevices(Scanner scanner = default_scanner(), QObject* parent = nullptr);
    ~NearbyDevices() override;

    [[nodiscard]] int rowCount(const QModelIndex& parent = QModelIndex()) const override;
    [[nodiscard]] QVariant data(const QModelIndex& index, int role) const override;
    [[nodiscard]] QHash<int, QByteArray> roleNames() const override;

    [[nodiscard]] bool scanning() const { return scanning_; }
    [[nodiscard]] QString error() const { return error_; }
    [[nodiscard]] int count() const { return static_cast<int>(rows_.size()); }
    // A device id (26 characters) or a label payload (CP1:...); other text clears it.
    [[nodiscard]] QString wanted() const { return wanted_; }
    void setWanted(const QString& text);

    // Starts a scan of `seconds` on the adapter (hci0 when empty); the list
    // starts empty and fills as devices answer. A running scan is not restarted.
    Q_INVOKABLE void scan(const QString& adapter, double seconds);

signals:
    void scanningChanged();
    void errorChanged();
    void countChanged();
    void wantedChanged();

private:
    void upsert(const NearbyDevice& d);
    void set_error(const QString& e);

    Scanner scanner_;
    std::vector<NearbyDevice> rows_;
    bool scanning_{false};
    QString error_;
    QString wanted_;
    std::optional<std::uint16_t> wanted_discriminator_;
    std::shared_ptr<std::atomic<bool>> alive_;
    std::thread worker_;
};

}  // namespace credprov::gui
