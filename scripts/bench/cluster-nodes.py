#!/usr/bin/env python3
"""The client side of scripts/bench/cluster-nodes: several active controllers on one PostgreSQL (issue 16).
Loopback only; every loop is bounded in count and time. Prints one RESULT line per figure (and "ready" for hold).

  wake     PORT_A PORT_B AGENT_TOKEN SESSION CONFIG_ID ROUNDS [INSTANCE]
           A long-poll held on node A (index = the current version), a variable PUT through node B, one round at
           a time on persistent connections (http.client): the time from just before the PUT is sent to the
           long-poll's answer, p50/p99/max. With INSTANCE the long-poll says which instance asks, as an agent does
           (`instance=`): node A then waits for the writing node's rollout decision too. With CODERUNNER_BENCH_PSQL
           (a JSON list: a psql command line that reads SQL from -c), the time from each PUT's COMMIT (PostgreSQL's
           commit timestamp of its audit entry, track_commit_timestamp = on; the same host clock) to the answer.
  hold     PORTS(comma) TOKENS(comma) PUT_PORT SESSION CONFIG_ID COUNT
           COUNT long-polls spread over the ports (raw asyncio sockets, connection i on port i % nodes, token
           (i // nodes) % tokens); prints "ready ..." once every one is sent and none answered early, then waits
           for a line on stdin, PUTs a variable through PUT_PORT and times every answer from just before the PUT.
  failover PID OLD_LEADER SURVIVOR_PORT SESSION TIMEOUT_S
           SIGKILLs PID, then polls GET /api/cluster on the survivor every 10 ms until it names a leader other
           than OLD_LEADER; prints the time from the kill.
"""
import asyncio
import http.client
import json
import os
import select
import signal
import subprocess
import sys
import time

HOST = "127.0.0.1"


def percentile(sorted_values, p):
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[int(rank) - 1]


def data_of(body):
    return json.loads(body)["data"]


def put_body(value):
    return json.dumps({"value": value, "variableType": "string"})


# ---------------------------------------------------------------------------------------------------------- wake

def commit_stamps(psql, config_id, count):
    """The wall-clock commit times of the config's last COUNT variable writes (the rounds' PUTs: each writes its audit
    entry in its own transaction), oldest first."""
    sql = ("SELECT extract(epoch FROM pg_xact_commit_timestamp(xmin)) FROM config_audit_logs "
           f"WHERE config_id = '{config_id}' AND resource_type = 'variable' ORDER BY sequence DESC LIMIT {count}")
    out = subprocess.run(psql + ["-c", sql], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"psql failed: {out.stderr.strip()}")
    return [float(line) for line in reversed(out.stdout.split())]


