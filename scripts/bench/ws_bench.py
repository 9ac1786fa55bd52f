#!/usr/bin/env python3
"""The WebSocket benchmarks: log latency (with the REST-polling anchor), fan-out, and stability under load.
Driven by scripts/bench/ws-log-latency, ws-fanout and ws-stability; everything runs on 127.0.0.1 and every
loop is bounded by a deadline.

Each app is Tests/websocket/log_app.py, which stamps every line with its counter (n) and the CLOCK_MONOTONIC
time of the write (t); a client on the same host takes its own CLOCK_MONOTONIC at each frame, so latency is
the app's write to the client's read, through the agent and the controller. Lines lost are counted from the
counters: every n a follower should have seen and did not.

usage: ws_bench.py latency    BIN_DIR [--duration S] [--rates 100,5000]
       ws_bench.py hops       BIN_DIR [--duration S] [--rates 5000] (needs tcpdump)
       ws_bench.py client     - [--duration S] [--rates 100,5000] [--batch-ms 10]
       ws_bench.py fanout     BIN_DIR [--subscribers 1000] [--deployments 10] [--rate 10] [--duration S]
       ws_bench.py stability  BIN_DIR [--connections 500] [--deployments 5] [--rate 2] [--duration S]
                              [--load-users 200]
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "Tests", "websocket"))
from harness import Api, Controller, app_command, percentile, stamp  # noqa: E402



class Follower:
    """One WebSocket subscriber of one deployment's logs, which reconnects and resumes when dropped."""

    def __init__(self, url, token, deployment, measure_from_ns, stop_at):
        self.url, self.token, self.deployment = url, token, deployment
        self.measure_from_ns, self.stop_at = measure_from_ns, stop_at
        self.latencies_ms = []
        self.last = {}          # instanceId -> (seq, n) of the last line taken
        self.seen = {}          # instanceId -> set of n taken in the measured window (for the lost count)
        self.duplicates = 0     # a line whose seq we already held, after a resume (dropped by seq, not counted)
        self.out_of_order = 0
        self.gaps = 0           # lines missing between two lines taken
        self.dropped = 0        # what logs_dropped reported
        self.disconnects = 0    # closes we did not ask for
        self.resumed_clean = 0  # reconnects after which the next line per instance followed the last held
        self.resumed_gap = 0
        self.connect_ms = []
        self.errors = []

    def take(self, data, arrived_ns):
        instance, seq = data["instanceId"], data["seq"]
        n, t = stamp(data["message"])
        previous = self.last.get(instance)
        if previous is not None and seq <= previous[0]:
            self.duplicates += 1
            return None
        gap = 0
        if previous is not None:
            if n <= previous[1]:
                self.out_of_order += 1
            gap = max(0, n - previous[1] - 1)
            self.gaps += gap
        self.last[instance] = (seq, n)
        if t >= self.measure_from_ns:
            self.latencies_ms.append((arrived_ns - t) / 1e6)
            self.seen.setdefault(instance, set()).add(n)
        return gap

    async def run(self):
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed
        resuming = False
        attempt = 0
        while time.monotonic() < self.stop_at and attempt < 50:
            attempt += 1
            try:
                started = time.monotonic()
                async with connect(self.url, additional_headers={"Authorization": f"Bearer {self.token}"},
                                   open_timeout=60, close_timeout=5, max_queue=None) as ws:
                    self.connect_ms.append((time.monotonic() - started) * 1000)
                    subscribe = {"deploymentId": self.deployment}
                    if resuming:
                        # Resume exactly after the last line held per instance (docs/streams.md).
                        subscribe["after"] = {instance: seq for instance, (seq, _) in self.last.items()}
                    await ws.send(json.dumps({"event": "subscribe_logs", "data": subscribe}))
                    pending = set(self.last) if resuming else set()
                    # One deadline for the whole loop: a wait_for per frame would cost a task per frame, which at
                    # 5,000 frames/s is the client's own bottleneck.
                    try:
                        async with asyncio.timeout(max(0.0, self.stop_at - time.monotonic())):
                            async for raw in ws:
                                arrived = time.monotonic_ns()
                                frame = json.loads(raw)
                                event = frame.get("event")
                                if event == "log_update":
                                    gap = self.take(frame["data"], arrived)
                                    instance = frame["data"]["instanceId"]
                                    if gap is not None and instance in pending:
                                        pending.discard(instance)
                                        if gap == 0:
                                            self.resumed_clean += 1
                                        else:
                                            self.resumed_gap += 1
                                elif event == "logs_dropped":
                                    self.dropped += frame["data"]["count"]
                                elif event in ("subscription_error", "error"):
                                    self.errors.append(f"{event}: {frame.get('data')}")
                    except TimeoutError:
                        return
                    if time.monotonic() >= self.stop_at:
                        return
                    raise ConnectionClosed(None, None)  # the server ended the connection cleanly (1000/1001)
            except (ConnectionClosed, OSError, asyncio.TimeoutError) as error:
                self.disconnects += 1
                if len(self.errors) < 5:
                    self.errors.append(f"{type(error).__name__}: {error}")
                resuming = True
                await asyncio.sleep(min(2.0, 0.1 * attempt))

    def summary(self):
        return {"latencies": self.latencies_ms, "seen": {k: sorted(v) for k, v in self.seen.items()},
                "gaps": self.gaps, "dropped": self.dropped, "duplicates": self.duplicates,
                "out_of_order": self.out_of_order, "disconnects": self.disconnects,
                "resumed_clean": self.resumed_clean, "resumed_gap": self.resumed_gap,
                "connect_ms": self.connect_ms, "errors": self.errors}


