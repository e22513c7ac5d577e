// credprov-app: the technician's GUI (Qt 6 Quick) over libcredprov-provisioner.
//
//   credprov-app [--home DIR]
#include <QCommandLineParser>
#include <QGuiApplication>
#include <QQmlApplicationEngine>
#include <QQmlContext>

#include "credprov/gui/app_models.hpp"
#include "credprov/provisioner/workspace.hpp"
#include "credprov/version.hpp"

int main(int argc, char** argv) {
    QGuiApplication app(argc, argv);
    QGuiApplication::setApplicationName("credprov-app");
    QGuiApplication::setApplicationVersion(QString::fromLatin1(credprov::kVersion));
    QCommandLineParser cli;
    cli.setApplicationDescription("The credprov technician's app: enrol, then provision devices over BLE, NFC or TCP.");
    cli.addHelpOption();
    cli.addVersionOption();
    QCommandLineOption home_opt("home", "workspace folder (key, settings, journal), shared with the credprov CLI", "DIR");
    cli.addOption(home_opt);
    cli.process(app);
    QString home = cli.value(home_opt);
    if (home.isEmpty()) home = QString::fromStdString(credprov::provisioner::default_home().string());  // as the CLI: CREDPROV_HOME, else ~/.config/credprov

    credprov::gui::AppModels models(home.toStdString());
    QQmlApplicationEngine engine;
    models.expose(*engine.rootContext());
    QObject::connect(&engine, &QQmlApplicationEngine::objectCreationFailed, &app, [] { QCoreApplication::exit(1); },
                     Qt::QueuedConnection);
    engine.load(QUrl(credprov::gui::kMainQml));
    return QGuiApplication::exec();
}
