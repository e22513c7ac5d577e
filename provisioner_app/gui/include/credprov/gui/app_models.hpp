// Everything the window shows, in one place: the view models over the
// provisioner core, and the names QML knows them by. credprov-app and the
// GUI tests build the same set, so a test drives exactly what ships.
//
//   technician  enrolment, backend, receipts waiting (Technician)
//   task        one operation on one device (DeviceTask)
//   history     the journal, searchable (HistoryModel)
//   nearby      the BLE scan's live list (NearbyDevices)
//   labels      the label from an image's QR code or an NFC sticker (LabelReader)
#pragma once

#include <QQmlContext>
#include <filesystem>

#include "credprov/gui/device_task.hpp"
#include "credprov/gui/history_model.hpp"
#include "credprov/gui/label_reader.hpp"
#include "credprov/gui/nearby_devices.hpp"
#include "credprov/gui/technician.hpp"

namespace credprov::gui {

struct AppModels {
    explicit AppModels(const std::filesystem::path& home, Scanner scanner = default_scanner())
        : technician(home), task(technician), history(technician), nearby(std::move(scanner)) {}

    void expose(QQmlContext& context) {
        context.setContextProperty("technician", &technician);
        context.setContextProperty("task", &task);
        context.setContextProperty("history", &history);
        context.setContextProperty("nearby", &nearby);
        context.setContextProperty("labels", &labels);
    }

    Technician technician;
    DeviceTask task;
    HistoryModel history;
    NearbyDevices nearby;
    LabelReader labels;
};

// The window's QML (compiled into the program).
inline constexpr const char* kMainQml = "qrc:/credprov/qml/Main.qml";

}  // namespace credprov::gui
