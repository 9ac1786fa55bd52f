#!/usr/bin/env python3
"""Holds N blocking queries open against GET /api/agent/v1/config, then measures how long one change
takes to reach all of them. Raw asyncio sockets on loopback only; every wait is bounded.

usage: controller-longpoll.py HOST PORT AGENT_TOKEN INDEX N
It prints "ready" once every request is sent, then waits for "go" on stdin (the driver makes the
change right after writing it), and reports the spread of answer arrival times.
"""
import asyncio
import json
import sys
import time

HOST, PORT, TOKEN, INDEX, COUNT = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
REQUEST = (f"GET /api/agent/v1/config?index={INDEX}&wait=5m HTTP/1.1\r\nHost: {HOST}\r\n"
           f"Authorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n").encode()


async def one(results, sent):
    for attempt in range(20):
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, PORT), 30)
            break
        except (OSError, asyncio.TimeoutError):
            await asyncio.sleep(0.05 * (attempt + 1))
    else:
        results.append(("connect-failed", None))
        return
    writer.write(REQUEST)
    await writer.drain()
    sent.append(1)
    try:
        data = await asyncio.wait_for(reader.read(-1), 400)
        # Parsed after the run: the client's own work must not delay the arrival times it records.
        results.append((time.monotonic(), data))
    except (asyncio.TimeoutError, ValueError) as error:
        results.append(("error", repr(error)))
    finally:
        writer.close()


async def main():
    results, sent = [], []
    tasks = []
    for start in range(0, COUNT, 500):
        tasks += [asyncio.create_task(one(results, sent)) for _ in range(min(500, COUNT - start))]
        await asyncio.sleep(0.05)
    deadline = time.monotonic() + 120
    while len(sent) + len([r for r in results if r[0] == "connect-failed"]) < COUNT and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    early = len(results)
    print(f"ready sent={len(sent)} answered_early={early}", flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.readline)
    changed = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*tasks), 400)
    arrivals = sorted(r[0] - changed for r in results if isinstance(r[0], float))
    versions = set()
    for arrived, data in results:
        if isinstance(arrived, float) and b"\r\n\r\n" in data:
            versions.add(json.loads(data.split(b"\r\n\r\n", 1)[1]).get("data", {}).get("version"))
    failures = [r for r in results if not isinstance(r[0], float)]
    if arrivals:
        print(f"answers={len(arrivals)} failures={len(failures)} versions={sorted(v for v in versions if v is not None)} "
              f"first={arrivals[0]*1000:.0f}ms p50={arrivals[len(arrivals)//2]*1000:.0f}ms "
              f"p99={arrivals[int(len(arrivals)*0.99)-1]*1000:.0f}ms last={arrivals[-1]*1000:.0f}ms", flush=True)
    else:
        print(f"no answers; failures={failures[:3]}", flush=True)


asyncio.run(main())
