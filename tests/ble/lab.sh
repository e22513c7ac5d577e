# The BLE lab shared by tests/ble/scenarios and bench/ble/bench-ble: the
# common lab (tests/lab.sh: backend, technician, devices) plus agents on the
# virtual controllers and provisioning over BLE from the central on hci1.
# Source it inside the VM (tests/ble/run-in-vm) with BUILD set to a build
# directory with BLE support.
HERE_LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
LAB_NAME=ble
LAB_RESULTS=${CREDPROV_BLE_RESULTS:-}
# shellcheck source=tests/lab.sh
source "$HERE_LAB/../lab.sh"
CENTRAL=hci1

# start_agent NAME ADAPTER: credprov-agentd on that adapter; waits until it advertises.
start_agent() {
  local name=$1 adapter=$2
  "$AGENTD" -c "$WORK/$name/agent.toml" --state-dir "$WORK/$name/state" --listen "ble:$adapter" --log-level debug \
    2>> "$WORK/$name/agentd.log" &
  echo $! > "$WORK/$name/pid"
  echo $! >> "$WORK/pids"
  for _ in $(seq 100); do grep -q "registered with bluetoothd" "$WORK/$name/agentd.log" 2>/dev/null && return 0; sleep 0.1; done
  log "agent $name did not register with bluetoothd:"; tail -5 "$WORK/$name/agentd.log" >&2; return 1
}
discriminator() { local b; read -ra b <<< "$(id_bytes "$(cat "$WORK/$1/id")")"; echo "${b[0]}${b[1]}"; }
# btvirt's emulated controllers advertise only when advertising or a scan is
# (re-)enabled, and the kernel can drop those reports (tests/ble/README.md):
# keep re-enabling hci0's advertising while the central scans.
adv_pulse() {
  local peripherals=(hci0)
  (( ${CREDPROV_BLE_CONTROLLERS:-2} >= 3 )) && peripherals+=(hci2)
  "$HERE_LAB/vm-adv-pulse" --every 1 --for "${1:-8}" "${peripherals[@]}" > /dev/null 2>&1 &
}
provision() {
  adv_pulse 8
  CREDPROV_BLE_TRACE=1 "$CREDPROV" --json provision --address "ble:@$CENTRAL" --device "$(cat "$WORK/$1/id")" \
    --code "$(cat "$WORK/$1/code")" 2>> "$WORK/$1/credprov.log"
}
