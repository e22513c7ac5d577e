#!/usr/bin/env python3
"""Serial-link time of the PN532 frames in a pn532-sim frame log.

    serial_time.py SIM_LOG [--baud 115200]

Every logged command or answer ("<chip> host->chip <Command> len=N" or
"chip->host") is one normal information frame on the chip's UART:
00 00 FF LEN LCS TFI CMD <N data bytes> DCS 00, that is N + 9 bytes, and
every command is acknowledged by the chip with a 6-byte ACK frame. At 8N1
each byte is 10 bits. Both chips' links are summed (reader and device take
turns within one exchange), which is what a real pair of PN532s at that
speed would add to the simulator's time. Prints milliseconds.
"""
import re
import sys


def main() -> int:
    args = sys.argv[1:]
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if args else 2
    baud = 115200
    if "--baud" in args:
        baud = int(args[args.index("--baud") + 1])
    frame = re.compile(r"^\S+ (\S+) (host->chip|chip->host) \S+ len=(\d+)")
    total = 0
    with open(args[0], encoding="utf-8", errors="replace") as f:
        for line in f:
            m = frame.match(line)
            if not m:
                continue
            total += int(m.group(3)) + 9
            if m.group(2) == "host->chip":
                total += 6  # the chip's ACK
    print(f"{total * 10 * 1000 / baud:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
