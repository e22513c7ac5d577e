#!/usr/bin/env bash
# Regenerates the examples of docs/admin-api.md: starts a real credprov-backend
# on loopback (SQLite, plain HTTP, as scripts/demo does), a device agent on TCP,
# enrols a provisioner, and calls every endpoint of network_backend/openapi.json
# with curl. Prints each command (as written in the guide, with its shell
# variables) and the real answer, as Markdown, on stdout; secrets are redacted
# (cpa_…, cpe_…, sig=…, XRES/CK/IK shortened), long strings shortened with "…".
#
#   docs/tools/admin-api-examples.sh BIN_DIR > /tmp/examples.md
#
# BIN_DIR holds credprov-backend, credprov, credprov-agentd and
# credprov-agentctl, either directly or as in a build tree
# (network_backend/, provisioner_app/, target_agent/). Needs curl, jq,
# python3 and python3-cryptography. Leaves nothing behind unless KEEP=1.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
BIN=${1:?usage: admin-api-examples.sh BIN_DIR}
BIN=$(cd "$BIN" && pwd)
find_bin() {
  local f
  for f in "$BIN/$1" "$BIN/$2/$1"; do [[ -x $f ]] && { echo "$f"; return; }; done
  echo "admin-api-examples: $1 not found in $BIN" >&2; exit 2
}
BACKEND=$(find_bin credprov-backend network_backend)
CREDPROV=$(find_bin credprov provisioner_app)
AGENTD=$(find_bin credprov-agentd target_agent)
AGENTCTL=$(find_bin credprov-agentctl target_agent)
SIGN_TOOL="$HERE/credprov-sign-request"

WORK=$(mktemp -d /tmp/credprov-api-examples.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ ${KEEP:-0} == 1 ]]; then echo "admin-api-examples: kept $WORK" >&2; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
cd "$WORK"
# The commands shown name the programs and the helper as a reader has them.
mkdir -p bin docs
ln -s "$HERE" docs/tools
for b in "$BACKEND" "$CREDPROV" "$AGENTD" "$AGENTCTL"; do ln -s "$b" bin/; done
export PATH="$WORK/bin:$PATH"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

# ---- Output helpers ---------------------------------------------------------------
redact() {
  sed -E -e 's/cpa_[0-9a-f]{64}/cpa_…/g' -e 's/cpe_[0-9a-f]{64}/cpe_…/g' \
         -e 's/sig=[0-9a-f]{128}/sig=…/g'
}
# Answer of `curl -si`: status line and the headers worth showing, then the body
# (JSON pretty-printed, long strings and secrets shortened).
show_answer() {
  python3 -c '
import json, re, sys
raw = sys.stdin.read()
if "\r\n\r\n" not in raw:
    out = raw.splitlines()
    print("\n".join(out[:40] + (["…"] if len(out) > 40 else [])))
    sys.exit(0)
head, _, body = raw.partition("\r\n\r\n")
lines = head.split("\r\n")
keep = ("content-type", "retry-after", "location", "cache-control")
print(lines[0])
for l in lines[1:]:
    if l.split(":")[0].lower() in keep: print(l)
print()
def short(v, key=""):
    if isinstance(v, dict): return {k: short(x, k) for k, x in v.items()}
    if isinstance(v, list):
        return [short(x, key) for x in v[:3]] + (["…"] if len(v) > 3 else [])
    if isinstance(v, str):
        if key in ("xres", "ck", "ik", "res"): return v[:4] + "…"
        if len(v) > 72: return v[:40] + "…"
    return v
try:
    out = json.dumps(short(json.loads(body)), indent=2, ensure_ascii=False).splitlines()
    print("\n".join(out[:60] + (["…"] if len(out) > 60 else [])))
except ValueError:
    out = body.splitlines()
    print("\n".join(out[:25] + (["…"] if len(out) > 25 else [])))
' | redact
}
# ex TITLE CODE: print CODE as a shell block, run it, print the answer.
ex() {
  local title=$1 code=$2
  printf '\n### %s\n\n```sh\n%s\n```\n\n```\n' "$title" "$code"
  eval "$code" > "$WORK/answer" 2>&1 || true
  show_answer < "$WORK/answer"
  printf '```\n'
}
note() { printf '\n%s\n' "$*"; }
jget() { jq -r "$2" "$1"; }
# answer_json EXPR: a value from the body of the last answer.
answer_json() {
  python3 -c 'import sys; print(open(sys.argv[1], newline="").read().partition("\r\n\r\n")[2])' "$WORK/answer" | jq -r "$1"
}

