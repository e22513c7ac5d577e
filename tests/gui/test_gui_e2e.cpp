// The technician's app end to end, as a technician uses it: the real
// credprov-app window (the QML and view models it ships, built by
// credprov::gui::AppModels) on a virtual X display (Xvfb), driven by mouse
// clicks and typed keys, against a real credprov-backend on SQLite and a real
// credprov-agentd on loopback. It enrols from the Settings screen with an
// enrolment token, reads the device's label from the PNG the agent printed,
// provisions, queries, deprovisions after the confirmation, and tries a wrong
// setup code; after every step it checks what the window shows (and the
// backend's and the device's own view). A second case goes over NFC (stock
// libnfc on simulated PN532 chips): the label from the device's NFC sticker,
// then "hold the phone to the device". With CREDPROV_SCREENSHOT_DIR set the
// first case saves each main screen at phone and desktop sizes there
// (docs/screenshots/).
#include <QClipboard>
#include <QGuiApplication>
#include <QQmlApplicationEngine>
#include <QQuickItem>
#include <QQuickWindow>
#include <QTest>

#include <functional>
#include <set>

#include "credprov/gui/app_models.hpp"
#include "e2e_lab.hpp"
#ifdef CREDPROV_TEST_HAVE_NFC
#include "nfc_sim.hpp"
#endif

namespace credprov::testing {
namespace {

// The window and how a technician acts on it.
struct Driver {
    QQuickWindow* window{nullptr};

    QQuickItem* item(const char* name) const {
        auto* i = window->findChild<QQuickItem*>(name);
        REQUIRE_MESSAGE(i != nullptr, "no item " << std::string(name));
        return i;
    }
    QString text(const char* name) const { return item(name)->property("text").toString(); }
    bool shown(const char* name) const {
        auto* i = window->findChild<QQuickItem*>(name);
        return i != nullptr && i->isVisible();
    }

    // Scrolls the page so the item is on screen, as a technician would.
    void bring_into_view(QQuickItem* i) const {
        for (QQuickItem* p = i->parentItem(); p != nullptr; p = p->parentItem()) {
            if (!p->inherits("QQuickFlickable")) continue;
            auto* content = p->property("contentItem").value<QQuickItem*>();
            const double y = i->mapToItem(content, QPointF(0, 0)).y();
            const double max_y = std::max(0.0, p->property("contentHeight").toDouble() - p->height());
            p->setProperty("contentY", std::clamp(y - 40.0, 0.0, max_y));
            QTest::qWait(30);
            break;
        }
    }
    void click(const char* name) const {
        QQuickItem* i = item(name);
        REQUIRE_MESSAGE(i->isVisible(), std::string(name) << " is not shown");
        REQUIRE_MESSAGE(i->isEnabled(), std::string(name) << " is not enabled");
        bring_into_view(i);
        const QPoint at = i->mapToScene(QPointF(i->width() / 2, i->height() / 2)).toPoint();
        QTest::mouseClick(window, Qt::LeftButton, Qt::NoModifier, at);
        QTest::qWait(30);
    }
    void type(const char* name, const QString& text) const {
        click(name);
        REQUIRE(item(name)->hasActiveFocus());
        QTest::keyClick(window, Qt::Key_A, Qt::ControlModifier);
        QTest::keyClick(window, Qt::Key_Delete);
        for (const QChar c : text) QTest::keyClick(window, c.toLatin1());
        REQUIRE(this->text(name) == text);
    }
    // Waits (events running) until the condition holds; false on timeout.
    static bool wait_for(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
        const auto end = std::chrono::steady_clock::now() + timeout;
        while (!condition()) {
            if (std::chrono::steady_clock::now() > end) return false;
            QTest::qWait(20);
        }
        return true;
    }
};

// The main screens at phone (portrait) and desktop sizes.
void screenshots(Driver& d, const std::vector<std::pair<int, std::string>>& tabs) {
    const QString dir = qEnvironmentVariable("CREDPROV_SCREENSHOT_DIR");
    const QSize before = d.window->size();
    for (const auto& [name, size] : std::vector<std::pair<std::string, QSize>>{{"phone", {360, 720}}, {"desktop", {1024, 700}}}) {
        d.window->resize(size);
        for (const auto& [tab, file] : tabs) {
            if (tab >= 0) d.item("tabs")->setProperty("currentIndex", tab);
            QTest::qWait(150);
            const QImage image = d.window->grabWindow();
            REQUIRE(!image.isNull());
            if (!dir.isEmpty()) REQUIRE(image.save(dir + QString::fromStdString("/" + file + "-" + name + ".png")));
        }
    }
    d.window->resize(before);
    QTest::qWait(100);
}

// One QGuiApplication for the process (Qt allows one; the cases share it).
void ensure_app() {
    static int argc = 1;
    static char arg0[] = "credprov-app";
    static char* argv[] = {arg0, nullptr};
    static auto* app = new QGuiApplication(argc, argv);  // lives until exit
    (void)app;
}

// The app's window over the workspace `home`, as credprov-app builds it.
struct App {
    gui::AppModels models;
    QQmlApplicationEngine engine;
    QStringList warnings;
    Driver d;
    // Every text the step line shows while an operation runs.
    std::vector<QString> steps;