def follower_worker(jobs, url, measure_from_ns, stop_at, results, ready, nice=None):
    """A process holding many followers on one event loop; sends their summaries back when the time is up."""
    import resource
    own_priority(nice)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    async def main():
        followers = [Follower(url, token, deployment, measure_from_ns, stop_at) for token, deployment in jobs]
        tasks = []
        for index, follower in enumerate(followers):
            tasks.append(asyncio.create_task(follower.run()))
            if index % 50 == 49:
                await asyncio.sleep(0.05)  # a ramp, so the handshakes do not all queue at once
        ready.put(len(followers))
        await asyncio.wait(tasks, timeout=max(1, stop_at - time.monotonic() + 30))
        usage = resource.getrusage(resource.RUSAGE_SELF)
        summaries = [f.summary() for f in followers]
        # The client's own CPU, so a reader can tell a slow client from a slow server.
        summaries[0]["client_cpu_s"] = usage.ru_utime + usage.ru_stime
        return summaries

    results.put(asyncio.run(main()))


def run_followers(jobs, url, measure_from_ns, stop_at, processes, nice=None):
    """Followers spread over `processes` worker processes; returns every summary."""
    ctx = multiprocessing.get_context("fork")
    results, ready = ctx.Queue(), ctx.Queue()
    shares = [jobs[i::processes] for i in range(processes)]
    workers = [ctx.Process(target=follower_worker, args=(share, url, measure_from_ns, stop_at, results, ready, nice))
               for share in shares if share]
    for worker in workers:
        worker.start()
    for _ in workers:
        ready.get(timeout=120)
    return workers, results


def collect(workers, results, stop_at):
    summaries = []
    for _ in workers:
        summaries += results.get(timeout=max(10, stop_at - time.monotonic() + 90))
    for worker in workers:
        worker.join(10)
    return summaries


def lost_lines(summaries, last_n_written):
    """Lines written in the window that a follower never took: for each follower and instance, every n from the
    first it took in the window to the last the app wrote. last_n_written: instanceId -> last n (or None: the
    follower's own last n, when the app is still writing)."""
    lost = 0
    for summary in summaries:
        for instance, ns in summary["seen"].items():
            end = last_n_written.get(instance) if last_n_written else None
            end = ns[-1] if end is None else end
            lost += (end - ns[0] + 1) - len([n for n in ns if n <= end])
    return lost


