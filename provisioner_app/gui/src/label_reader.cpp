// LabelReader (label_reader.hpp).
#include "credprov/gui/label_reader.hpp"

#include <sodium.h>

#include <QFileInfo>
#include <QImage>
#include <QImageReader>
#include <QMetaObject>
#include <ZXing/ReadBarcode.h>

#include "credprov/protocol/identifiers.hpp"
#include "credprov/provisioner/provisioning.hpp"

namespace credprov::gui {

DecodedImage decode_qr_image(const QString& path) {
    if (!QFileInfo(path).isFile()) return {false, QObject::tr("%1 is not a file.").arg(path)};
    QImageReader reader(path);
    // A label is a few hundred pixels; a phone photo a few thousand. Refuse
    // what no label needs rather than allocate for it.
    constexpr int kMaxSide = 8000;
    const QSize size = reader.size();
    if (size.isValid() && (size.width() > kMaxSide || size.height() > kMaxSide))
        return {false, QObject::tr("The image is too large (%1x%2 pixels).").arg(size.width()).arg(size.height())};
    QImage image = reader.read();
    if (image.isNull()) return {false, QObject::tr("%1 is not an image this app can read: %2").arg(path, reader.errorString())};
    image = image.convertToFormat(QImage::Format_Grayscale8);
    const ZXing::ImageView view(image.constBits(), image.width(), image.height(), ZXing::ImageFormat::Lum,
                                static_cast<int>(image.bytesPerLine()));
    const auto result = ZXing::ReadBarcode(view, ZXing::DecodeHints().setFormats(ZXing::BarcodeFormat::QRCode).setTryHarder(true));
    if (!result.isValid()) return {false, QObject::tr("No QR code was found in the image: take the photo closer and straighter.")};
    return {true, QString::fromStdString(result.text())};
}

LabelReader::LabelReader(QObject* parent) : QObject(parent) {}

LabelReader::~LabelReader() {
    if (worker_.joinable()) worker_.join();
}

void LabelReader::set_error(const QString& e) {
    if (e == error_) return;
    error_ = e;
    emit errorChanged();
}

// Hands on a payload that parses as a label; else the reason.
void LabelReader::take(bool ok, QString text) {
    if (ok) {
        std::string s = text.toStdString();
        auto payload = BootstrapPayload::parse(s);
        sodium_memzero(s.data(), s.size());
        if (!payload) {
            ok = false;
            text = tr("This is not a credprov label: %1").arg(QString::fromStdString(payload.error().message));
        }
    }
    if (!ok) {
        set_error(text);
        return;
    }
    set_error({});
    emit labelRead(text);
    text.fill(QChar(u'0'));
}

void LabelReader::readImage(const QUrl& file) {
    if (busy_) return;
    const QString path = file.isLocalFile() ? file.toLocalFile() : file.toString();
    auto decoded = decode_qr_image(path);
    take(decoded.ok, std::move(decoded.text));
}

void LabelReader::readNfcSticker(const QString& address) {
    if (busy_) return;
    if (worker_.joinable()) worker_.join();
    busy_ = true;
    emit busyChanged();
    set_error({});
    worker_ = std::thread([this, address = address.trimmed().toStdString()] {
        auto text = provisioner::read_nfc_label(address.empty() ? std::string("nfc:") : address);
        const bool ok = text.ok();
        QString result = ok ? QString::fromStdString(*text) : QString::fromStdString(text.error().message);
        if (ok) sodium_memzero(text->data(), text->size());
        QMetaObject::invokeMethod(
            this,
            [this, ok, result = std::move(result)]() mutable {
                busy_ = false;
                emit busyChanged();
                take(ok, std::move(result));
            },
            Qt::QueuedConnection);
    });
}

}  // namespace credprov::gui
