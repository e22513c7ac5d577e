// Reading a device's label without typing it (QML: `labels`): the QR code in
// an image file (a photo or the PNG `credprov-agentctl label --png` writes),
// decoded with ZXing, or the NFC sticker held to the reader. A payload is
// only handed on (`labelRead`) once it parses as a credprov label; it holds
// the setup code, so the GUI puts it straight into the (hidden) label field.
#pragma once

#include <QObject>
#include <QString>
#include <QUrl>
#include <thread>

namespace credprov::gui {

// The text of the first QR code in the image file; an error sentence if the
// file is not an image or holds no readable QR code.
struct DecodedImage {
    bool ok{false};
    QString text;  // the payload, or the error sentence
};
[[nodiscard]] DecodedImage decode_qr_image(const QString& path);

class LabelReader : public QObject {
    Q_OBJECT
    Q_PROPERTY(bool busy READ busy NOTIFY busyChanged)
    Q_PROPERTY(QString error READ error NOTIFY errorChanged)

public:
    explicit LabelReader(QObject* parent = nullptr);
    ~LabelReader() override;

    [[nodiscard]] bool busy() const { return busy_; }
    [[nodiscard]] QString error() const { return error_; }

    // file: a local file URL (from a file dialog) or a path.
    Q_INVOKABLE void readImage(const QUrl& file);
    // address: nfc:[<libnfc connstring>]; waits up to 10 s for the sticker.
    Q_INVOKABLE void readNfcSticker(const QString& address);

signals:
    void labelRead(const QString& payload);
    void busyChanged();
    void errorChanged();

private:
    void take(bool ok, QString text);
    void set_error(const QString& e);

    bool busy_{false};
    QString error_;
    std::thread worker_;
};

}  // namespace credprov::gui
