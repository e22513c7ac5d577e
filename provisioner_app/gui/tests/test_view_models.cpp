// Qt Test for the GUI's view models (state changes, errors, cancellation)
// and the QML: the window loads with every model and without a warning, and
// renders at phone and desktop sizes. The whole app against a real backend
// and agent is tests/gui/test_gui_e2e.cpp.
#include <ZXing/BitMatrix.h>
#include <ZXing/MultiFormatWriter.h>

#include <QQmlApplicationEngine>
#include <QQuickWindow>
#include <QQmlContext>
#include <QSignalSpy>
#include <QTemporaryDir>
#include <QtTest>

#include "credprov/gui/app_models.hpp"
#include "credprov/protocol/identifiers.hpp"
#include "credprov/provisioner/workspace.hpp"

using credprov::gui::AppModels;
using credprov::gui::DeviceTask;
using credprov::gui::HistoryModel;
using credprov::gui::LabelReader;
using credprov::gui::NearbyDevice;
using credprov::gui::NearbyDevices;
using credprov::gui::Technician;

namespace {
// A device id that parses (26 base32 characters).
const QString kDevice = QStringLiteral("aaaqeayeaudaocajbifqydiob4");

// A QR code of `text` as a PNG file (ZXing's writer), with a quiet zone, as
// a label printer or a photo would give it.
QString write_qr_png(const QDir& dir, const QString& name, const std::string& text) {
    auto matrix = ZXing::MultiFormatWriter(ZXing::BarcodeFormat::QRCode).setMargin(4).encode(text, 0, 0);
    QImage image(matrix.width(), matrix.height(), QImage::Format_Grayscale8);
    for (int y = 0; y < matrix.height(); ++y)
        for (int x = 0; x < matrix.width(); ++x) image.setPixel(x, y, matrix.get(x, y) ? qRgb(0, 0, 0) : qRgb(255, 255, 255));
    image = image.scaled(image.width() * 8, image.height() * 8);
    const QString path = dir.filePath(name);
    image.save(path);
    return path;
}

// A label payload for kDevice with this code, as the agent prints it.
std::string label_for(const std::string& code) {
    auto setup_code = credprov::SetupCode::parse(code);
    const credprov::BootstrapPayload p{*credprov::DeviceId::parse(kDevice.toStdString()), std::move(*setup_code)};
    const auto bytes = p.encode();
    return std::string(bytes.view().begin(), bytes.view().end());
}
}  // namespace

// Two journal entries, as the provisioner core writes them.
void seed_history(const QString& home) {
    auto ws = credprov::provisioner::Workspace::open(home.toStdString());
    QVERIFY(ws.ok());
    credprov::provisioner::Workspace::Operation a;
    a.id = "att_1";
    a.started_at = 1790000000;
    a.kind = "provision";
    a.device_id = kDevice.toStdString();
    a.state = "active";
    a.imsi = "001010000000001";
    QVERIFY(ws->record(a).ok());
    auto b = a;
    b.id = "att_2";
    b.started_at = 1790000100;
    b.device_id = "baaqeayeaudaocajbifqydiob4";
    b.state = "failed";
    b.imsi.clear();
    b.detail = "the link dropped during pairing";
    QVERIFY(ws->record(b).ok());
}

class ViewModels : public QObject {
    Q_OBJECT

private slots:
    void the_history_lists_the_journal_and_filters_it() {
        QTemporaryDir home;
        seed_history(home.path());
        Technician t(home.path().toStdString());
        HistoryModel h(t);
        QCOMPARE(h.count(), 2);
        QCOMPARE(h.rowCount(), 2);
        h.setFilter("0010100");
        QCOMPARE(h.count(), 1);
        QCOMPARE(h.data(h.index(0), HistoryModel::StateRole).toString(), QString("active"));
        h.setFilter("LINK DROPPED");
        QCOMPARE(h.count(), 1);
        QCOMPARE(h.data(h.index(0), HistoryModel::DeviceRole).toString(), QString("baaqeayeaudaocajbifqydiob4"));
        h.setFilter("nothing like this");
        QCOMPARE(h.count(), 0);
        h.setFilter("");
        QCOMPARE(h.count(), 2);
    }

    void a_new_installation_is_not_enrolled() {
        QTemporaryDir home;
        Technician t(home.path().toStdString());
        QVERIFY(!t.enrolled());
        QCOMPARE(t.queuedReceipts(), 0);
        QVERIFY(t.backendUrl().isEmpty());
    }