# ---- The lab: backend, device, provisioner ------------------------------------------
mkdir -p backend
cat > backend/backend.toml <<TOML
[server]
listen = "127.0.0.1"
port = 0
allow_plain_http = true
[operator]
name = "Example Operator"
[subscribers]
plmn = "00101"
network_name = "credprov-example"
[log]
format = "text"
TOML
ROOT_PUB=$("$BACKEND" root create --out backend/root.key)
"$BACKEND" -c backend/backend.toml init --root-key backend/root.key > backend/init.json 2> backend/init.log
ADMIN=$(jget backend/init.json .admin_token.token)
"$BACKEND" -c backend/backend.toml serve > backend/stdout 2> backend/backend.log &
PIDS+=($!)
for _ in $(seq 200); do grep -q "listening on" backend/stdout 2>/dev/null && break; sleep 0.05; done
URL=$(sed -n 's/.*listening on \(http[^ ]*\).*/\1/p' backend/stdout)
[[ -n $URL ]] || { echo "admin-api-examples: the backend did not start" >&2; cat backend/backend.log >&2; exit 1; }

# A recording proxy in front of the backend, for the one request curl cannot
# make by itself: the device's receipt, which only a real session produces.
cat > proxy.py <<'PY'
import http.server, json, sys, urllib.request, urllib.error
upstream, log = sys.argv[2], open(sys.argv[3], "a")
class P(http.server.BaseHTTPRequestHandler):
    def do(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else None
        req = urllib.request.Request(upstream + self.path, data=body, method=self.command,
                                     headers={k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")})
        try:
            r = urllib.request.urlopen(req); status, data, hdrs = r.status, r.read(), r.headers
        except urllib.error.HTTPError as e:
            status, data, hdrs = e.code, e.read(), e.headers
        log.write(json.dumps({"method": self.command, "path": self.path,
                              "body": body.decode() if body else "", "status": status}) + "\n"); log.flush()
        self.send_response(status)
        for k, v in hdrs.items():
            if k.lower() not in ("transfer-encoding", "connection", "date", "server"): self.send_header(k, v)
        self.end_headers(); self.wfile.write(data)
    do_GET = do_POST = do_DELETE = do
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), P).serve_forever()
PY
PPORT=$(free_port)
python3 proxy.py "$PPORT" "$URL" "$WORK/proxy.log" &
PIDS+=($!)
for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$PPORT") 2>/dev/null && break; sleep 0.05; done

# Two devices, listed in the inventory by the examples below.
for d in dev1 dev2; do
  "$AGENTCTL" --state-dir "$d" factory-init --root "$ROOT_PUB" > /dev/null
  "$AGENTCTL" --state-dir "$d" status --json > "$d.json"
done
DEVICE=$(jget dev1.json .device_id)
DEVICE2=$(jget dev2.json .device_id)
CODE=$("$AGENTCTL" --state-dir dev1 label | sed -n 's/^setup code *//p')

# The technician's credprov, enrolled (through the proxy) for every operation.
ENROL=$("$BACKEND" -c backend/backend.toml enrolment-token create --name "technician 1" \
          --operations query,deliver-sealed,deliver-field,deprovision,reconfigure,diagnose --ttl 600)
export CREDPROV_HOME="$WORK/technician"
CREDPROV_ENROLMENT_TOKEN=$(jq -r .token <<< "$ENROL") "$CREDPROV" enroll --backend "http://127.0.0.1:$PPORT" > /dev/null
sign() { "$SIGN_TOOL" header "$CREDPROV_HOME/provisioner.key" "$@"; }

printf '# credprov-backend API examples, captured %s\n\n' "$(date -u +%Y-%m-%dT%H:%MZ)"
printf 'URL=%s  DEVICE=%s  DEVICE2=%s\n' "$URL" "$DEVICE" "$DEVICE2"

# ---- Anonymous ------------------------------------------------------------------------
ex "GET /healthz" 'curl -si "$URL/healthz"'
ex "GET /v1/operator" 'curl -si "$URL/v1/operator"'
ex "GET /openapi.json" 'curl -si "$URL/openapi.json"'
ex "GET /metrics (before any provisioning)" 'curl -si "$URL/metrics"'

# ---- Admin tokens -----------------------------------------------------------------------
ex "POST /v1/admin/tokens" \
'curl -si "$URL/v1/admin/tokens" -H "Authorization: Bearer $ADMIN" \
     -H "Content-Type: application/json" -d '"'"'{"name": "core network", "role": "core-network"}'"'"''
CORE=$(sed -n 's/.*"token": *"\(cpa_[0-9a-f]*\)".*/\1/p' "$WORK/answer" | tail -1)
AUDITOR_JSON=$(curl -s "$URL/v1/admin/tokens" -H "Authorization: Bearer $ADMIN" -H "Content-Type: application/json" \
                 -d '{"name": "night shift", "role": "auditor"}')
TOKEN_ID=$(jq -r .id <<< "$AUDITOR_JSON")
AUDITOR=$(jq -r .token <<< "$AUDITOR_JSON")
ex "GET /v1/admin/tokens" 'curl -si "$URL/v1/admin/tokens" -H "Authorization: Bearer $ADMIN"'
ex "DELETE /v1/admin/tokens/{id}" 'curl -si -X DELETE "$URL/v1/admin/tokens/$TOKEN_ID" -H "Authorization: Bearer $ADMIN"'
ex "A revoked token is refused (401)" 'curl -si "$URL/v1/audit/verify" -H "Authorization: Bearer $AUDITOR"'

# ---- Provisioners ----------------------------------------------------------------------------
ex "POST /v1/enrolment-tokens" \
'curl -si "$URL/v1/enrolment-tokens" -H "Authorization: Bearer $ADMIN" -H "Content-Type: application/json" \
     -d '"'"'{"name": "technician 2", "operations": ["query", "deliver-sealed"], "ttl_s": 3600}'"'"''
ENROLMENT_TOKEN=$(sed -n 's/.*"token": *"\(cpe_[0-9a-f]*\)".*/\1/p' "$WORK/answer" | tail -1)
ex "POST /v1/enrol" \
'PUB=$(docs/tools/credprov-sign-request keygen technician2.key)
PROOF=$(docs/tools/credprov-sign-request enrol-proof technician2.key "$ENROLMENT_TOKEN")
curl -si "$URL/v1/enrol" -H "Content-Type: application/json" \
     -d "{\"enrolment_token\": \"$ENROLMENT_TOKEN\", \"public_key\": \"$PUB\", \"proof\": \"$PROOF\"}"'
ex "POST /v1/provisioners" \
'curl -si "$URL/v1/provisioners" -H "Authorization: Bearer $ADMIN" -H "Content-Type: application/json" \
     -d "{\"name\": \"bench tool\", \"public_key\": \"$(docs/tools/credprov-sign-request keygen bench.key)\",
          \"operations\": [\"query\"]}"'
PROV_ID=$(answer_json '.id')
ex "GET /v1/provisioners" 'curl -si "$URL/v1/provisioners" -H "Authorization: Bearer $ADMIN"'
ex "GET /v1/provisioners/{id}" 'curl -si "$URL/v1/provisioners/$PROV_ID" -H "Authorization: Bearer $ADMIN"'
ex "POST /v1/provisioners/{id}/revoke" \
'curl -si "$URL/v1/provisioners/$PROV_ID/revoke" -H "Authorization: Bearer $ADMIN" \
     -H "Content-Type: application/json" -d '"'"'{"reason": "bench tool retired"}'"'"''

# ---- Manufacturers and inventory ----------------------------------------------------------------
ex "POST /v1/manufacturers" \
'curl -si "$URL/v1/manufacturers" -H "Authorization: Bearer $ADMIN" -H "Content-Type: application/json" \
     -d "{\"name\": \"Example Modules Ltd\", \"public_key\": \"$(docs/tools/credprov-sign-request keygen mfr.key)\"}"'
ex "GET /v1/manufacturers" 'curl -si "$URL/v1/manufacturers" -H "Authorization: Bearer $ADMIN"'
ex "POST /v1/inventory" \
'credprov-agentctl --state-dir dev1 status --json > dev1.json
credprov-agentctl --state-dir dev2 status --json > dev2.json
jq -s '"'"'{devices: map({device_id, identity_key, box_key, box_signature})}'"'"' dev1.json dev2.json > inventory.json
curl -si "$URL/v1/inventory" -H "Authorization: Bearer $ADMIN" -H "Content-Type: application/json" -d @inventory.json'

# ---- Sealed provisioning, as the technician's credprov does it ------------------------------------------
ex "POST /v1/tokens" \
'BODY="{\"device_id\": \"$DEVICE\", \"operations\": [\"deliver-sealed\", \"query\"], \"ttl_s\": 600}"
curl -si "$URL/v1/tokens" -H "Content-Type: application/json" \
     -H "Authorization: $(sign POST /v1/tokens "$BODY")" --data-binary "$BODY"'
ex "POST /v1/bundles" \
'BODY=$(jq -c '"'"'{device: {device_id, identity_key, box_key, box_signature}}'"'"' dev1.json)
curl -si "$URL/v1/bundles" -H "Content-Type: application/json" \
     -H "Authorization: $(sign POST /v1/bundles "$BODY")" --data-binary "$BODY"'
IMSI=$(answer_json '.imsi')
# What credprov asks: the token with the device's bundle (decision 0013),
# here the same pending bundle again.
ex "POST /v1/tokens" \
'BODY="{\"device_id\": \"$DEVICE\", \"operations\": [\"deliver-sealed\", \"query\"], \"ttl_s\": 600, \"bundle\": true}"
curl -si "$URL/v1/tokens" -H "Content-Type: application/json" \
     -H "Authorization: $(sign POST /v1/tokens "$BODY")" --data-binary "$BODY"'

# The device and the provisioner run a real session; credprov gets the same
# pending bundle (idempotent by device), delivers it and posts the receipt.
APORT=$(free_port)
"$AGENTD" --state-dir dev1 --listen "tcp://127.0.0.1:$APORT" 2> agentd.log &
AGENT_PID=$!
PIDS+=($AGENT_PID)
for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$APORT") 2>/dev/null && break; sleep 0.05; done
"$CREDPROV" --json provision --address "tcp://127.0.0.1:$APORT" --device "$DEVICE" --code "$CODE" > provision.json
kill "$AGENT_PID"; wait "$AGENT_PID" 2>/dev/null || true
jq -c 'select(.path == "/v1/receipts") | .body' proxy.log | head -1 | jq -r . > receipt.json
note "The device's receipt comes from a provisioning session (here \`credprov provision\`, which posted it through a recording proxy); posting the same receipt again is idempotent:"
ex "POST /v1/receipts" \
'BODY=$(cat receipt.json)
curl -si "$URL/v1/receipts" -H "Content-Type: application/json" \
     -H "Authorization: $(sign POST /v1/receipts "$BODY")" --data-binary "$BODY"'

note "Several of these requests in one signed request (decision 0014), each answered as if it came alone:"
ex "POST /v1/batch" \
'BODY=$(jq -c --arg d "$DEVICE2" '"'"'{requests: [{path: "/v1/receipts", body: .},
  {path: "/v1/tokens", body: {device_id: $d, operations: ["query"], ttl_s: 600}},
  {path: "/v1/bundles", body: {device: {device_id: $d}}}]}'"'"' receipt.json)