    explicit App(const std::filesystem::path& home) : models((ensure_app(), home)) {
        QObject::connect(&engine, &QQmlApplicationEngine::warnings, [this](const QList<QQmlError>& list) {
            for (const auto& w : list) warnings << w.toString();
        });
        models.expose(*engine.rootContext());
        engine.load(QUrl(gui::kMainQml));
        REQUIRE(engine.rootObjects().size() == 1);
        d.window = qobject_cast<QQuickWindow*>(engine.rootObjects().first());
        REQUIRE(d.window != nullptr);
        d.window->resize(1024, 1500);  // the whole device page on screen
        d.window->show();
        REQUIRE(QTest::qWaitForWindowExposed(d.window));
        QObject::connect(&models.task, &gui::DeviceTask::changed, [this] {
            if (d.shown("stepText")) steps.push_back(d.text("stepText"));
        });
    }
    // Picks how to reach the device with the keyboard (0 BLE, 1 NFC, 2 address).
    void reach_by(int how) {
        d.click("how");  // the list opens
        for (int i = 0; i < 3; ++i) QTest::keyClick(d.window, Qt::Key_Up);
        for (int i = 0; i < how; ++i) QTest::keyClick(d.window, Qt::Key_Down);
        QTest::keyClick(d.window, Qt::Key_Return);
        QTest::qWait(100);
        REQUIRE(d.item("how")->property("currentIndex").toInt() == how);
    }
    void wait_done(std::chrono::milliseconds timeout = 60s) {
        REQUIRE_MESSAGE(Driver::wait_for([&] { return !models.task.running(); }, timeout), "the operation did not finish");
    }
};

}  // namespace

TEST_CASE("gui: a technician enrols, provisions from the label image, queries and deprovisions in the app") {
    E2ELab f;
    const auto label_png = f.lab.dir / "label.png";
    REQUIRE(run_command({CREDPROV_AGENTCTL, "--state-dir", f.state.string(), "label", "--png", label_png.string(), "-q"}).exit_code == 0);
    auto token = f.lab.admin("POST", "/v1/enrolment-tokens",
                             json{{"name", "gui technician"}, {"operations", {"query", "deliver-sealed", "diagnose", "deprovision"}}});
    REQUIRE(token.status == 201);

    App a(f.lab.dir / "gui-technician");
    Driver& d = a.d;
    auto& models = a.models;
    auto& steps = a.steps;
    auto& warnings = a.warnings;

    // ---- first run: the app opens on Settings; enrol with the token
    CHECK(d.item("tabs")->property("currentIndex").toInt() == 2);
    CHECK_FALSE(d.item("provisionButton")->isEnabled());
    d.type("backendUrl", QString::fromStdString(f.url()));
    d.type("token", QString::fromStdString(token.body["token"].get<std::string>()));
    d.type("name", "gui e2e");
    d.click("enrolButton");
    REQUIRE_MESSAGE(Driver::wait_for([&] { return models.technician.enrolled(); }, 30s), d.text("technicianError").toStdString());
    CHECK(d.text("token").isEmpty());  // the token does not stay in the window
    CHECK(d.text("technicianError").isEmpty());
    screenshots(d, {{2, "settings"}});

    // ---- the device page: reach it by address, read the label from its image
    d.click("tabDevice");
    REQUIRE(d.item("tabs")->property("currentIndex").toInt() == 0);
    a.reach_by(2);  // Address
    d.type("address", QString::fromStdString("tcp://127.0.0.1:" + std::to_string(f.agent_port)));
    d.type("imagePath", QString::fromStdString(label_png.string()));
    d.click("readImageButton");
    REQUIRE_MESSAGE(d.shown("labelLoaded"), d.text("labelError").toStdString());
    CHECK(d.text("labelLoaded").contains(QString::fromStdString(f.device)));
    CHECK_FALSE(d.shown("code"));  // the code came with the label

    // ---- provision
    // (Not "running" checked here: the click waits 30 ms, which a provisioning
    // on loopback can outlast or not; what it showed is checked below.)
    d.click("provisionButton");
    REQUIRE_MESSAGE(Driver::wait_for([&] { return !models.task.running(); }, 60s), "the provisioning did not finish");
    INFO("message: " << d.text("message").toStdString() << " / " << d.text("nextAction").toStdString());
    REQUIRE(d.shown("result"));
    CHECK(d.text("resultState") == "active");
    CHECK(d.text("resultDevice") == QString::fromStdString(f.device));
    const QString imsi = d.text("resultImsi");
    CHECK(imsi.size() >= 14);
    CHECK_FALSE(d.text("resultTime").isEmpty());
    CHECK(d.text("nextAction") == "Done.");
    // Each of the five steps was shown, in order.
    std::set<int> seen;
    for (const auto& s : steps)
        for (int n = 1; n <= 5; ++n)
            if (s.startsWith(QString("Step %1 of 5").arg(n))) seen.insert(n);
    CHECK(seen == std::set<int>{1, 2, 3, 4, 5});
    const auto first = std::find_if(steps.begin(), steps.end(), [](const QString& t) { return t.startsWith("Step"); });
    REQUIRE(first != steps.end());
    CHECK(first->startsWith("Step 1 of 5"));
    f.check_agreement();
    auto subs = f.lab.admin("GET", "/v1/subscribers?state=active&device=" + f.device);
    REQUIRE(subs.body["items"].size() == 1);
    CHECK(subs.body["items"][0]["imsi"].get<std::string>() == imsi.toStdString());
    // Copy the result: the clipboard holds device, IMSI and state.
    d.click("copyButton");
    CHECK(QGuiApplication::clipboard()->text().contains(imsi));
    CHECK_FALSE(QGuiApplication::clipboard()->text().contains(QString::fromStdString(f.code)));
    screenshots(d, {{0, "provision"}});

    // ---- the history lists it
    d.click("tabHistory");
    auto* list = d.item("historyList");
    REQUIRE(Driver::wait_for([&] { return list->property("count").toInt() >= 1; }, 5s));
    d.type("historyFilter", imsi);
    CHECK(models.history.count() == 1);
    d.type("historyFilter", "");
    screenshots(d, {{1, "history"}});

    // ---- query: what the device holds
    d.click("tabDevice");
    steps.clear();
    d.click("queryButton");
    REQUIRE(Driver::wait_for([&] { return !models.task.running(); }, 60s));
    INFO("message: " << d.text("message").toStdString());
    CHECK(d.text("resultState") == "provisioned");
    CHECK(d.text("resultImsi") == imsi);

    // ---- diagnose: the device's own checks, one row each
    d.click("diagnoseButton");
    REQUIRE(Driver::wait_for([&] { return !models.task.running(); }, 60s));
    INFO("message: " << d.text("message").toStdString());
    CHECK(models.task.state() == gui::DeviceTask::State::Succeeded);
    QStringList rows;
    for (const auto& row : models.task.details()) rows << row.toMap()["name"].toString() + ": " + row.toMap()["value"].toString();
    CHECK_MESSAGE(rows.join("\n").contains("self-test: passed"), rows.join("\n").toStdString());
    CHECK(rows.join("\n").contains("aka-self-check: passed"));

    // ---- deprovision: the confirmation names the device; "Keep it" does nothing
    d.click("deprovisionButton");
    auto* dialog = d.window->findChild<QObject*>("deprovisionDialog");
    REQUIRE(dialog != nullptr);
    REQUIRE(Driver::wait_for([&] { return dialog->property("opened").toBool(); }, 5s));
    CHECK(dialog->property("device").toString() == QString::fromStdString(f.device));
    screenshots(d, {{-1, "deprovision"}});
    d.type("reason", "gui e2e: device returned");
    d.click("confirmDeprovision");
    REQUIRE(Driver::wait_for([&] { return !dialog->property("visible").toBool(); }, 5s));
    REQUIRE(Driver::wait_for([&] { return !models.task.running() && models.task.kind() == gui::DeviceTask::Kind::Deprovision; }, 30s));
    INFO("message: " << d.text("message").toStdString());
    CHECK(d.text("resultState") == "deprovisioned");
    CHECK(f.lab.admin("GET", "/v1/subscribers?state=active&device=" + f.device).body["items"].empty());

    // ---- a wrong setup code is told apart from other failures
    d.type("labelPayload", "");
    d.type("deviceId", QString::fromStdString(f.device));
    std::string wrong = f.code;
    wrong.back() = static_cast<char>('0' + (wrong.back() - '0' + 1) % 10);
    d.type("code", QString::fromStdString(wrong));
    // With the keyboard alone: Tab from the code field to Query, then Enter.
    auto* query = d.item("queryButton");
    for (int i = 0; i < 8 && !query->hasActiveFocus(); ++i) QTest::keyClick(d.window, Qt::Key_Tab);
    REQUIRE_MESSAGE(query->hasActiveFocus(), "Tab does not reach the Query button");
    QTest::keyClick(d.window, Qt::Key_Return);
    a.wait_done();
    CHECK(d.shown("wrongCodeHint"));
    CHECK(d.text("message").contains("wrong setup code"));
    CHECK_FALSE(d.shown("backoffText"));

    // Wrong again and again: past its free attempts the device makes the
    // next try wait, and the window counts the time down.
    for (int i = 0; i < 8 && !d.shown("backoffText"); ++i) {
        d.click("queryButton");
        a.wait_done();
    }
    REQUIRE(d.shown("backoffText"));
    CHECK(models.task.retryAfter() >= 1);
    CHECK(d.text("backoffText").contains("next try in"));
    CHECK_FALSE(d.shown("wrongCodeHint"));
    CHECK(d.text("nextAction").contains("Too many wrong codes"));

    CHECK_MESSAGE(warnings.isEmpty(), warnings.join("\n").toStdString());
}

#ifdef CREDPROV_TEST_HAVE_NFC
TEST_CASE("gui: over NFC, the label from the device's sticker, then hold the phone to the device") {
    ScratchDir dir("credprov-gui-nfc");
    ScratchDir stage("credprov-gui-nfc-label");
    E2ELab f({"query", "deliver-sealed", "deprovision"}, {}, {});
    f.stop_agent();
    const auto ndef = stage.path() / "label.ndef";
    REQUIRE(run_command({CREDPROV_AGENTCTL, "--state-dir", f.state.string(), "label", "--quiet", "--ndef", ndef.string()}).exit_code == 0);
    NfcSim sim(dir.path(), {"reader", "device"}, {"sticker=" + ndef.string()});
    f.agent_listen = {sim.address("device")};
    f.start_agent();

    // The technician's workspace enrolled with the CLI: the app is enrolled too.
    App a(f.home);
    Driver& d = a.d;
    CHECK(a.models.technician.enrolled());
    CHECK(d.item("provisionButton")->isEnabled());
    d.click("tabDevice");
    a.reach_by(1);  // NFC
    const std::string reader = sim.address("reader").substr(4);  // the connstring, without "nfc:"
    d.type("reader", QString::fromStdString(reader));

    // The sticker alone in the field: the label comes from it.
    sim.send("remove device");
    d.click("readNfcButton");
    CHECK(a.models.labels.busy());
    REQUIRE_MESSAGE(Driver::wait_for([&] { return !a.models.labels.busy(); }, 30s), "the sticker read did not finish");
    REQUIRE_MESSAGE(d.shown("labelLoaded"), d.text("labelError").toStdString());
    CHECK(d.text("labelLoaded").contains(QString::fromStdString(f.device)));

    // Then the device: the banner asks to hold the phone to it until the steps finish.
    sim.send("remove sticker");
    sim.send("restore device");
    d.click("provisionButton");
    CHECK(d.shown("holdBanner"));
    a.wait_done();
    INFO("message: " << d.text("message").toStdString() << "\n" << read_file(f.lab.dir / "agentd.log"));
    CHECK_FALSE(d.shown("holdBanner"));
    CHECK(d.text("resultState") == "active");
    f.check_agreement();
    CHECK_MESSAGE(a.warnings.isEmpty(), a.warnings.join("\n").toStdString());
}
#endif  // CREDPROV_TEST_HAVE_NFC

}  // namespace credprov::testing
