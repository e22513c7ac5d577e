#!/usr/bin/env python3
"""Counts ATT round trips, as the central sees them, in a btmon capture.

    att_round_trips.py CAPTURE [--index hci1]

CAPTURE is btmon's text output (`btmon -i hci1 > capture.txt`), or a btsnoop
file (`btmon -w`), decoded with `btmon -r` (BlueZ 5.66's decoder crashes on
some GATT traffic: prefer text). Keeps the ATT PDUs on the central's controller
(ACL Data TX = central to peripheral, RX = peripheral to central) and counts
how often traffic turns around from the central to the peripheral: every
request/response pair, and every burst of write commands answered by a burst
of notifications, is one round trip. That is what costs connection intervals
on a real radio. Prints JSON: round_trips, pdus, bytes (ATT payload bytes
both ways) and packets.
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
    pdus = []  # (direction, dlen)
    pending = None
    for line in text.splitlines():
        m = header.match(line)
        if m:
            pending = (m.group(2), int(m.group(3)), m.group(4))
            continue
        if pending and line.strip().startswith("ATT:"):
            direction, dlen, idx = pending
            if idx is None or idx == index:  # a capture taken with btmon -i has no index marks
                pdus.append((direction, dlen))
            pending = None
        elif pending and line and not line.startswith(" "):
            pending = None
    round_trips = 0
    last = None
    for direction, _ in pdus:
        if direction == "RX" and last == "TX":
            round_trips += 1
        last = direction
    print(json.dumps({"round_trips": round_trips, "pdus": len(pdus), "bytes": sum(d for _, d in pdus), "packets": len(pdus)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
