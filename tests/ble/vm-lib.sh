# shellcheck shell=bash
# Functions for inside the BlueZ VM that tests/ble/run-in-vm boots. Sourced by
# tests/ble/vm-init (PID 1 of the VM) and tests/ble/vm-restart-bluetoothd; a test
# command may source it too ("$CREDPROV_BLE_TOOLS/vm-lib.sh").
# Every function returns non-zero (and says why on stderr) rather than exiting.

CREDPROV_BLE_STATE=/run/credprov-ble               # tmpfs: pid files, options
CREDPROV_BLE_RESULTS=${CREDPROV_BLE_RESULTS:-$CREDPROV_BLE_STATE/results}  # the writable 9p share

ble_log() {
  local line up='?' _rest
  read -r up _rest < /proc/uptime 2>/dev/null || true
  line="credprov-ble: [$up] $*"
  echo "$line" >&2
  echo "$line" >> "$CREDPROV_BLE_RESULTS/harness.log" 2>/dev/null || true
}

# The bluetoothd binary of this system (Debian 12: /usr/libexec/bluetooth).
ble_bluetoothd_bin() {
  local b
  for b in /usr/libexec/bluetooth/bluetoothd /usr/lib/bluetooth/bluetoothd; do
    [[ -x $b ]] && { echo "$b"; return 0; }
  done
  echo "no bluetoothd in /usr/libexec/bluetooth or /usr/lib/bluetooth (apt-get install bluez)" >&2
  return 1
}

# Number of controllers btvirt was asked for (written by vm-init).
ble_controllers() { cat "$CREDPROV_BLE_STATE/controllers" 2>/dev/null || echo 2; }

ble_bluetoothd_pid() { cat "$CREDPROV_BLE_STATE/bluetoothd.pid" 2>/dev/null; }

# True while PID is a live (not zombie) process.
ble_alive() {
  local pid=$1 state
  [[ -n $pid && -r /proc/$pid/stat ]] || return 1
  state=$(sed 's/^.*) //' "/proc/$pid/stat" 2>/dev/null | cut -d' ' -f1)
  [[ $state != Z && $state != X ]]
}

# Start bluetoothd in the background with the options saved in
# $CREDPROV_BLE_STATE/bluetoothd.args (one per line), logging (appending) to
# $CREDPROV_BLE_RESULTS/bluetoothd.log. Does not wait for it: see ble_wait_bluez.
ble_start_bluetoothd() {
  local bin args=()
  bin=$(ble_bluetoothd_bin) || return 1
  if [[ -r $CREDPROV_BLE_STATE/bluetoothd.args ]]; then
    mapfile -t args < "$CREDPROV_BLE_STATE/bluetoothd.args"
  else
    args=(-n -E -d -P battery,deviceinfo,hog,vcp,bap,mcp,avrcp,midi,network,input,sap,health,wiimote,neard,scanparam)
  fi
  echo "==== $(date '+%F %T') starting $bin ${args[*]}" >> "$CREDPROV_BLE_RESULTS/bluetoothd.log"
  setsid "$bin" "${args[@]}" < /dev/null >> "$CREDPROV_BLE_RESULTS/bluetoothd.log" 2>&1 &
  echo $! > "$CREDPROV_BLE_STATE/bluetoothd.pid"
  ble_log "bluetoothd started (pid $!): $bin ${args[*]}"
}

# Stop bluetoothd (SIGTERM, or the signal given, e.g. KILL to simulate a crash)
# and wait until it is gone.
ble_stop_bluetoothd() {
  local sig=${1:-TERM} pid i
  pid=$(ble_bluetoothd_pid)
  if ! ble_alive "$pid"; then
    ble_log "bluetoothd (pid ${pid:-?}) is not running"
    return 0
  fi
  kill -s "$sig" "$pid" 2>/dev/null || true
  for ((i = 0; i < 100; i++)); do
    ble_alive "$pid" || break
    sleep 0.1
  done
  if ble_alive "$pid"; then
    ble_log "bluetoothd (pid $pid) ignored SIG$sig for 10 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do ble_alive "$pid" || break; sleep 0.1; done
  fi
  # The bus must have dropped the name before a new bluetoothd can take it.
  for ((i = 0; i < 50; i++)); do
    busctl --system status org.bluez > /dev/null 2>&1 || break
    sleep 0.1
  done
  ble_log "bluetoothd (pid $pid) stopped with SIG$sig"
}

