#!/usr/bin/env python3
"""Counts ATT round trips, as the central sees them, in a btmon capture.

    att_round_trips.py CAPTURE [--index hci1]

CAPTURE is btmon's text output (`btmon -i hci1 > capture.txt`), or a btsnoop
file (`btmon -w`), decoded with `btmon -r` (BlueZ 5.66's decoder crashes on
some GATT traffic: prefer text). Keeps the ATT PDUs on the central's controller
(ACL Data TX = central to peripheral, RX = peripheral to central) and counts
the round trips on the central's critical path: every request it sends
(answered by a response: one turn of the link each way), and every burst of
notifications or indications from the device (the device's answer, sent
after it worked on the central's last write: one more turn). The device's
own GATT client reading the central's database (BlueZ does that on every
connection) runs in the same connection events and is not counted as round
trips, but its bytes are in the air time. Prints JSON: round_trips, requests,
notify_bursts, pdus, bytes (ATT payload bytes both ways) and packets.
"""
import json
import re
import subprocess
import sys


def main() -> int:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    snoop = args[0]
    index = "hci1"
    if "--index" in args:
        index = args[args.index("--index") + 1]
    with open(snoop, "rb") as f:
        is_snoop = f.read(8) == b"btsnoop\0"
    if is_snoop:
        text = subprocess.run(["btmon", "-r", snoop], capture_output=True, text=True, check=False).stdout
    else:
        with open(snoop, encoding="utf-8", errors="replace") as f:
            text = f.read()
    header = re.compile(r"^([<>]) ACL Data (TX|RX): Handle \d+ flags 0x[0-9a-f]+ dlen (\d+)(?:.*\[(hci\d+)\])?")
    pdus = []  # (direction, dlen, ATT opcode name)
    pending = None
    for line in text.splitlines():
        m = header.match(line)
        if m:
            pending = (m.group(2), int(m.group(3)), m.group(4))
            continue
        if pending and line.strip().startswith("ATT:"):
            direction, dlen, idx = pending
            if idx is None or idx == index:  # a capture taken with btmon -i has no index marks
                name = re.sub(r"\s*\(0x[0-9a-f]+\).*$", "", line.strip()[len("ATT:"):]).strip()
                pdus.append((direction, dlen, name))
            pending = None
        elif pending and line and not line.startswith(" "):
            pending = None
    requests = 0
    bursts = 0
    in_burst = False
    for direction, _, name in pdus:
        if direction == "TX" and name.endswith("Request"):
            requests += 1
            in_burst = False
        elif direction == "RX" and ("Notification" in name or "Indication" in name):
            if not in_burst:
                bursts += 1
            in_burst = True
        elif direction == "TX" and not name.endswith("Response") and "Error" not in name:
            in_burst = False  # a write command or confirmation from the central
    print(json.dumps({"round_trips": requests + bursts, "requests": requests, "notify_bursts": bursts,
                      "pdus": len(pdus), "bytes": sum(d for _, d, _ in pdus), "packets": len(pdus)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