def raise_priority(controller, nice):
    """--nice N: on a machine shared with other work, run the controller, its agents and their apps at the
    priority of `nice N`. Linux groups a session's processes for the scheduler (autogroup), and the controller and
    every sandbox run in sessions of their own, so a plain `nice` of the benchmark would not reach them: the value
    is set on each of their groups (/proc/PID/autogroup, as root). The benchmark's own clients do the same in
    sessions of their own (own_priority); the caller's session is never touched. None changes nothing."""
    if nice is None:
        return
    children = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    pids, todo = [], [controller.pid]
    while todo:
        pid = todo.pop()
        pids.append(pid)
        todo += children.get(pid, [])
    for pid in pids:
        try:
            with open(f"/proc/{pid}/autogroup", "w") as group:
                group.write(str(nice))
        except OSError:
            pass


def own_priority(nice):
    """In a forked client process: a session (so an autogroup) of its own, at the priority of `nice N`."""
    if nice is None:
        return
    try:
        os.setsid()
        with open("/proc/self/autogroup", "w") as group:
            group.write(str(nice))
    except OSError:
        pass


def ms(value):
    return f"{value:.1f}" if value == value else "-"


# ---- log latency, with the REST-polling anchor

def anchor_poller(base, token, deployment, measure_from_ns, stop_at, interval, tail, results, nice=None):
    """Railway's old log view: every `interval` s, the recent lines over REST; a line's latency is from its
    write to the poll that first returned it."""
    own_priority(nice)
    api = Api(base, token)
    latencies, seen, polls, errors = [], {}, 0, 0
    while time.monotonic() < stop_at:
        started = time.monotonic()
        try:
            rows = api.data("GET", f"/api/deployments/{deployment}/logs?tail={tail}&format=json", timeout=10)["lines"]
        except Exception:
            errors += 1
            rows = []
        arrived = time.monotonic_ns()
        polls += 1
        for row in rows:
            n, t = stamp(row["message"])
            instance = row["instanceId"]
            if t >= measure_from_ns and n not in seen.setdefault(instance, set()):
                seen[instance].add(n)
                latencies.append((arrived - t) / 1e6)
        time.sleep(max(0.0, interval - (time.monotonic() - started)))
    results.put({"latencies": latencies, "seen": {k: sorted(v) for k, v in seen.items()}, "polls": polls,
                 "errors": errors})


def bench_latency(args):
    controller = Controller(args.bin_dir).start()
    rows = []
    try:
        user = Api(controller.base).register_and_login("latency@example.com")
        project = user.project("latency")
        for rate in [int(r) for r in args.rates.split(",")]:
            warmup, measure = 3, args.duration
            count = int(rate * (warmup + measure + 2))
            deployment = user.deployment(project, f"latency-{rate}",
                                         app_command("--rate", rate, "--plain", "--count", count))
            user.scale(deployment, 1)
            user.wait_running(deployment, 1)
            raise_priority(controller, args.nice)
            now = time.monotonic()
            cpu_before = controller.cpu_seconds()
            measure_from = time.monotonic_ns() + warmup * 1_000_000_000
            stop_at = now + warmup + measure + 5  # the app stops writing ~2 s before; stragglers get 3 s more
            workers, results = run_followers([(user.token, deployment)], controller.ws_url, measure_from,
                                             stop_at, 1, args.nice)
            ctx = multiprocessing.get_context("fork")
            anchor_results = ctx.Queue()
            anchor = ctx.Process(target=anchor_poller, args=(controller.base, user.token, deployment, measure_from,
                                                             stop_at, 2.0, min(10000, rate * 3), anchor_results,
                                                             args.nice))
            anchor.start()
            ws = collect(workers, results, stop_at)
            cpu = (controller.cpu_seconds() - cpu_before) / (time.monotonic() - now)
            print(f"  {rate} lines/s: controller CPU {100 * cpu:.0f}% of a core, the WebSocket client "
                  f"{100 * ws[0].get('client_cpu_s', 0) / (time.monotonic() - now):.0f}%, load average "
                  f"{os.getloadavg()[0]:.1f} (2 cores)")
            polled = anchor_results.get(timeout=60)
            anchor.join(10)
            last = {instance: count - 1 for instance in user.running_instances(deployment)}
            user.scale(deployment, 0)
            ws_lat = ws[0]["latencies"]
            rows.append(("WebSocket", rate, len(ws_lat), percentile(ws_lat, 50), percentile(ws_lat, 99),
                         max(ws_lat) if ws_lat else float("nan"), lost_lines(ws, last), ws[0]["dropped"],
                         ws[0]["disconnects"]))
            rows.append(("REST poll every 2 s (anchor)", rate, len(polled["latencies"]),
                         percentile(polled["latencies"], 50), percentile(polled["latencies"], 99),
                         max(polled["latencies"]) if polled["latencies"] else float("nan"),
                         lost_lines([polled], last), 0, polled["errors"]))
            if ws[0]["errors"]:
                print(f"  websocket errors at {rate}/s: {ws[0]['errors'][:3]}")
    finally:
        left = controller.stop()
    print(f"\n{'client':30} {'lines/s':>8} {'lines':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'lost':>6} "
          f"{'dropped':>8} {'errors':>6}")
    for row in rows:
        print(f"{row[0]:30} {row[1]:>8} {row[2]:>7} {ms(row[3]):>8} {ms(row[4]):>8} {ms(row[5]):>8} {row[6]:>6} "
              f"{row[7]:>8} {row[8]:>6}")
    for ws_row, anchor_row in zip(rows[::2], rows[1::2]):
        ratio = anchor_row[4] / ws_row[4] if ws_row[4] else float("nan")
        print(f"RESULT ws-log-latency rate={ws_row[1]}/s p50={ms(ws_row[3])}ms p99={ms(ws_row[4])}ms "
              f"lost={ws_row[6]} anchor_p99={ms(anchor_row[4])}ms anchor_lost={anchor_row[6]} "
              f"ratio_p99={ratio:.0f}x (goal at 5000/s: p99 <= 50 ms, 0 lost)")
    if left:
        print(f"agents left behind and killed: {left}")