# The kernel's controllers (hci0 ...), one a line; no process started (each
# costs a good fraction of a second under TCG).
ble_hcis() {
  local d
  for d in /sys/class/bluetooth/hci*; do
    [[ ${d##*/} =~ ^hci[0-9]+$ ]] && echo "${d##*/}"
  done
  return 0
}

# Adapter object paths bluetoothd exports (/org/bluez/hci0 ...), one a line.
ble_adapters() {
  busctl --system --list tree org.bluez 2>/dev/null | grep -E '^/org/bluez/hci[0-9]+$' || true
}

# ble_wait_bluez [N [SECONDS]]: wait until bluetoothd is on the bus with N
# adapters (default: the number of controllers) and `bluetoothctl list` lists them.
ble_wait_bluez() {
  local n=${1:-$(ble_controllers)} secs=${2:-60} end listed
  end=$((SECONDS + secs))
  while ((SECONDS < end)); do
    if ! ble_alive "$(ble_bluetoothd_pid)"; then
      echo "bluetoothd (pid $(ble_bluetoothd_pid)) exited: $(tail -n 3 "$CREDPROV_BLE_RESULTS/bluetoothd.log" 2>/dev/null | tr '\n' ' ')" >&2
      return 1
    fi
    if (($(ble_adapters | wc -l) >= n)); then
      listed=$(timeout 10 bluetoothctl list 2>/dev/null || true)
      if (($(grep -c '^Controller ' <<< "$listed") >= n)); then
        echo "$listed" > "$CREDPROV_BLE_RESULTS/bluetoothctl-list.txt" 2>/dev/null || true
        return 0
      fi
    fi
    sleep 0.2
  done
  echo "bluetoothd did not show $n controllers within ${secs}s (adapters on the bus: $(ble_adapters | tr '\n' ' '))" >&2
  return 1
}

# ble_power_on [SECONDS]: power every adapter on through bluetoothd (its
# AutoEnable usually did already) and wait until each reports Powered=true.
ble_power_on() {
  local secs=${1:-30} h end ok
  end=$((SECONDS + secs))
  while :; do
    ok=1
    for h in $(ble_hcis); do
      [[ $(busctl --system get-property org.bluez "/org/bluez/$h" org.bluez.Adapter1 Powered 2>/dev/null) == "b true" ]] && continue
      ok=0
      busctl --system set-property org.bluez "/org/bluez/$h" org.bluez.Adapter1 Powered b true 2>/dev/null || true
    done
    ((ok)) && return 0
    ((SECONDS < end)) || break
    sleep 0.3
  done
  echo "not every adapter powered on within ${secs}s:" >&2
  for h in $(ble_hcis); do
    echo "  $h Powered=$(busctl --system get-property org.bluez "/org/bluez/$h" org.bluez.Adapter1 Powered 2>&1)" >&2
  done
  return 1
}

# ble_address hciN: the controller's address as bluetoothd reports it.
ble_address() {
  busctl --system get-property org.bluez "/org/bluez/$1" org.bluez.Adapter1 Address 2>/dev/null \
    | sed -n 's/^s "\(.*\)"$/\1/p'
}

# ble_kernel_address hciN: the address the kernel knows (00:00:00:00:00:00 until
# the controller's HCI init completed).
ble_kernel_address() {
  hciconfig "$1" 2>/dev/null | sed -n 's/.*BD Address: \([0-9A-F:]*\).*/\1/p'
}

# ble_btmgmt ARGS...: btmgmt with a pseudo-terminal (BlueZ 5.66's btmgmt prints
# nothing when its stdin is not a terminal).
ble_btmgmt() {
  local cmd="btmgmt" a
  for a in "$@"; do cmd+=" $(printf '%q' "$a")"; done
  timeout 20 script -qec "$cmd" /dev/null < /dev/null | tr -d '\r'
}

# ble_set_aliases: name each adapter after its kernel name (Alias "hci0", ...),
# so that `bluetoothctl list` says which controller is which.
ble_set_aliases() {
  local h
  for h in $(ble_hcis); do
    busctl --system set-property org.bluez "/org/bluez/$h" org.bluez.Adapter1 Alias s "$h" 2>/dev/null || true
  done
}

# ble_pulse_advertising hciN: make a central that is already scanning see hciN's
# current advertisement now. btvirt's controllers send an advertising report
# only when a scan is enabled or an advertisement is enabled (not periodically
# like a radio), and Debian 12's kernel may drop the reports that come with the
# scan enable (discovery not yet in its "finding" state): a central that starts
# scanning after the peripheral started advertising then misses it about one
# time in three. This re-enables hciN's advertising (LE Set Advertising Enable
# 0 then 1, raw HCI), which sends the report again to every scanning controller.
# Does nothing (returns 1) when hciN has no registered advertisement or has a
# connection. Not a radio behaviour: use it only to make discovery in tests
# deterministic.
ble_pulse_advertising() {
  local h=$1 n
  n=$(busctl --system get-property org.bluez "/org/bluez/$h" org.bluez.LEAdvertisingManager1 ActiveInstances 2>/dev/null \
    | sed -n 's/^y //p')
  [[ ${n:-0} -gt 0 ]] || return 1
  ! hcitool -i "$h" con 2>/dev/null | grep -qv '^Connections:' || return 1
  hcitool -i "$h" cmd 0x08 0x000a 00 > /dev/null 2>&1 || true
  hcitool -i "$h" cmd 0x08 0x000a 01 > /dev/null 2>&1
}
