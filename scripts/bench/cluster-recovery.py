#!/usr/bin/env python3
"""The /proc side of scripts/bench/cluster-recovery: counts one deployment's local agents per node, loses a node
(SIGKILL to its controller and, for a lost host, its agents and their apps) and times the others' recovery, and
watches a returning node until the total is stable. Every wait is bounded; it polls /proc every 20 ms.

An agent is a process whose argv[0] ends with coderunner-agent, whose --deployment is DEPLOYMENT and whose --instance
is local-N:NODE; its app is a process whose environment has BENCH_DEPLOYMENT=DEPLOYMENT (the bench's config variable)
and is no agent.

  counts DEPLOYMENT                                  node=count ... total=N (and apps=N orphans=N)
  kill DEPLOYMENT                                    kill -9 every agent and app of DEPLOYMENT (the EXIT trap's)
  lose DEPLOYMENT NODE CONTROLLER_PID HOST TARGET TIMEOUT HOLD PLACEMENTS
      kill -9 the controller (HOST 1: and NODE's agents and their apps, at once), then time until the other nodes
      run TARGET agents (and then their apps); then watch until HOLD s after the kill: the highest total, what runs.
      PLACEMENTS: lines "EPOCH SLOT=NODE ..." (psql's \watch of the placement rows): when no slot names NODE any more
  settle DEPLOYMENT MARKS TARGET STABLE TIMEOUT
      writes MARKS/watching after its first scan (the node may then be started); from then until the file MARKS/up
      exists and the total has been TARGET for STABLE seconds: the highest total seen, and when the total last became
      TARGET and the node answered, after MARKS/spawned (`date +%s.%N`, written just before the node is spawned)
"""
import os
import signal
import sys
import time

POLL = 0.02


def argv_of(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]] if raw else None