curl -si "$URL/v1/batch" -H "Content-Type: application/json" \
     -H "Authorization: $(sign POST /v1/batch "$BODY")" --data-binary "$BODY"'

# ---- Subscribers, devices, AKA ----------------------------------------------------------------------
ex "GET /v1/subscribers" 'curl -si "$URL/v1/subscribers?state=active&limit=10" -H "Authorization: Bearer $ADMIN"'
ex "GET /v1/subscribers/{imsi}" 'curl -si "$URL/v1/subscribers/$IMSI" -H "Authorization: Bearer $ADMIN"'
ex "GET /v1/devices/{device_id}" 'curl -si "$URL/v1/devices/$DEVICE" -H "Authorization: Bearer $ADMIN"'
ex "POST /v1/subscribers/{imsi}/vectors" \
'curl -si "$URL/v1/subscribers/$IMSI/vectors" -H "Authorization: Bearer $CORE" \
     -H "Content-Type: application/json" -d '"'"'{"count": 2}'"'"''
RAND=$(answer_json '.vectors[0].rand')
AUTN=$(answer_json '.vectors[0].autn')
# The device accepts the first vector (its SQN advances), then sees it again:
# a stale SQN, so the soft-USIM answers with AUTS, which resynchronises the network.
"$AGENTCTL" --state-dir dev1 aka --rand "$RAND" --autn "$AUTN" --update-sqn > /dev/null
AUTS=$("$AGENTCTL" --state-dir dev1 aka --rand "$RAND" --autn "$AUTN" 2>/dev/null | sed -n 's/^AUTS //p' || true)
note "The device accepted that first vector and was shown it again; its soft-USIM (\`credprov-agentctl aka --rand \$RAND --autn \$AUTN\`) answered with a synchronisation failure, AUTS:"
ex "POST /v1/subscribers/{imsi}/resync" \
'curl -si "$URL/v1/subscribers/$IMSI/resync" -H "Authorization: Bearer $CORE" \
     -H "Content-Type: application/json" -d "{\"rand\": \"$RAND\", \"auts\": \"$AUTS\"}"'