# ---- where the time goes: every hop of a line, from a loopback capture

def read_pcap(path):
    """(timestamp ns CLOCK_REALTIME, src port, dst port, TCP payload) per packet of a tcpdump -i lo capture."""
    import struct
    data = open(path, "rb").read()
    magic = struct.unpack("<I", data[:4])[0]
    scale = 1 if magic == 0xa1b23c4d else 1000  # nanosecond or microsecond timestamps
    linktype = struct.unpack("<I", data[20:24])[0]
    link = {1: 14, 113: 16, 276: 20}[linktype]
    at, out = 24, []
    while at + 16 <= len(data):
        sec, frac, caplen, _ = struct.unpack("<IIII", data[at:at + 16])
        packet = data[at + 16:at + 16 + caplen]
        at += 16 + caplen
        ip = packet[link:]
        if len(ip) < 20 or ip[0] >> 4 != 4 or ip[9] != 6:
            continue
        tcp = ip[(ip[0] & 15) * 4:]
        payload = tcp[(tcp[12] >> 4) * 4:]
        if payload:
            src, dst = struct.unpack(">HH", tcp[:4])
            out.append((sec * 1_000_000_000 + frac * scale, src, dst, payload))
    return out


def stream_stamps(packets, pattern):
    """For each match of `pattern` in a direction's byte stream, the capture time of the packet that completed it:
    {n: (capture ns, match)}, first sighting only. Directions are reassembled by concatenation (loopback keeps
    order and loses nothing while the capture does not drop)."""
    import bisect
    flows = {}
    for ts, src, dst, payload in packets:
        flow = flows.setdefault((src, dst), ([], [], bytearray()))
        flow[2].extend(payload)
        flow[0].append(len(flow[2]))
        flow[1].append(ts)
    found = {}
    for ends, stamps, stream in flows.values():
        for match in pattern.finditer(bytes(stream)):
            n = int(match.group(1))
            ts = stamps[bisect.bisect_left(ends, match.end())]
            if n not in found or ts < found[n][0]:
                found[n] = (ts, match)
    return found


def hops_follower(url, token, deployment, measure_from, stop_at, nice, results):
    """The hops' client, in a process of its own: one Follower that also keeps each line's arrival."""
    own_priority(nice)
    arrivals = {}

    class Recording(Follower):
        def take(self, data, arrived_ns):
            n, t = stamp(data["message"])
            if t >= self.measure_from_ns:
                arrivals[n] = (t, arrived_ns)
            return super().take(data, arrived_ns)

    asyncio.run(Recording(url, token, deployment, measure_from, stop_at).run())
    results.put(arrivals)