def wake(port_a, port_b, agent, session, config_id, rounds, instance=None):
    a = http.client.HTTPConnection(HOST, port_a, timeout=40)
    b = http.client.HTTPConnection(HOST, port_b, timeout=40)
    agent_headers = {"Authorization": f"Bearer {agent}"}
    put_headers = {"Authorization": f"Bearer {session}", "Content-Type": "application/json"}
    a.request("GET", "/api/agent/v1/config", headers=agent_headers)
    answer = a.getresponse()
    version = data_of(answer.read())["version"]
    if answer.status != 200:
        sys.exit(f"agent-config GET on node A answered {answer.status}")
    wakes, puts, failures, woken_at = [], [], [], []
    who = f"&instance={instance}" if instance else ""
    started = time.monotonic()
    for round_ in range(rounds):
        if time.monotonic() - started > 30 + rounds * 2:
            failures.append("out of time")
            break
        a.request("GET", f"/api/agent/v1/config?index={version}&wait=30s{who}", headers=agent_headers)
        # Give node A time to park the query: a PUT landing first would answer it at once (a shorter figure).
        time.sleep(0.02)
        ready, _, _ = select.select([a.sock], [], [], 0)
        if ready:
            early = a.getresponse()
            early.read()
            failures.append(f"round {round_}: the long-poll answered before the PUT ({early.status})")
            break
        sent = time.perf_counter()
        b.request("PUT", f"/api/config/environments/{config_id}/variables/BENCH_WAKE", body=put_body(f"round-{round_}"),
                  headers=put_headers)
        pending = {a.sock: "wake", b.sock: "put"}
        answered = {}
        deadline = time.monotonic() + 35
        while pending and time.monotonic() < deadline:
            readable, _, _ = select.select(list(pending), [], [], max(0.0, deadline - time.monotonic()))
            for sock in readable:
                which = pending.pop(sock)
                conn = a if which == "wake" else b
                response = conn.getresponse()
                body = response.read()
                answered[which] = (time.perf_counter() - sent, response.status, body)
                if which == "wake":
                    woken_at.append(time.time())
        if pending:
            failures.append(f"round {round_}: no answer within 35 s from {sorted(pending.values())}")
            break
        wake_s, wake_status, wake_body = answered["wake"]
        put_s, put_status, _ = answered["put"]
        if put_status != 200 or wake_status != 200:
            failures.append(f"round {round_}: PUT {put_status}, long-poll {wake_status}")
            break
        new_version = data_of(wake_body)["version"]
        if new_version <= version:
            failures.append(f"round {round_}: the long-poll answered version {new_version}, not above {version} "
                            f"(after {wake_s * 1000:.0f} ms: its wait ran out, the wake never came)")
            break
        version = new_version
        wakes.append(wake_s * 1000)
        puts.append(put_s * 1000)
    a.close()
    b.close()
    wakes.sort()
    puts.sort()
    from_commit = ""
    psql = os.environ.get("CODERUNNER_BENCH_PSQL")
    if wakes and psql and not failures:
        stamps = commit_stamps(json.loads(psql), config_id, len(wakes))
        if len(stamps) != len(wakes):
            failures.append(f"{len(stamps)} commit timestamps for {len(wakes)} rounds")
        else:
            after = sorted((w - c) * 1000 for w, c in zip(woken_at, stamps))
            from_commit = (f"; from the PUT's COMMIT to the answer p50={percentile(after, 50):.1f}ms "
                           f"p99={percentile(after, 99):.1f}ms max={after[-1]:.1f}ms")
    for failure in failures:
        print(f"FAILED {failure}", flush=True)
    if wakes:
        print(f"RESULT cross-node-wake rounds={len(wakes)}/{rounds} p50={percentile(wakes, 50):.1f}ms "
              f"p99={percentile(wakes, 99):.1f}ms max={wakes[-1]:.1f}ms (goal: p99 <= 50 ms); "
              f"the PUT's own answer p50={percentile(puts, 50):.1f}ms p99={percentile(puts, 99):.1f}ms{from_commit}", flush=True)
    sys.exit(1 if failures else 0)


# ---------------------------------------------------------------------------------------------------------- hold