ex "POST /v1/attach/challenge" \
'curl -si "$URL/v1/attach/challenge" -H "Content-Type: application/json" -d "{\"imsi\": \"$IMSI\"}"'
CH=$(answer_json '.challenge_id')
CRAND=$(answer_json '.rand')
CAUTN=$(answer_json '.autn')
ex "POST /v1/attach/response" \
'RES=$(credprov-agentctl --state-dir dev1 aka --rand "$CRAND" --autn "$CAUTN" | sed -n "s/^RES //p")
curl -si "$URL/v1/attach/response" -H "Content-Type: application/json" \
     -d "{\"challenge_id\": \"$CH\", \"res\": \"$RES\"}"'

# ---- Owner commands and field pools -------------------------------------------------------------------
ex "POST /v1/devices/{device_id}/commands" \
'curl -si "$URL/v1/devices/$DEVICE/commands" -H "Authorization: Bearer $ADMIN" -H "Content-Type: application/json" \
     -d '"'"'{"request_id": "diag-2026-11-27-1", "kind": "diagnose", "diagnostics": ["self-test", "store-check"]}'"'"''
ex "POST /v1/field-pools" \
'BODY='"'"'{"request_id": "trip-0001", "count": 2}'"'"'
curl -si "$URL/v1/field-pools" -H "Content-Type: application/json" \
     -H "Authorization: $(sign POST /v1/field-pools "$BODY")" --data-binary "$BODY"'