    void enrolment_needs_url_and_token() {
        QTemporaryDir home;
        Technician t(home.path().toStdString());
        QSignalSpy errors(&t, &Technician::errorChanged);
        t.enroll("", "", "");
        QCOMPARE(errors.count(), 1);
        QVERIFY(t.error().contains("enrolment token"));
        QVERIFY(!t.busy());
    }

    void enrolment_against_an_unreachable_backend_fails_off_the_ui_thread() {
        QTemporaryDir home;
        Technician t(home.path().toStdString());
        QSignalSpy done(&t, &Technician::finished);
        t.enroll("http://127.0.0.1:1", "cpe_" + QString(64, 'a'), "test");
        QVERIFY(t.busy());  // the call returned at once; the work runs on a worker thread
        QVERIFY(done.wait(20000));
        QCOMPARE(done.first().at(0).toBool(), false);
        QVERIFY(!t.busy());
        QVERIFY(!t.error().isEmpty());
        QVERIFY(!t.enrolled());
    }

    void a_bad_device_id_or_label_fails_at_once_with_the_next_action() {
        QTemporaryDir home;
        Technician t(home.path().toStdString());
        DeviceTask p(t);
        p.provision("tcp://127.0.0.1:1", "", "not-a-device", "1234567890", false);
        QCOMPARE(p.state(), DeviceTask::State::Failed);
        QVERIFY(p.message().contains("26 letters"));
        QVERIFY(!p.nextAction().isEmpty());
        p.reset();
        QCOMPARE(p.state(), DeviceTask::State::Idle);
        p.provision("tcp://127.0.0.1:1", "CP1:NOPE", "", "", false);
        QCOMPARE(p.state(), DeviceTask::State::Failed);
        QVERIFY(p.message().contains("label"));
        p.reset();
        p.provision("", "", kDevice, "1234567890", false);
        QCOMPARE(p.state(), DeviceTask::State::Failed);
    }

    void provisioning_runs_then_reports_that_enrolment_is_missing() {
        QTemporaryDir home;
        Technician t(home.path().toStdString());
        DeviceTask p(t);
        QSignalSpy changed(&p, &DeviceTask::changed);
        p.provision("tcp://127.0.0.1:1", "", kDevice, "1234567890", false);
        QCOMPARE(p.state(), DeviceTask::State::Running);
        QVERIFY(p.running());
        QCOMPARE(p.deviceId(), kDevice);
        QTRY_VERIFY_WITH_TIMEOUT(!p.running(), 20000);
        QCOMPARE(p.state(), DeviceTask::State::Failed);
        QVERIFY(p.nextAction().contains("Enrol"));
        QVERIFY(changed.count() >= 2);
    }

    void a_label_is_read_from_the_qr_code_in_an_image() {
        QTemporaryDir dir;
        const std::string payload = label_for("1234567890");
        const QString png = write_qr_png(QDir(dir.path()), "label.png", payload);
        LabelReader r;
        QSignalSpy read(&r, &LabelReader::labelRead);
        r.readImage(QUrl::fromLocalFile(png));
        QCOMPARE(read.count(), 1);
        QCOMPARE(read.first().at(0).toString(), QString::fromStdString(payload));
        QVERIFY(r.error().isEmpty());
        // A plain path (typed into the field) works too.
        r.readImage(QUrl(png));
        QCOMPARE(read.count(), 2);
    }

    void an_image_without_a_label_gives_a_reason_and_no_payload() {
        QTemporaryDir dir;
        LabelReader r;
        QSignalSpy read(&r, &LabelReader::labelRead);
        // A QR code, but not of a credprov label.
        r.readImage(QUrl::fromLocalFile(write_qr_png(QDir(dir.path()), "other.png", "https://example.org/")));
        QVERIFY2(r.error().contains("not a credprov label"), qPrintable(r.error()));
        // An image without any QR code.
        QImage blank(200, 200, QImage::Format_Grayscale8);
        blank.fill(Qt::white);
        QVERIFY(blank.save(dir.filePath("blank.png")));
        r.readImage(QUrl::fromLocalFile(dir.filePath("blank.png")));
        QVERIFY2(r.error().contains("No QR code"), qPrintable(r.error()));
        // Not an image at all, and no file.
        QFile text(dir.filePath("notes.png"));
        QVERIFY(text.open(QIODevice::WriteOnly));
        text.write("not a picture");
        text.close();
        r.readImage(QUrl::fromLocalFile(dir.filePath("notes.png")));
        QVERIFY2(r.error().contains("not an image"), qPrintable(r.error()));
        r.readImage(QUrl::fromLocalFile(dir.filePath("missing.png")));
        QVERIFY2(r.error().contains("not a file"), qPrintable(r.error()));
        QCOMPARE(read.count(), 0);
    }

