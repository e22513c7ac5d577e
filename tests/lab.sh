# The lab the shell-level tests and benchmarks share (tests/ble/, bench/ble/,
# bench/nfc/): a credprov-backend on loopback on SQLite, an enrolled
# technician, and devices (factory-initialised stores listed in the
# inventory). Source it with BUILD set to a build directory; LAB_NAME names
# the log lines, LAB_RESULTS keeps the work directory there at exit (else a
# new /tmp/credprov-lab.XXXXXX). Sets WORK, OUT, URL, ROOT_PUB, CREDPROV_HOME,
# and BACKEND, AGENTD, AGENTCTL, CREDPROV. The transport's own lab adds
# start_agent and provision (tests/ble/lab.sh).
: "${BUILD:?set BUILD to the build directory}"
LAB_NAME=${LAB_NAME:-lab}
OUT=${LAB_RESULTS:-$(mktemp -d /tmp/credprov-lab.XXXXXX)}
WORK=$(mktemp -d "/tmp/$LAB_NAME-work.XXXXXX")
BACKEND="$BUILD/network_backend/credprov-backend"
AGENTD="$BUILD/target_agent/credprov-agentd"
AGENTCTL="$BUILD/target_agent/credprov-agentctl"
CREDPROV="$BUILD/provisioner_app/credprov"

# Every background process, also those started in a scenario's subshell.
PIDS=()
cleanup() {
  for p in "${PIDS[@]}" $(cat "$WORK/pids" 2>/dev/null); do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  cp -r "$WORK"/. "$OUT/work/" 2>/dev/null || true
}
trap cleanup EXIT
mkdir -p "$OUT/work"
# CREDPROV_LAB_XTRACE=1 (or CREDPROV_BLE_XTRACE=1): every command with its
# time, to $OUT/xtrace.log (where does the time go).
if [[ -n "${CREDPROV_LAB_XTRACE:-${CREDPROV_BLE_XTRACE:-}}" ]]; then
  exec 19> "$OUT/xtrace.log"
  BASH_XTRACEFD=19 PS4='+ ${EPOCHREALTIME} ' && set -x
fi
log() { printf '[%s %s] %s\n' "$LAB_NAME" "$(date +%T)" "$*" >&2; }
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
ENROL=$("$BACKEND" -c "$WORK/backend/backend.toml" enrolment-token create --name "$LAB_NAME technician" \
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
stop_agent() { local pid; pid=$(cat "$WORK/$1/pid"); kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
active_imsi() {  # "COUNT IMSI..." of the backend's active subscribers for the device
  "$BACKEND" -c "$WORK/backend/backend.toml" subscriber list --state active --device "$(cat "$WORK/$1/id")" \
    | jq -r '"\(.items | length) \(.items | map(.imsi) | join(" "))"'
}