POOL=$(answer_json '.pool_id')
ex "POST /v1/field-pools/{pool_id}/return" \
'curl -si "$URL/v1/field-pools/$POOL/return" -H "Content-Type: application/json" \
     -H "Authorization: $(sign POST "/v1/field-pools/$POOL/return" "")" --data-binary ""'

# ---- Deprovisioning ------------------------------------------------------------------------------------
ex "POST /v1/devices/{device_id}/deprovision" \
'curl -si "$URL/v1/devices/$DEVICE/deprovision" -H "Authorization: Bearer $ADMIN" \
     -H "Content-Type: application/json" -d '"'"'{"reason": "end of contract"}'"'"''
ex "GET /v1/devices/{device_id}/notice" 'curl -si "$URL/v1/devices/$DEVICE/notice"'
ex "POST /v1/attach/challenge (deprovisioned subscriber)" \
'curl -si "$URL/v1/attach/challenge" -H "Content-Type: application/json" -d "{\"imsi\": \"$IMSI\"}"'
BODY=$(jq -c '{device: {device_id, identity_key, box_key, box_signature}}' dev2.json)
curl -s "$URL/v1/bundles" -H "Content-Type: application/json" \
     -H "Authorization: $(sign POST /v1/bundles "$BODY")" --data-binary "$BODY" > /dev/null
note "The second device got a bundle (a pending subscriber) as above; a provisioner enrolled for \`deprovision\` may deprovision it too:"
ex "POST /v1/devices/{device_id}/deprovision, signed by a provisioner" \
'BODY='"'"'{"reason": "returned to stock"}'"'"'
curl -si "$URL/v1/devices/$DEVICE2/deprovision" -H "Content-Type: application/json" \
     -H "Authorization: $(sign POST "/v1/devices/$DEVICE2/deprovision" "$BODY")" --data-binary "$BODY"'

# ---- Audit, metrics ---------------------------------------------------------------------------------------
ex "GET /v1/audit" 'curl -si "$URL/v1/audit?after=0&limit=3" -H "Authorization: Bearer $ADMIN"'
ex "GET /v1/audit/verify" 'curl -si "$URL/v1/audit/verify" -H "Authorization: Bearer $ADMIN"'
ex "GET /metrics" 'curl -si "$URL/metrics" | grep -E "^(HTTP|Content-Type|Cache-Control)|^credprov_(subscribers|registrations_total|bundles_issued_total|deprovisionings_total|auth_failures_total|vectors_issued_total|attach_total)"'