    void without_a_reader_the_nfc_sticker_read_fails_off_the_ui_thread() {
        LabelReader r;
        QSignalSpy busy(&r, &LabelReader::busyChanged);
        r.readNfcSticker("nfc:pn532_uart:/nonexistent-credprov-reader");
        QVERIFY(r.busy());
        QTRY_VERIFY_WITH_TIMEOUT(!r.busy(), 20000);
        QVERIFY(!r.error().isEmpty());
        r.readNfcSticker("nfc:bad\nconnstring");
        QTRY_VERIFY_WITH_TIMEOUT(!r.busy(), 20000);
        QVERIFY2(r.error().contains("control characters") || r.error().contains("NFC support"), qPrintable(r.error()));
    }

    // The scan's list fills as advertisements arrive (strongest first), a
    // later advertisement updates its row, and the device of the label is
    // marked. The scanner is a test double at the radio boundary; the real
    // BlueZ scan runs in tests/ble/.
    void the_nearby_list_fills_live_and_marks_the_device_of_the_label() {
        const auto id = *credprov::DeviceId::parse(kDevice.toStdString());
        std::atomic<int> scans{0};
        NearbyDevices n([&](const std::string& adapter, std::chrono::milliseconds,
                            const std::function<void(const NearbyDevice&)>& on_found)
                            -> credprov::Result<std::vector<NearbyDevice>> {
            ++scans;
            if (adapter != "hci1") return credprov::make_error(credprov::ErrorCode::io, "no adapter " + adapter);
            on_found({"AA:00:00:00:00:01", "meter-7", 0x1234, false, -80});
            on_found({"AA:00:00:00:00:02", "", id.discriminator(), false, -50});
            on_found({"AA:00:00:00:00:01", "", 0x1234, true, -70});  // the same device again: now provisioned
            return std::vector<NearbyDevice>{{"AA:00:00:00:00:03", "late", 0x0001, false, std::nullopt}};
        });
        QSignalSpy scanning(&n, &NearbyDevices::scanningChanged);
        n.scan("hci1", 1);
        QVERIFY(n.scanning());
        QTRY_VERIFY_WITH_TIMEOUT(!n.scanning(), 5000);
        QVERIFY(n.error().isEmpty());
        QCOMPARE(n.count(), 3);
        QCOMPARE(n.data(n.index(0), NearbyDevices::AddressRole).toString(), QString("AA:00:00:00:00:02"));  // -50 dBm
        QCOMPARE(n.data(n.index(1), NearbyDevices::NameRole).toString(), QString("meter-7"));  // the name is kept
        QCOMPARE(n.data(n.index(1), NearbyDevices::ProvisionedRole).toBool(), true);
        QCOMPARE(n.data(n.index(1), NearbyDevices::RssiRole).toInt(), -70);
        QVERIFY(!n.data(n.index(2), NearbyDevices::RssiRole).isValid());
        QCOMPARE(n.data(n.index(1), NearbyDevices::DiscriminatorRole).toString(), QString("1234"));
        QCOMPARE(n.data(n.index(0), NearbyDevices::MatchesRole).toBool(), false);
        n.setWanted(QString::fromStdString(label_for("1234567890")));
        QCOMPARE(n.data(n.index(0), NearbyDevices::MatchesRole).toBool(), true);
        QCOMPARE(n.data(n.index(1), NearbyDevices::MatchesRole).toBool(), false);
        n.setWanted(kDevice.toUpper());
        QCOMPARE(n.data(n.index(0), NearbyDevices::MatchesRole).toBool(), true);
        n.setWanted("not a device");
        QCOMPARE(n.data(n.index(0), NearbyDevices::MatchesRole).toBool(), false);

        // A failed scan: an empty list and the reason.
        n.scan("hci0", 1);
        QTRY_VERIFY_WITH_TIMEOUT(!n.scanning(), 5000);
        QCOMPARE(n.count(), 0);
        QCOMPARE(n.error(), QString("no adapter hci0"));
        QCOMPARE(scans.load(), 2);
    }