def bench_hops(args):
    """One deployment at one rate, one WebSocket follower (no anchor), tcpdump on lo: for every line measured, the
    time at each hop, on one clock (CLOCK_MONOTONIC; capture and agent times are CLOCK_REALTIME, shifted by the
    offset measured here):
      write   log_app.py's write(2) (its t=)
      ring    the agent read it into its ring (the line's timestamp in the /v1/logs answer)
      answer  the /v1/logs answer carrying it left the agent (captured)
      frame   the log_update frame carrying it left the controller (captured)
      client  the Python client parsed the frame."""
    import shutil
    import subprocess as sub
    if not shutil.which("tcpdump"):
        sys.exit("hops: tcpdump is needed (apt-get install tcpdump)")
    rate = int(args.rates.split(",")[-1])
    controller = Controller(args.bin_dir).start()
    capture = tempfile.mktemp(prefix="coderunner-hops-", suffix=".pcap")
    try:
        user = Api(controller.base).register_and_login("hops@example.com")
        project = user.project("hops")
        warmup, measure = 3, args.duration
        count = int(rate * (warmup + measure + 2))
        deployment = user.deployment(project, f"hops-{rate}", app_command("--rate", rate, "--plain", "--count", count))
        user.scale(deployment, 1)
        user.wait_running(deployment, 1)
        raise_priority(controller, args.nice)
        dump = sub.Popen(["tcpdump", "-i", "lo", "-s", "0", "-B", "65536", "--time-stamp-precision=nano", "-w", capture,
                          "tcp"], stdout=sub.DEVNULL, stderr=sub.PIPE, start_new_session=True)
        if args.nice is not None:
            with open(f"/proc/{dump.pid}/autogroup", "w") as group:
                group.write(str(args.nice))  # a capture that falls behind drops packets
        time.sleep(1)
        offset = min(time.time_ns() - time.monotonic_ns() for _ in range(50))
        measure_from = time.monotonic_ns() + warmup * 1_000_000_000
        stop_at = time.monotonic() + warmup + measure + 5
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        client = ctx.Process(target=hops_follower, args=(controller.ws_url, user.token, deployment, measure_from, stop_at,
                                                         args.nice, queue))
        cpu_before, started = controller.cpu_seconds(), time.monotonic()
        client.start()
        arrivals = queue.get(timeout=stop_at - time.monotonic() + 60)
        client.join(10)
        cpu = (controller.cpu_seconds() - cpu_before) / (time.monotonic() - started)
        load = os.getloadavg()[0]
        dump.terminate()
        _, err = dump.communicate(timeout=20)
        user.scale(deployment, 0)
    finally:
        controller.stop()
    packets = read_pcap(capture)
    os.unlink(capture)
    answers = stream_stamps(packets, re.compile(rb'n=(\d+) t=\d+[^"]*","timestamp":([0-9.e+]+)'))
    # The agent's answers carry "text", the controller's frames "message".
    frames = stream_stamps(packets, re.compile(rb'"message":"[^"]*n=(\d+) t=\d+'))
    hops = {"write→ring": [], "ring→answer": [], "answer→frame": [], "frame→client": [], "write→client": []}
    missing = 0
    for n, (t, arrived) in arrivals.items():
        if n not in answers or n not in frames:
            missing += 1
            continue
        ring = int(float(answers[n][1].group(2)) * 1e9) - offset
        answer = answers[n][0] - offset
        frame = frames[n][0] - offset
        for name, value in (("write→ring", ring - t), ("ring→answer", answer - ring), ("answer→frame", frame - answer),
                            ("frame→client", arrived - frame), ("write→client", arrived - t)):
            hops[name].append(value / 1e6)
    print(f"\n{rate} lines/s, {len(arrivals)} lines measured ({missing} not found in the capture), controller CPU "
          f"{100 * cpu:.0f}% of a core, load average {load:.1f}; {err.decode().strip().splitlines()[-1] if err else ''}")
    print(f"{'hop':14} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}")
    for name, values in hops.items():
        print(f"{name:14} {ms(percentile(values, 50)):>8} {ms(percentile(values, 90)):>8} {ms(percentile(values, 99)):>8} "
              f"{ms(max(values) if values else float('nan')):>8}")


# ---- the client alone, against a synthetic sender

