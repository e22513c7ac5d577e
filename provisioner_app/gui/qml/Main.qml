// credprov-app: the technician's window. The view models come from C++
// (credprov/gui/app_models.hpp): `technician` (enrolment, backend, waiting
// receipts), `task` (one operation on one device: steps, outcome, next
// action, result), `history`, `nearby` (the BLE scan) and `labels` (a label
// from an image's QR code or an NFC sticker). No logic here beyond showing
// them and passing on what the technician typed.
import QtQuick
import QtQuick.Controls
import QtQuick.Dialogs
import QtQuick.Layouts

ApplicationWindow {
    id: window
    width: 420
    height: 760
    visible: true
    title: qsTr("credprov")

    // How the device is reached: the address the provisioner core takes.
    function deviceAddress() {
        if (how.currentIndex === 0) return "ble:" + (adapter.text.length > 0 ? "@" + adapter.text : "")
        if (how.currentIndex === 1) return "nfc:" + reader.text
        return address.text
    }

    header: TabBar {
        id: tabs
        objectName: "tabs"
        currentIndex: technician.enrolled ? 0 : 2
        TabButton { objectName: "tabDevice"; text: qsTr("Device"); Accessible.name: text }
        TabButton { objectName: "tabHistory"; text: qsTr("History"); Accessible.name: text }
        TabButton { objectName: "tabSettings"; text: qsTr("Settings"); Accessible.name: text }
    }

    Connections {
        target: labels
        function onLabelRead(payload) { label.text = payload }
    }

    StackLayout {
        anchors.fill: parent
        anchors.margins: 12
        currentIndex: tabs.currentIndex

        // ---- device: find it, its label, provision / query / diagnose / deprovision ----
        ScrollView {
            id: devicePage
            clip: true
            ColumnLayout {
                // A phone uses the whole width; a desktop window a readable column.
                width: Math.min(devicePage.availableWidth, 640)
                x: (devicePage.availableWidth - width) / 2
                spacing: 8

                Label {
                    visible: !technician.enrolled
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    text: qsTr("This installation is not enrolled yet: open Settings.")
                }

                // -- 1. find the device
                Label { text: qsTr("Reach the device"); font.bold: true }
                ComboBox {
                    id: how
                    objectName: "how"
                    Layout.fillWidth: true
                    model: [qsTr("BLE (nearby)"), qsTr("NFC: hold the phone to the device"), qsTr("Address (TCP or Unix socket)")]
                    Accessible.name: qsTr("How to reach the device")
                }
                RowLayout {
                    visible: how.currentIndex === 0
                    Layout.fillWidth: true
                    TextField {
                        id: adapter
                        objectName: "adapter"
                        Layout.preferredWidth: 90
                        text: "hci0"
                        Accessible.name: qsTr("Bluetooth adapter")
                    }
                    Button {
                        objectName: "scanButton"
                        text: nearby.scanning ? qsTr("Scanning...") : qsTr("Scan")
                        enabled: !nearby.scanning
                        Accessible.name: qsTr("Scan for devices nearby")
                        onClicked: nearby.scan(adapter.text, 8)
                        Keys.onReturnPressed: clicked()
                    }
                    BusyIndicator { running: nearby.scanning; visible: running; Layout.preferredHeight: 32; Layout.preferredWidth: 32 }
                }
                Label {
                    objectName: "nearbyError"
                    visible: how.currentIndex === 0 && nearby.error.length > 0
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    color: "firebrick"
                    text: nearby.error
                }
                Label {
                    visible: how.currentIndex === 0 && !nearby.scanning && nearby.count === 0 && nearby.error.length === 0
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    opacity: 0.8
                    text: qsTr("Scan to list the devices nearby. Provision connects to the device of the label.")
                }
                Repeater {
                    objectName: "nearbyList"
                    model: how.currentIndex === 0 ? nearby : null
                    delegate: Frame {
                        Layout.fillWidth: true
                        Accessible.name: qsTr("Device %1, %2").arg(model.name.length > 0 ? model.name : model.address)
                                          .arg(model.provisioned ? qsTr("provisioned") : qsTr("not provisioned"))
                        background: Rectangle {
                            radius: 4
                            color: model.matches ? "#dff0d8" : "transparent"
                            border.color: model.matches ? "seagreen" : "#c0c0c0"
                        }
                        ColumnLayout {
                            width: parent.width
                            spacing: 0
                            Label {
                                Layout.fillWidth: true
                                elide: Text.ElideRight
                                font.bold: true
                                text: (model.name.length > 0 ? model.name : model.address)
                                      + (model.matches ? "  " + qsTr("(the device of this label)") : "")
                            }
                            Label {
                                Layout.fillWidth: true
                                elide: Text.ElideRight
                                text: qsTr("%1 · id starts %2 · %3 · %4")
                                      .arg(model.address).arg(model.discriminator)
                                      .arg(model.rssi === undefined ? qsTr("signal unknown") : qsTr("%1 dBm").arg(model.rssi))
                                      .arg(model.provisioned ? qsTr("provisioned") : qsTr("not provisioned"))
                            }
                        }
                    }
                }
                TextField {
                    id: reader
                    objectName: "reader"
                    visible: how.currentIndex === 1
                    Layout.fillWidth: true
                    placeholderText: qsTr("NFC reader (libnfc connstring), empty for the default")
                    Accessible.name: qsTr("NFC reader")
                }
                TextField {
                    id: address
                    objectName: "address"
                    visible: how.currentIndex === 2
                    Layout.fillWidth: true
                    placeholderText: qsTr("tcp://host:port or unix:/path")
                    Accessible.name: qsTr("Device address")
                }

                // -- 2. the device's label
                Label { text: qsTr("The device's label"); font.bold: true }
                RowLayout {
                    Layout.fillWidth: true
                    TextField {
                        id: imagePath
                        objectName: "imagePath"
                        Layout.fillWidth: true
                        placeholderText: qsTr("Photo or image of the label's QR code")
                        Accessible.name: qsTr("Label image file")
                        onAccepted: labels.readImage(text)
                    }
                    Button {
                        text: qsTr("Browse...")
                        Accessible.name: qsTr("Choose the label image")
                        onClicked: imageDialog.open()
                        Keys.onReturnPressed: clicked()
                    }
                    Button {
                        objectName: "readImageButton"
                        text: qsTr("Read QR")
                        enabled: imagePath.text.length > 0
                        Accessible.name: qsTr("Read the QR code from the image")
                        onClicked: labels.readImage(imagePath.text)
                        Keys.onReturnPressed: clicked()
                    }
                }
                Button {
                    objectName: "readNfcButton"
                    text: labels.busy ? qsTr("Hold the reader to the sticker...") : qsTr("Read the label's NFC sticker")
                    enabled: !labels.busy
                    Accessible.name: qsTr("Read the label from its NFC sticker")
                    onClicked: labels.readNfcSticker("nfc:" + reader.text)
                    Keys.onReturnPressed: clicked()
                }
                Label {
                    objectName: "labelError"
                    visible: labels.error.length > 0
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    color: "firebrick"
                    text: labels.error
                }
                TextField {
                    id: label
                    objectName: "labelPayload"
                    Layout.fillWidth: true
                    placeholderText: qsTr("Label payload (CP1:...), or type the id and code below")
                    echoMode: TextInput.Password
                    Accessible.name: qsTr("Label payload")
                    onTextChanged: nearby.wanted = text
                }
                Label {
                    objectName: "labelLoaded"
                    visible: label.text.length > 0
                    Layout.fillWidth: true
                    elide: Text.ElideMiddle
                    text: qsTr("Label of device %1").arg(task.deviceIdOf(label.text, ""))
                }
                TextField {
                    id: deviceId
                    objectName: "deviceId"
                    visible: label.text.length === 0
                    Layout.fillWidth: true
                    placeholderText: qsTr("Device id (26 letters and digits)")
                    Accessible.name: qsTr("Device id")
                    onTextChanged: nearby.wanted = text
                }
                TextField {
                    id: code
                    objectName: "code"
                    visible: label.text.length === 0
                    Layout.fillWidth: true
                    placeholderText: qsTr("Setup code")
                    echoMode: TextInput.Password
                    inputMethodHints: Qt.ImhDigitsOnly
                    validator: RegularExpressionValidator { regularExpression: /[0-9]*/ }
                    Accessible.name: qsTr("Setup code")
                }
                Label {
                    objectName: "wrongCodeHint"
                    visible: task.wrongCode
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    color: "firebrick"
                    text: qsTr("Wrong setup code: check it on the label and type it again.")
                }
                CheckBox {
                    id: field
                    objectName: "fieldMode"
                    text: qsTr("Field mode (works without connectivity)")
                }

                // -- 3. what to do
                Flow {
                    Layout.fillWidth: true
                    spacing: 6
                    Button {
                        objectName: "provisionButton"
                        text: qsTr("Provision")
                        highlighted: true
                        enabled: technician.enrolled && !task.running
                        onClicked: {
                            task.provision(window.deviceAddress(), label.text, deviceId.text, code.text, field.checked)
                            code.text = ""
                        }
                        Keys.onReturnPressed: clicked()
                    }
                    Button {
                        objectName: "queryButton"
                        text: qsTr("Query")
                        enabled: technician.enrolled && !task.running
                        onClicked: task.query(window.deviceAddress(), label.text, deviceId.text, code.text)
                        Keys.onReturnPressed: clicked()
                    }
                    Button {
                        objectName: "diagnoseButton"
                        text: qsTr("Diagnose")
                        enabled: technician.enrolled && !task.running
                        onClicked: task.diagnose(window.deviceAddress(), label.text, deviceId.text, code.text)
                        Keys.onReturnPressed: clicked()
                    }
                    Button {
                        objectName: "deprovisionButton"
                        text: qsTr("Deprovision...")
                        enabled: technician.enrolled && !task.running
                        onClicked: deprovisionDialog.open()
                        Keys.onReturnPressed: clicked()
                    }
                    Button {
                        objectName: "cancelButton"
                        text: qsTr("Cancel")
                        visible: task.running
                        onClicked: task.cancel()
                        Keys.onReturnPressed: clicked()
                    }
                }

                // -- 4. progress and result
                Pane {
                    objectName: "holdBanner"
                    visible: task.holdToDevice
                    Layout.fillWidth: true
                    background: Rectangle { color: "#fff3cd"; radius: 4 }
                    Label {
                        width: parent.width
                        wrapMode: Text.Wrap
                        font.bold: true
                        text: qsTr("Hold the phone to the device and keep it there until the steps finish.")
                    }
                }
                ProgressBar {
                    Layout.fillWidth: true
                    visible: task.running
                    from: 0
                    to: Math.max(1, task.steps)
                    value: task.step
                    indeterminate: task.steps === 0
                    Accessible.name: qsTr("Progress")
                }
                Label {
                    objectName: "stepText"
                    visible: task.running
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    text: task.steps > 0 ? qsTr("Step %1 of %2: %3").arg(task.step).arg(task.steps).arg(task.stepText)
                                         : task.stepText
                }
                Label {
                    objectName: "message"
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    font.bold: true
                    color: task.failed ? "firebrick" : palette.windowText
                    text: task.message
                }
                Label {
                    objectName: "nextAction"
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    text: task.nextAction
                }
                Label {
                    id: backoff
                    objectName: "backoffText"
                    property int secondsLeft: 0
                    visible: secondsLeft > 0
                    Layout.fillWidth: true
                    wrapMode: Text.Wrap
                    color: "firebrick"
                    text: qsTr("The device takes the next try in %n second(s).", "", secondsLeft)
                    Connections {
                        target: task
                        function onChanged() { backoff.secondsLeft = task.retryAfter }
                    }
                    Timer {
                        interval: 1000
                        repeat: true
                        running: backoff.secondsLeft > 0
                        onTriggered: backoff.secondsLeft = Math.max(0, backoff.secondsLeft - 1)
                    }
                }
                GridLayout {
                    objectName: "result"
                    columns: 2
                    visible: !task.running && task.deviceState.length > 0
                    Layout.fillWidth: true
                    Label { text: qsTr("Device") }
                    Label { objectName: "resultDevice"; text: task.deviceId; Layout.fillWidth: true; elide: Text.ElideMiddle }
                    Label { text: qsTr("IMSI"); visible: task.imsi.length > 0 }
                    Label { objectName: "resultImsi"; text: task.imsi; visible: task.imsi.length > 0 }
                    Label { text: qsTr("State") }
                    Label { objectName: "resultState"; text: task.deviceState; font.bold: true }
                    Label { text: qsTr("Time") }
                    Label { objectName: "resultTime"; text: task.finishedAt }
                }
                Repeater {
                    objectName: "details"
                    model: task.running ? [] : task.details
                    delegate: Label {
                        Layout.fillWidth: true
                        wrapMode: Text.Wrap
                        text: modelData.name + ": " + modelData.value
                    }
                }
                Button {
                    objectName: "copyButton"
                    text: qsTr("Copy the result")
                    visible: !task.running && task.message.length > 0
                    onClicked: task.copySummary()
                    Keys.onReturnPressed: clicked()
                }
                Label {
                    objectName: "waitingReceipts"
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
                width: Math.min(settingsPage.availableWidth, 640)
                x: (settingsPage.availableWidth - width) / 2
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
                    Keys.onReturnPressed: clicked()
                }
                Button {
                    objectName: "flushButton"
                    text: qsTr("Send waiting receipts (%1)").arg(technician.queuedReceipts)
                    enabled: technician.enrolled && !technician.busy && technician.queuedReceipts > 0
                    onClicked: technician.flushQueue()
                    Keys.onReturnPressed: clicked()
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

    FileDialog {
        id: imageDialog
        title: qsTr("The label's QR code")
        nameFilters: [qsTr("Images (*.png *.jpg *.jpeg *.bmp *.gif *.svg)")]
        onAccepted: { imagePath.text = selectedFile.toString().replace(/^file:\/\//, ""); labels.readImage(selectedFile) }
    }

    Dialog {
        id: deprovisionDialog
        objectName: "deprovisionDialog"
        title: qsTr("Deprovision this device?")
        modal: true
        anchors.centerIn: parent
        width: Math.min(window.width - 24, 480)
        property string device: task.deviceIdOf(label.text, deviceId.text)
        ColumnLayout {
            width: parent.width
            spacing: 8
            Label {
                Layout.fillWidth: true
                wrapMode: Text.Wrap
                text: deprovisionDialog.device.length > 0
                      ? qsTr("Device %1 loses its credential: its subscriber stops authenticating at once, and the device wipes the credential when it next reaches the network. This cannot be undone.").arg(deprovisionDialog.device)
                      : qsTr("Enter the device id or read its label first.")
            }
            TextField {
                id: reason
                objectName: "reason"
                Layout.fillWidth: true
                visible: deprovisionDialog.device.length > 0
                placeholderText: qsTr("Reason (for the audit log)")
                Accessible.name: qsTr("Reason")
            }
        }
        footer: DialogButtonBox {
            Button {
                objectName: "confirmDeprovision"
                text: qsTr("Deprovision")
                enabled: deprovisionDialog.device.length > 0
                DialogButtonBox.buttonRole: DialogButtonBox.AcceptRole
            }
            Button {
                text: qsTr("Keep it")
                DialogButtonBox.buttonRole: DialogButtonBox.RejectRole
            }
        }
        onAccepted: { task.deprovision(label.text, deviceId.text, reason.text); reason.text = "" }
    }
}
