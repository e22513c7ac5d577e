// credprov-app: the technician's window. Two properties come from C++:
// `technician` (enrolment, backend, waiting receipts) and `provisioning`
// (one provisioning: steps, outcome, next action). No logic beyond showing
// them and passing what the technician typed.
import QtQuick
import QtQuick.Controls
import QtQuick.Layouts

ApplicationWindow {
    id: window
    width: 420
    height: 760
    visible: true
    title: qsTr("credprov")

    header: TabBar {
        id: tabs
        objectName: "tabs"
        currentIndex: technician.enrolled ? 0 : 2
        TabButton { text: qsTr("Provision"); Accessible.name: text }
        TabButton { text: qsTr("History"); Accessible.name: text }
        TabButton { text: qsTr("Settings"); Accessible.name: text }
    }

    StackLayout {
        anchors.fill: parent
        anchors.margins: 12
        currentIndex: tabs.currentIndex

        // ---- provision ------------------------------------------------------------------
        ScrollView {
            id: provisionPage
            clip: true
            ColumnLayout {
                width: provisionPage.availableWidth
                spacing: 8

                Label {
                    visible: !technician.enrolled
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    text: qsTr("This installation is not enrolled yet: open Settings.")
                }
                Label { text: qsTr("Reach the device") }
                ComboBox {
                    id: how
                    objectName: "how"
                    Layout.fillWidth: true
                    model: [qsTr("BLE (nearby)"), qsTr("NFC: hold the phone to the device"), qsTr("Address")]
                    Accessible.name: qsTr("How to reach the device")
                }
                TextField {
                    id: address
                    objectName: "address"
                    visible: how.currentIndex === 2
                    Layout.fillWidth: true
                    placeholderText: qsTr("tcp://host:port or unix:/path")
                    Accessible.name: qsTr("Device address")
                }
                TextField {
                    id: label
                    objectName: "label"
                    Layout.fillWidth: true
                    placeholderText: qsTr("Label payload (CP1:...), or leave empty")
                    echoMode: TextInput.Password
                    Accessible.name: qsTr("Label payload")
                }
                TextField {
                    id: deviceId
                    objectName: "deviceId"
                    visible: label.text.length === 0
                    Layout.fillWidth: true
                    placeholderText: qsTr("Device id (26 letters and digits)")
                    Accessible.name: qsTr("Device id")
                }
                TextField {
                    id: code
                    objectName: "code"
                    visible: label.text.length === 0
                    Layout.fillWidth: true
                    placeholderText: qsTr("Setup code")
                    echoMode: TextInput.Password
                    inputMethodHints: Qt.ImhDigitsOnly
                    Accessible.name: qsTr("Setup code")
                }
                CheckBox {
                    id: field
                    objectName: "fieldMode"
                    text: qsTr("Field mode (works without connectivity)")
                }
                RowLayout {
                    Button {
                        objectName: "provisionButton"
                        text: qsTr("Provision")
                        enabled: technician.enrolled && !provisioning.running
                        onClicked: {
                            const where = how.currentIndex === 0 ? "ble:" : how.currentIndex === 1 ? "nfc:" : address.text
                            provisioning.start(where, label.text, deviceId.text, code.text, field.checked)
                            code.text = ""
                        }
                    }
                    Button {
                        objectName: "cancelButton"
                        text: qsTr("Cancel")
                        visible: provisioning.running
                        onClicked: provisioning.cancel()
                    }
                }
                ProgressBar {
                    Layout.fillWidth: true
                    visible: provisioning.running
                    from: 0
                    to: Math.max(1, provisioning.steps)
                    value: provisioning.step
                    Accessible.name: qsTr("Progress")
                }
                Label {
                    objectName: "stepText"
                    visible: provisioning.running
                    text: provisioning.steps > 0 ? qsTr("Step %1 of %2: %3").arg(provisioning.step).arg(provisioning.steps).arg(provisioning.stepText)
                                                 : provisioning.stepText
                }
                Label {
                    objectName: "message"
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    font.bold: true
                    text: provisioning.message
                }
                Label {
                    objectName: "nextAction"
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    text: provisioning.nextAction
                }
                GridLayout {
                    columns: 2
                    visible: provisioning.imsi.length > 0
                    Label { text: qsTr("Device") }
                    Label { objectName: "resultDevice"; text: provisioning.deviceId }
                    Label { text: qsTr("IMSI") }
                    Label { objectName: "resultImsi"; text: provisioning.imsi }
                }
                Label {
                    visible: technician.queuedReceipts > 0
                    text: qsTr("%n receipt(s) waiting for the backend", "", technician.queuedReceipts)
                }
            }
        }

        // ---- history --------------------------------------------------------------------
        ColumnLayout {
            spacing: 8
            TextField {
                objectName: "historyFilter"
                Layout.fillWidth: true
                placeholderText: qsTr("Search device, IMSI, state...")
                Accessible.name: qsTr("Search the history")
                onTextChanged: history.filter = text
            }
            Label {
                text: qsTr("%n operation(s)", "", history.count)
            }
            ListView {
                objectName: "historyList"
                Layout.fillWidth: true
                Layout.fillHeight: true
                clip: true
                model: history
                spacing: 6
                delegate: ColumnLayout {
                    width: ListView.view.width
                    spacing: 0
                    Label {
                        Layout.fillWidth: true
                        elide: Text.ElideRight
                        font.bold: true
                        text: model.kind + " · " + model.state + (model.imsi.length > 0 ? " · " + model.imsi : "")
                    }
                    Label {
                        Layout.fillWidth: true
                        elide: Text.ElideMiddle
                        text: model.device + "  " + model.started
                    }
                    Label {
                        Layout.fillWidth: true
                        visible: model.detail.length > 0
                        wrapMode: Text.Wrap
                        opacity: 0.8
                        text: model.detail
                    }
                }
            }
        }

        // ---- settings -------------------------------------------------------------------
        ScrollView {
            id: settingsPage
            clip: true
            ColumnLayout {
                width: settingsPage.availableWidth
                spacing: 8
                Label {
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    text: technician.enrolled ? qsTr("Enrolled with %1").arg(technician.backendUrl)
                                              : qsTr("Enter your operator's backend URL and the enrolment token you were given.")
                }
                TextField {
                    id: backendUrl
                    objectName: "backendUrl"
                    Layout.fillWidth: true
                    text: technician.backendUrl
                    placeholderText: qsTr("https://backend.example")
                    Accessible.name: qsTr("Backend URL")
                }
                TextField {
                    id: token
                    objectName: "token"
                    Layout.fillWidth: true
                    placeholderText: qsTr("Enrolment token (cpe_...)")
                    echoMode: TextInput.Password
                    Accessible.name: qsTr("Enrolment token")
                }
                TextField {
                    id: name
                    objectName: "name"
                    Layout.fillWidth: true
                    placeholderText: qsTr("Your name or this device's (optional)")
                    Accessible.name: qsTr("Name")
                }
                Button {
                    objectName: "enrolButton"
                    text: qsTr("Enrol")
                    enabled: !technician.busy
                    onClicked: { technician.enroll(backendUrl.text, token.text, name.text); token.text = "" }
                }
                Button {
                    text: qsTr("Send waiting receipts (%1)").arg(technician.queuedReceipts)
                    enabled: technician.enrolled && !technician.busy && technician.queuedReceipts > 0
                    onClicked: technician.flushQueue()
                }
                BusyIndicator { running: technician.busy; visible: running }
                Label {
                    objectName: "technicianError"
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    color: "firebrick"
                    text: technician.error
                }
            }
        }
    }
}
