#!/usr/bin/env python3
"""An app that writes known lines, the source of every log the WebSocket tests and benchmarks check.

Each line carries the instance's own counter (n=) and the CLOCK_MONOTONIC nanoseconds at which it was written
(t=), so a client on the same host can count lines lost or duplicated and measure write-to-frame latency (a
bubblewrap sandbox shares the host's monotonic clock: it makes no time namespace). Each line also says which
level and stream the controller should give it (want=LEVEL/STREAM), so a test checks classification line by
line instead of trusting a count.

The lines cycle through the shapes a real app writes:
  INFO word on stdout, a JSON object with its own "level", a plain stderr line (error by default), a leading
  ERROR word, a mixed-case "Error:" in the middle of a plain stdout line (info: only a leading word is a
  level), WARN, DEBUG, and a plain stdout line (info by default).

usage: log_app.py [--rate LINES_PER_S] [--count N] [--pad BYTES] [--only-stdout] [--burn]
  --rate     lines per second, paced against the monotonic clock (default 20)
  --count    stop after N lines, then sleep (default: write until stopped)
  --pad      append this many filler bytes to each line (benchmarks of bytes in flight)
  --plain    write only the INFO shape on stdout (benchmarks: one shape, one pipe)
  --burn     burn a varying share of a core (0-30 % over a 6 s cycle), so metrics change
"""
import json
import os
import sys
import time

rate, count, pad, plain, burn = 20.0, None, 0, False, False
args = sys.argv[1:]
while args:
    flag = args.pop(0)
    if flag == "--rate":
        rate = float(args.pop(0))
    elif flag == "--count":
        count = int(args.pop(0))
    elif flag == "--pad":
        pad = int(args.pop(0))
    elif flag == "--plain":
        plain = True
    elif flag == "--burn":
        burn = True
    else:
        sys.exit(f"log_app: unknown flag {flag}")

filler = " " + "x" * pad if pad else ""
out = os.fdopen(1, "w", buffering=1)
err = os.fdopen(2, "w", buffering=1)


def line(n, t):
    """The n-th line: (stream file, text)."""
    stamp = f"n={n} t={t}"
    if plain:
        return out, f"INFO {stamp} want=info/stdout ready{filler}"
    shape = n % 8
    if shape == 0:
        return out, f"INFO {stamp} want=info/stdout request served{filler}"
    if shape == 1:
        return out, json.dumps({"level": "warn", "msg": f"{stamp} want=warn/stdout slow query{filler}"})
    if shape == 2:
        return err, f"{stamp} want=error/stderr traceback follows{filler}"
    if shape == 3:
        return out, f"ERROR {stamp} want=error/stdout payment failed{filler}"
    if shape == 4:
        return out, f"{stamp} want=info/stdout retry after Error: timeout{filler}"
    if shape == 5:
        return out, f"WARN {stamp} want=warn/stdout disk almost full{filler}"
    if shape == 6:
        return out, f"DEBUG {stamp} want=debug/stdout cache miss{filler}"
    return out, f"{stamp} want=info/stdout plain line{filler}"


def busy(until_ns):
    while time.monotonic_ns() < until_ns:
        pass


start = time.monotonic_ns()
interval = 1e9 / rate
n = 0
while count is None or n < count:
    now = time.monotonic_ns()
    due = int((now - start) / interval) + 1
    while n < due and (count is None or n < count):
        stream, text = line(n, time.monotonic_ns())
        stream.write(text + "\n")
        n += 1
    next_at = start + int(n * interval)
    if burn:
        # Busy for a share of the wait before the next line; the share follows a 6 s triangle between 0 and 30 %.
        phase = ((time.monotonic_ns() - start) / 1e9) % 6.0
        share = 0.3 * (phase / 3.0 if phase < 3.0 else (6.0 - phase) / 3.0)
        now = time.monotonic_ns()
        busy(now + int(share * max(0, next_at - now)))
    delay = (next_at - time.monotonic_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)
while True:
    time.sleep(3600)