def ppid_of(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            text = f.read()
    except OSError:
        return None
    # "PID (COMM) STATE PPID ...": COMM may hold spaces and parentheses.
    fields = text[text.rindex(")") + 2:].split()
    return None if fields[0] == "Z" else int(fields[1])


def option(argv, name):
    try:
        i = argv.index(name)
    except ValueError:
        return None
    return argv[i + 1] if i + 1 < len(argv) else None


def scan(deployment):
    """(agents, apps): agents {node: [pid]}, apps {pid: ppid} of DEPLOYMENT (zombies excluded)."""
    agents, apps = {}, {}
    marker = f"BENCH_DEPLOYMENT={deployment}".encode()
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == me:
            continue
        pid = int(entry)
        argv = argv_of(pid)
        if not argv:
            continue
        if argv[0].endswith("coderunner-agent"):
            instance = option(argv, "--instance")
            if option(argv, "--deployment") == deployment and instance and ":" in instance:
                agents.setdefault(instance.split(":", 1)[1], []).append(pid)
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if marker in environ:
            parent = ppid_of(pid)
            if parent is not None:
                apps[pid] = parent
    return agents, apps


def total(agents):
    return sum(len(p) for p in agents.values())


def describe(agents, apps):
    agent_pids = {p for pids in agents.values() for p in pids}
    orphans = sum(1 for parent in apps.values() if parent not in agent_pids)
    nodes = " ".join(f"{n}={len(agents[n])}" for n in sorted(agents)) or "none"
    return f"{nodes} total={total(agents)} apps={len(apps)} orphan-apps={orphans}"


def running_apps(agents, apps, nodes):
    """How many agents on NODES have their app running (an app whose parent is the agent)."""
    parents = set(apps.values())
    return sum(1 for n in nodes for p in agents.get(n, []) if p in parents)


def counts(deployment):
    print(describe(*scan(deployment)))


def moved_at(placements, node, since):
    """The first sample at or after SINCE (time.time()) in which no slot is placed on NODE, or None."""
    try:
        with open(placements) as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        try:
            at = float(fields[0])
        except (IndexError, ValueError):
            continue
        if at >= since and fields[1:] and all(not f.endswith("=" + node) for f in fields[1:]):
            return at
    return None


def lose(deployment, node, controller, host, target, timeout, hold, placements):
    agents, apps = scan(deployment)
    mine = set(agents.get(node, []))
    victims = [controller]
    if host:
        victims += sorted(mine) + sorted(p for p, parent in apps.items() if parent in mine)
    before = describe(agents, apps)
    t0, wall = time.monotonic(), time.time()
    for pid in victims:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    what = "host" if host else "controller"
    seen_agents = seen_apps = None
    highest = 0
    deadline = t0 + timeout
    while time.monotonic() < deadline:
        agents, apps = scan(deployment)
        now = time.monotonic() - t0
        others = [n for n in agents if n != node]
        on_others = sum(len(agents[n]) for n in others)
        highest = max(highest, total(agents))
        if seen_agents is None and on_others >= target and (node not in agents or not host):
            seen_agents = now
        if seen_agents is not None and running_apps(agents, apps, others) >= target:
            seen_apps = now
            break
        time.sleep(POLL)
    if seen_apps is None:
        print(f"FAILED {node} lost ({what}, {len(mine)} agent(s)): the others do not run {target} agents with their "
              f"apps within {timeout} s; now: {describe(*scan(deployment))}; before: {before}")
        return 1
    # Then, until HOLD seconds after the kill, what runs (with the controller only lost, its agents as well).
    while time.monotonic() < t0 + hold:
        agents, apps = scan(deployment)
        highest = max(highest, total(agents))
        time.sleep(POLL)
    moved = moved_at(placements, node, wall)
    moved = f"{(moved - wall) * 1000:.0f}" if moved is not None else "unknown"
    print(f"RESULT lost {what} node={node} agents-lost={len(mine)} moved_ms={moved} agents_ms={seen_agents * 1000:.0f} "
          f"apps_ms={seen_apps * 1000:.0f} highest={highest} after {max(hold, seen_apps):.1f} s: {describe(agents, apps)}")
    return 0


def settle(deployment, marks, target, stable, timeout):
    up_file = os.path.join(marks, "up")
    watching = os.path.join(marks, "watching")
    start = time.time()
    highest = 0
    since = None        # time.time() when the total last became TARGET
    departed = False    # whether the total was ever other than TARGET
    up_at = None
    while time.time() - start < timeout:
        agents, apps = scan(deployment)
        now = time.time()
        n = total(agents)
        highest = max(highest, n)
        if n == target:
            since = since or now
        else:
            since, departed = None, True
        if not os.path.exists(watching):
            with open(watching, "w") as f:  # the first scan is in: the node may be started
                f.write(f"{n}\n")
        if up_at is None and os.path.exists(up_file):
            up_at = now
        if up_at is not None and since is not None and now - since >= stable:
            with open(os.path.join(marks, "spawned")) as f:
                spawned_at = float(f.read())
            back = f"back_to_target_ms={(since - spawned_at) * 1000:.0f}" if departed else f"stayed={target}"
            print(f"RESULT settled highest={highest} {back} up_ms={(up_at - spawned_at) * 1000:.0f} "
                  f"now: {describe(agents, apps)}")
            return 0
        time.sleep(POLL)
    print(f"FAILED the total is not {target} for {stable} s within {timeout} s (up: {up_at is not None}, "
          f"highest {highest}); now: {describe(*scan(deployment))}")
    return 1


def kill_all(deployment):
    for _ in range(5):  # an agent killed in the middle of starting its app: look again
        agents, apps = scan(deployment)
        pids = [p for ps in agents.values() for p in ps] + list(apps)
        if not pids:
            return 0
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    print(f"still running after 5 rounds of kill -9: {describe(*scan(deployment))}", file=sys.stderr)
    return 1


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "kill":
        return kill_all(args[0])
    if cmd == "counts":
        counts(args[0])
        return 0
    if cmd == "lose":
        return lose(args[0], args[1], int(args[2]), args[3] == "1", int(args[4]), float(args[5]), float(args[6]), args[7])
    if cmd == "settle":
        return settle(args[0], args[1], int(args[2]), float(args[3]), float(args[4]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
