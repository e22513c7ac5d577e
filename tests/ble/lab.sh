# The BLE lab shared by tests/ble/scenarios and bench/ble/bench-ble: a
# credprov-backend on loopback, an enrolled technician, and helpers to make
# devices and run agents on the virtual controllers. Source it inside the VM
# (tests/ble/run-in-vm) with BUILD set to a build directory with BLE support.
# Sets WORK, OUT, URL, ROOT_PUB, CREDPROV_HOME.
: "${BUILD:?set BUILD to the build directory}"
HERE_LAB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OUT=${CREDPROV_BLE_RESULTS:-$(mktemp -d /tmp/ble-results.XXXXXX)}
WORK=$(mktemp -d /tmp/ble-work.XXXXXX)
BACKEND="$BUILD/network_backend/credprov-backend"
AGENTD="$BUILD/target_agent/credprov-agentd"
AGENTCTL="$BUILD/target_agent/credprov-agentctl"
CREDPROV="$BUILD/provisioner_app/credprov"
CENTRAL=hci1

# Every background process, also those started in a scenario's subshell.
PIDS=()
cleanup() {
  for p in "${PIDS[@]}" $(cat "$WORK/pids" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  cp -r "$WORK"/. "$OUT/work/" 2>/dev/null || true
}
trap cleanup EXIT
mkdir -p "$OUT/work"
# CREDPROV_BLE_XTRACE=1: every command with its time, to $OUT/xtrace.log (where does the time go).
if [[ -n "${CREDPROV_BLE_XTRACE:-}" ]]; then
  exec 19> "$OUT/xtrace.log"
  BASH_XTRACEFD=19 PS4='+ ${EPOCHREALTIME} ' && set -x
fi
log() { printf '[ble %s] %s\n' "$(date +%T)" "$*" >&2; }
# json_get JSON KEY...: one value (jq, not python: every process start costs
# 0.1-0.5 s under TCG, python's start several seconds).
json_get() {
  local path="" k
  for k in "${@:2}"; do
    if [[ $k =~ ^[0-9]+$ ]]; then path+="[$k]"; else path+="[\"$k\"]"; fi
  done
  jq -r ".$path" <<< "$1"
}
# id_bytes DEVICE_ID: the first 5 bytes of a device id (base32, lower case) in hex.
id_bytes() { tr 'a-z' 'A-Z' <<< "${1:0:8}" | base32 -d | od -An -tx1 | tr -s ' ' | sed 's/^ //; s/ $//'; }
ip link set lo up 2>/dev/null || true

# ---- the backend (once) ------------------------------------------------------------------
mkdir -p "$WORK/backend"
cat > "$WORK/backend/backend.toml" <<TOML
[server]
listen = "127.0.0.1"
port = 0
allow_plain_http = true
[storage]
database = "sqlite:$WORK/backend/backend.db"
[operator]
name = "BLE Lab Operator"
[subscribers]
plmn = "00101"
network_name = "credprov-ble"
[log]
format = "text"
TOML
ROOT_PUB=$("$BACKEND" root create --out "$WORK/backend/root.key")
"$BACKEND" -c "$WORK/backend/backend.toml" init --root-key "$WORK/backend/root.key" > "$WORK/backend/init.json" 2> "$WORK/backend/init.log"
"$BACKEND" -c "$WORK/backend/backend.toml" serve > "$WORK/backend/stdout" 2> "$WORK/backend/backend.log" &
PIDS+=($!)
for _ in $(seq 200); do grep -q "listening on" "$WORK/backend/stdout" 2>/dev/null && break; sleep 0.05; done
URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' "$WORK/backend/stdout")
[[ -n "$URL" ]] || { log "the backend did not start"; exit 1; }
ENROL=$("$BACKEND" -c "$WORK/backend/backend.toml" enrolment-token create --name "ble technician" \
          --operations query,deliver-sealed,deprovision --ttl 600)
export CREDPROV_HOME="$WORK/technician"
CREDPROV_ENROLMENT_TOKEN=$(json_get "$ENROL" token) "$CREDPROV" enroll --backend "$URL" > /dev/null

# ---- devices ---------------------------------------------------------------------------------
# new_device NAME: factory-initialised store in $WORK/NAME, listed in the inventory.
new_device() {
  local name=$1 state="$WORK/$1/state"
  mkdir -p "$WORK/$name"
  "$AGENTCTL" --state-dir "$state" factory-init --root "$ROOT_PUB" > /dev/null
  local status; status=$("$AGENTCTL" --state-dir "$state" status --json)
  jq -c '{devices: [{device_id, identity_key, box_key, box_signature}]}' <<< "$status" > "$WORK/$name/inventory.json"
  "$BACKEND" -c "$WORK/backend/backend.toml" inventory import "$WORK/$name/inventory.json" > /dev/null
  json_get "$status" device_id > "$WORK/$name/id"
  "$AGENTCTL" --state-dir "$state" label | sed -n 's/^setup code *//p' > "$WORK/$name/code"
  cat > "$WORK/$name/agent.toml" <<TOML
[agent]
session_timeout_s = 8
[backoff]
free_attempts = 10
base_s = 1
max_s = 2
TOML
}
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
stop_agent() { local pid; pid=$(cat "$WORK/$1/pid"); kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
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
active_imsi() {  # "COUNT IMSI..." of the backend's active subscribers for the device
  "$BACKEND" -c "$WORK/backend/backend.toml" subscriber list --state active --device "$(cat "$WORK/$1/id")" \
    | jq -r '"\(.items | length) \(.items | map(.imsi) | join(" "))"'
}