def synthetic_sender(listener, rate, seconds, batch_ms, frame_writes, nice=None):
    """A minimal WebSocket server for one client: the RFC 6455 handshake, then `log_update` frames shaped as the
    controller's, `rate` a second for `seconds`, each line stamped (as log_app.py stamps its) with the
    CLOCK_MONOTONIC time just before the frame is written. Lines go out every `batch_ms` (the relay's pacing
    hands them over in such batches): all of a batch in one send, or with `frame_writes` one send per frame
    (one write and flush per frame, as the controller's writer does). Hand-rolled on purpose: the sender must cost
    next to nothing, so that what is measured is the client."""
    import base64
    import hashlib
    import socket as sockets
    own_priority(nice)
    conn, _ = listener.accept()
    conn.setsockopt(sockets.IPPROTO_TCP, sockets.TCP_NODELAY, 1)
    request = b""
    while b"\r\n\r\n" not in request:
        request += conn.recv(4096)
    key = re.search(rb"(?i)sec-websocket-key:\s*(\S+)", request).group(1)
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                 b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")
    conn.setblocking(True)

    def frame(n):
        t = time.monotonic_ns()
        payload = ('{"data":{"deploymentId":"synthetic","instanceId":"local-1","level":"info","message":"INFO n=%d '
                   't=%d want=info/stdout ready","seq":%d,"stream":"stdout","timestamp":"2026-12-02T12:00:00.000Z"},'
                   '"event":"log_update"}' % (n, t, n + 1)).encode()
        size = len(payload)
        header = bytes([0x81, size]) if size < 126 else bytes([0x81, 126]) + size.to_bytes(2, "big")
        return header + payload

    start = time.monotonic_ns()
    total = int(rate * seconds)
    n = 0
    while n < total:
        due = min(total, int((time.monotonic_ns() - start) * rate / 1e9) + 1)
        if frame_writes:
            while n < due:
                conn.sendall(frame(n))
                n += 1
        elif n < due:
            conn.sendall(b"".join(frame(i) for i in range(n, due)))
            n = due
        time.sleep(batch_ms / 1000)
    time.sleep(3)
    conn.close()


def bench_client(args):
    """What the Python client (the Follower of every benchmark here) costs alone: it follows a synthetic sender
    that does nothing but write frames, so its latency is the client's own, without agent or controller."""
    import socket as sockets
    rows = []
    for rate in [int(r) for r in args.rates.split(",")]:
        for frame_writes in (False, True):
            listener = sockets.socket()
            listener.bind(("127.0.0.1", 0))
            listener.listen(1)
            url = f"ws://127.0.0.1:{listener.getsockname()[1]}/api/ws"
            warmup, measure = 2, args.duration
            ctx = multiprocessing.get_context("fork")
            sender = ctx.Process(target=synthetic_sender, args=(listener, rate, warmup + measure + 1, args.batch_ms,
                                                                frame_writes, args.nice))
            sender.start()
            now = time.monotonic()
            measure_from = time.monotonic_ns() + warmup * 1_000_000_000
            stop_at = now + warmup + measure + 3
            workers, results = run_followers([("synthetic", "synthetic")], url, measure_from, stop_at, 1, args.nice)
            summaries = collect(workers, results, stop_at)
            sender.join(10)
            listener.close()
            lat = summaries[0]["latencies"]
            cpu = 100 * summaries[0].get("client_cpu_s", 0) / (time.monotonic() - now)
            rows.append((rate, "one send per frame" if frame_writes else f"one send per {args.batch_ms} ms batch",
                         len(lat), percentile(lat, 50), percentile(lat, 99), max(lat) if lat else float("nan"),
                         lost_lines(summaries, None), cpu, os.getloadavg()[0]))
    print(f"\n{'lines/s':>8} {'sender writes':30} {'lines':>7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'lost':>5} "
          f"{'client CPU %':>12} {'load':>5}")
    for row in rows:
        print(f"{row[0]:>8} {row[1]:30} {row[2]:>7} {ms(row[3]):>8} {ms(row[4]):>8} {ms(row[5]):>8} {row[6]:>5} "
              f"{row[7]:>12.0f} {row[8]:>5.1f}")
    for row in rows:
        print(f"RESULT ws-client-alone rate={row[0]}/s writes=\"{row[1]}\" p50={ms(row[3])}ms p99={ms(row[4])}ms "
              f"lost={row[6]} client_cpu={row[7]:.0f}% load={row[8]:.1f}")