async def request(port, raw, timeout):
    """One request on its own connection (Connection: close); returns (status, body)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    try:
        writer.write(raw)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(-1), timeout)
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def get_raw(path, token):
    return (f"GET {path} HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n"
            f"Connection: close\r\n\r\n").encode()


async def hold(ports, tokens, put_port, session, config_id, count):
    versions = {}
    for token in tokens:
        status, body = await request(ports[0], get_raw("/api/agent/v1/config", token), 30)
        if status != 200:
            sys.exit(f"agent-config GET answered {status}: {body[:200]!r}")
        versions[token] = data_of(body)["version"]
    results, sent, failed = {}, [0], []

    async def one(i):
        port = ports[i % len(ports)]
        token = tokens[(i // len(ports)) % len(tokens)]
        raw = get_raw(f"/api/agent/v1/config?index={versions[token]}&wait=5m", token)
        for attempt in range(20):
            try:
                reader, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), 30)
                break
            except (OSError, asyncio.TimeoutError):
                await asyncio.sleep(0.05 * (attempt + 1))
        else:
            failed.append((i, "connect failed"))
            return
        try:
            writer.write(raw)
            await writer.drain()
            sent[0] += 1
            data = await asyncio.wait_for(reader.read(-1), 330)
            # Parsed after the run: the client's own work must not delay the arrival times it records.
            results[i] = (time.perf_counter(), port, token, data)
        except (OSError, asyncio.TimeoutError) as error:
            failed.append((i, repr(error)))
        finally:
            writer.close()

    tasks = []
    for start in range(0, count, 250):
        tasks += [asyncio.create_task(one(i)) for i in range(start, min(start + 250, count))]
        await asyncio.sleep(0.05)
    deadline = time.monotonic() + 180
    while sent[0] + len(failed) < count and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    await asyncio.sleep(2)  # the last requests reach their node and park
    print(f"ready sent={sent[0]}/{count} answered_early={len(results)} failed={len(failed)} "
          f"(spread over {len(ports)} nodes, {len(tokens)} agent tokens)", flush=True)
    loop = asyncio.get_running_loop()
    line = await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), 600)
    if not line:
        return
    early = set(results)
    body = put_body(f"held-{time.time_ns()}").encode()
    put = (f"PUT /api/config/environments/{config_id}/variables/BENCH_HOLD HTTP/1.1\r\nHost: {HOST}\r\n"
           f"Authorization: Bearer {session}\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
           f"Connection: close\r\n\r\n").encode() + body
    changed = time.perf_counter()
    status, answer = await request(put_port, put, 30)
    put_ms = (time.perf_counter() - changed) * 1000
    done, pending = await asyncio.wait(tasks, timeout=60)
    for task in pending:
        task.cancel()
    arrivals, by_port, stale = [], {}, 0
    for i, (arrived, port, token, data) in results.items():
        if i in early:
            continue
        head, _, reply = data.partition(b"\r\n\r\n")
        ok = head.startswith(b"HTTP/1.1 200")
        if ok:
            try:
                ok = data_of(reply)["version"] > versions[token]
            except (ValueError, KeyError):
                ok = False
        if not ok:
            stale += 1
            continue
        arrivals.append((arrived - changed) * 1000)
        by_port.setdefault(port, []).append((arrived - changed) * 1000)
    arrivals.sort()
    woken = len(arrivals)
    spread = " ".join(f"{p}:{len(by_port.get(p, []))}" for p in ports)
    print(f"RESULT longpoll-wake held={count} woken={woken} not-woken={count - woken} (stale or error answers {stale}, "
          f"early {len(early)}, failed {len(failed)}, still waiting {len(pending)}) per node port {spread}; "
          f"PUT through port {put_port} answered {status} in {put_ms:.0f}ms", flush=True)
    if arrivals:
        print(f"RESULT longpoll-wake-times first={arrivals[0]:.0f}ms p50={percentile(arrivals, 50):.0f}ms "
              f"p99={percentile(arrivals, 99):.0f}ms all-answered={arrivals[-1]:.0f}ms (from just before the PUT)",
              flush=True)
        for p in ports:
            times = sorted(by_port.get(p, []))
            if times:
                print(f"  node port {p}{' (the PUT went here)' if p == put_port else ''}: {len(times)} answered, "
                      f"first {times[0]:.0f}ms, p50 {percentile(times, 50):.0f}ms, last {times[-1]:.0f}ms", flush=True)
    for i, reason in failed[:3]:
        print(f"  failure: connection {i}: {reason}", flush=True)
    if woken != count:
        sys.exit(1)


# ------------------------------------------------------------------------------------------------------ failover

def failover(pid, old, port, session, timeout_s):
    headers = {"Authorization": f"Bearer {session}"}
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    conn.request("GET", "/api/cluster", headers=headers)  # connect before the clock starts
    response = conn.getresponse()
    before = data_of(response.read())
    if response.status != 200 or before["leader"] != old:
        sys.exit(f"before the kill, node port {port} names leader {before.get('leader')!r}, not {old!r}")
    killed = time.perf_counter()
    os.kill(pid, signal.SIGKILL)
    polls, seen_none, cluster = 0, False, None
    while time.perf_counter() - killed < timeout_s:
        polls += 1
        try:
            conn.request("GET", "/api/cluster", headers=headers)
            response = conn.getresponse()
            cluster = data_of(response.read())
        except (OSError, http.client.HTTPException, ValueError) as error:
            conn.close()
            conn = http.client.HTTPConnection(HOST, port, timeout=2)
            print(f"  poll error {error!r}", flush=True)
            time.sleep(0.01)
            continue
        leader = cluster.get("leader")
        if leader is None:
            seen_none = True
        elif leader != old:
            ms = (time.perf_counter() - killed) * 1000
            print(f"RESULT failover old={old} new={leader} epoch={cluster.get('epoch')} ms={ms:.0f} polls={polls} "
                  f"leaderless_seen={'yes' if seen_none else 'no'}", flush=True)
            return
        time.sleep(0.01)
    print(f"FAILED no other leader named within {timeout_s} s of killing {old} (last answer: {cluster!r})", flush=True)
    sys.exit(1)


def main():
    command, args = sys.argv[1], sys.argv[2:]
    if command == "wake":
        wake(int(args[0]), int(args[1]), args[2], args[3], args[4], int(args[5]), args[6] if len(args) > 6 else None)
    elif command == "hold":
        ports = [int(p) for p in args[0].split(",")]
        asyncio.run(hold(ports, args[1].split(","), int(args[2]), args[3], args[4], int(args[5])))
    elif command == "failover":
        failover(int(args[0]), args[1], int(args[2]), args[3], float(args[4]))
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