    void deprovisioning_names_the_device_and_needs_one() {
        QTemporaryDir home;
        Technician t(home.path().toStdString());
        DeviceTask p(t);
        QCOMPARE(p.deviceIdOf(QString::fromStdString(label_for("1234567890")), ""), kDevice);
        QCOMPARE(p.deviceIdOf("", kDevice.toUpper()), kDevice);
        QCOMPARE(p.deviceIdOf("", "nope"), QString());
        p.deprovision("", "nope", "");
        QCOMPARE(p.state(), DeviceTask::State::Failed);
        QCOMPARE(p.kind(), DeviceTask::Kind::Deprovision);
        p.reset();
        p.deprovision("", kDevice, "field swap");  // no address needed: the backend does it
        QCOMPARE(p.state(), DeviceTask::State::Running);
        QTRY_VERIFY_WITH_TIMEOUT(!p.running(), 20000);
        QVERIFY(p.nextAction().contains("Enrol"));
        QVERIFY(p.summary().contains(kDevice));
    }

    void query_and_diagnose_need_a_way_to_the_device() {
        QTemporaryDir home;
        Technician t(home.path().toStdString());
        DeviceTask p(t);
        p.query("", "", kDevice, "1234567890");
        QCOMPARE(p.state(), DeviceTask::State::Failed);
        QCOMPARE(p.kind(), DeviceTask::Kind::Query);
        QVERIFY(p.message().contains("reach the device"));
        p.diagnose("nfc:", "", kDevice, "1234567890");
        QCOMPARE(p.kind(), DeviceTask::Kind::Diagnose);
        QVERIFY(p.holdToDevice());  // over NFC, until the device answers
        p.cancel();
        QCOMPARE(p.state(), DeviceTask::State::Cancelling);
        QTRY_VERIFY_WITH_TIMEOUT(!p.running(), 20000);
        QCOMPARE(p.state(), DeviceTask::State::Cancelled);
        QVERIFY(p.message().startsWith("Cancelled"));
        QVERIFY(!p.holdToDevice());
    }

    void the_window_loads_with_every_model_and_no_warning() {
        QTemporaryDir home;
        AppModels models(home.path().toStdString());
        QQmlApplicationEngine engine;
        QStringList warnings;
        connect(&engine, &QQmlApplicationEngine::warnings, this, [&](const QList<QQmlError>& list) {
            for (const auto& w : list) warnings << w.toString();
        });
        models.expose(*engine.rootContext());
        engine.load(QUrl(credprov::gui::kMainQml));
        QCOMPARE(engine.rootObjects().size(), 1);
        QVERIFY2(warnings.isEmpty(), qPrintable(warnings.join("\n")));
        auto* button = engine.rootObjects().first()->findChild<QObject*>("provisionButton");
        QVERIFY(button);
        QCOMPARE(button->property("enabled").toBool(), false);  // not enrolled
    }

    // Each main screen renders at phone and desktop sizes (the screenshots
    // of the docs come from the end-to-end test, in real states).
    void the_screens_render_at_phone_and_desktop_sizes() {
        QTemporaryDir home;
        seed_history(home.path());
        AppModels models(home.path().toStdString());
        QQmlApplicationEngine engine;
        models.expose(*engine.rootContext());
        engine.load(QUrl(credprov::gui::kMainQml));
        QCOMPARE(engine.rootObjects().size(), 1);
        auto* window = qobject_cast<QQuickWindow*>(engine.rootObjects().first());
        QVERIFY(window);
        auto* tabs = window->findChild<QObject*>("tabs");
        QVERIFY(tabs);
        const QList<QPair<QString, QSize>> sizes{{"phone", QSize(360, 720)}, {"desktop", QSize(1024, 700)}};
        for (const auto& [name, size] : sizes) {
            window->resize(size);
            for (int tab = 0; tab < 3; ++tab) {
                tabs->setProperty("currentIndex", tab);
                QTest::qWait(100);
                const QImage image = window->grabWindow();
                QVERIFY(!image.isNull());
                QCOMPARE(image.size(), size * window->devicePixelRatio());
            }
        }
    }
};

QTEST_MAIN(ViewModels)
#include "test_view_models.moc"