# ---- fan-out

def bench_fanout(args):
    # Ten users register and log in from 127.0.0.1: more than the default 10 attempts a minute per address.
    controller = Controller(args.bin_dir, extra=["--auth-rate-limit", "1000"]).start()
    try:
        base = Api(controller.base)
        jobs, deployments = [], []
        for i in range(args.deployments):
            user = base.register_and_login(f"fanout-{i}@example.com")
            deployment = user.deployment(user.project(f"fanout-{i}"), f"fanout-{i}", app_command("--rate", args.rate,
                                                                                                 "--plain"))
            user.scale(deployment, 1)
            deployments.append((user, deployment))
        for user, deployment in deployments:
            user.wait_running(deployment, 1)
        time.sleep(2)
        rss_before = controller.rss_kb()
        subscribers = [(user.token, deployment) for user, deployment in deployments] * (
            args.subscribers // args.deployments)
        setup = 20  # connecting 1,000 sockets; latency counts from 15 s on
        measure_from = time.monotonic_ns() + 15_000_000_000
        stop_at = time.monotonic() + setup + args.duration
        started = time.monotonic()
        cpu_before = controller.cpu_seconds()
        workers, results = run_followers(subscribers, controller.ws_url, measure_from, stop_at, 2)
        ramp = time.monotonic() - started
        peak = rss_before
        while time.monotonic() < stop_at:
            peak = max(peak, controller.rss_kb())
            time.sleep(1)
        rss_steady = controller.rss_kb()
        controller_cpu = (controller.cpu_seconds() - cpu_before) / (time.monotonic() - started)
        window = time.monotonic() - started
        summaries = collect(workers, results, stop_at)
        for user, deployment in deployments:
            user.scale(deployment, 0)
    finally:
        left = controller.stop()
    latencies = [v for s in summaries for v in s["latencies"]]
    connected = sum(1 for s in summaries if s["connect_ms"])
    lost = lost_lines(summaries, None)
    print(f"\n{'subscribers':>11} {'deployments':>11} {'lines/s each':>12} {'frames':>9} {'p50 ms':>7} {'p99 ms':>7} "
          f"{'max ms':>8} {'lost':>5} {'dropped':>7} {'RSS before':>10} {'RSS peak':>9} {'added MB':>8}")
    added = (peak - rss_before) / 1024
    print(f"{connected:>11} {args.deployments:>11} {args.rate:>12} {len(latencies):>9} {ms(percentile(latencies, 50)):>7} "
          f"{ms(percentile(latencies, 99)):>7} {ms(max(latencies) if latencies else float('nan')):>8} {lost:>5} "
          f"{sum(s['dropped'] for s in summaries):>7} {rss_before // 1024:>10} {peak // 1024:>9} {added:>8.1f}")
    print(f"RESULT ws-fanout subscribers={connected} added_rss={added:.1f}MB (steady {(rss_steady - rss_before) / 1024:.1f}) "
          f"p99={ms(percentile(latencies, 99))}ms lost={lost} disconnects={sum(s['disconnects'] for s in summaries)} "
          f"(goals: <= 150 MB added, p99 <= 100 ms); all {len(subscribers)} connected within {ramp:.1f}s of start")
    client_cpu = sum(s.get("client_cpu_s", 0) for s in summaries) / window
    print(f"CPU: controller {100 * controller_cpu:.0f}% of a core, the 2 client processes {100 * client_cpu:.0f}% "
          f"together; load average {os.getloadavg()[0]:.1f} (2 cores)")
    errors = [e for s in summaries for e in s["errors"]]
    if errors:
        print(f"  errors ({len(errors)}): {errors[:3]}")
    if left:
        print(f"agents left behind and killed: {left}")


# ---- stability under the load test

def bench_stability(args):
    sys.path.insert(0, HERE)
    import load_test
    settings = ["--auth-rate-limit", "100000", "--bcrypt-cost", "4"]
    controller = Controller(args.bin_dir, extra=settings).start()
    work = tempfile.mkdtemp(prefix="coderunner-stability-")
    try:
        base = Api(controller.base)
        followed = []
        for i in range(args.deployments):
            user = base.register_and_login(f"stable-{i}@example.com")
            deployment = user.deployment(user.project(f"stable-{i}"), f"stable-{i}", app_command("--rate", args.rate,
                                                                                                 "--plain"))
            user.scale(deployment, 1)
            followed.append((user, deployment))
        for user, deployment in followed:
            user.wait_running(deployment, 1)
        users_file, with_logs, with_delete, with_ws = load_test.prepare(controller, args.load_users, 0, work)
        stop_at = time.monotonic() + args.duration + 30
        measure_from = time.monotonic_ns() + 30_000_000_000
        jobs = [(user.token, deployment) for user, deployment in followed] * (args.connections // args.deployments)
        workers, results = run_followers(jobs, controller.ws_url, measure_from, stop_at, 2)
        time.sleep(10)
        print(f"== {len(jobs)} followers connected; Locust load for {args.duration}s")
        locust = load_test.run_locust(controller, users_file, work, args.load_users, 20, args.duration, 1, 3,
                                      with_logs, with_delete, with_ws)
        summaries = collect(workers, results, stop_at)
        for user, deployment in followed:
            user.scale(deployment, 0)
    finally:
        left = controller.stop()
    load_test.print_table(locust)
    stayed = sum(1 for s in summaries if s["disconnects"] == 0)
    latencies = [v for s in summaries for v in s["latencies"]]
    lost = lost_lines(summaries, None)
    reconnects = sum(s["disconnects"] for s in summaries)
    clean = sum(s["resumed_clean"] for s in summaries)
    print(f"\n{'connections':>11} {'stayed':>7} {'reconnects':>10} {'resumed clean':>13} {'resumed w/ gap':>14} "
          f"{'lost':>5} {'dropped':>7} {'dup skipped':>11} {'p99 ms':>7}")
    print(f"{len(summaries):>11} {stayed:>7} {reconnects:>10} {clean:>13} {sum(s['resumed_gap'] for s in summaries):>14} "
          f"{lost:>5} {sum(s['dropped'] for s in summaries):>7} {sum(s['duplicates'] for s in summaries):>11} "
          f"{ms(percentile(latencies, 99)):>7}")
    print(f"RESULT ws-stability connections={len(summaries)} stayed={100 * stayed / max(1, len(summaries)):.2f}% "
          f"reconnects={reconnects} lost={lost} (goals: >= 99.9% stay, every reconnect resumes without a lost line) "
          f"under load p95={locust['p95']:.0f}ms errors={locust['errors']}")
    errors = [e for s in summaries for e in s["errors"]]
    if errors:
        print(f"  follower errors ({len(errors)}): {errors[:3]}")
    print(f"benchmark settings: {' '.join(settings)} (see scripts/bench/load-test)")
    if left:
        print(f"agents left behind and killed: {left}")


parser = argparse.ArgumentParser()
parser.add_argument("mode", choices=["latency", "hops", "client", "fanout", "stability"])
parser.add_argument("bin_dir")
parser.add_argument("--duration", type=int, default=None)
parser.add_argument("--rates", default="100,5000")
parser.add_argument("--subscribers", type=int, default=1000)
parser.add_argument("--connections", type=int, default=500)
parser.add_argument("--deployments", type=int, default=None)
parser.add_argument("--rate", type=int, default=None)
parser.add_argument("--load-users", type=int, default=200)
parser.add_argument("--batch-ms", type=float, default=10)
parser.add_argument("--nice", type=int, default=None)
args = parser.parse_args()
if args.mode == "latency":
    args.duration = args.duration or 20
    bench_latency(args)
elif args.mode == "hops":
    args.duration = args.duration or 10
    bench_hops(args)
elif args.mode == "client":
    args.duration = args.duration or 10
    bench_client(args)
elif args.mode == "fanout":
    args.duration, args.deployments, args.rate = args.duration or 30, args.deployments or 10, args.rate or 10
    bench_fanout(args)
else:
    args.duration, args.deployments, args.rate = args.duration or 600, args.deployments or 5, args.rate or 2
    bench_stability(args)
