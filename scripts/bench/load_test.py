#!/usr/bin/env python3
"""Driver of scripts/bench/load-test: starts a controller on loopback, creates the users, runs Locust
headless on scripts/bench/locustfile.py, and prints a table of the figures against the goals.
ws_bench.py's stability run reuses prepare() and run_locust().

usage: load_test.py BIN_DIR [--duration SECONDS] [--users N] [--spawn-rate N] [--bcrypt-cost N] [--running N]
                    [--wait-min S] [--wait-max S]
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "websocket"))
from harness import Api, Controller, app_command  # noqa: E402

GOAL_P95_MS = 200


def prepare(controller, users, running, work):
    """Registers `users` accounts, each with a project and a deployment of log_app.py at 10 lines/s, the first
    `running` of them scaled to one instance. Returns (users file, logs route served, lifecycle served)."""
    api = Api(controller.base)
    doc = urllib.request.urlopen(controller.base + "/api/openapi.yaml", timeout=10).read().decode()
    with_logs = "/api/deployments/{id}/logs" in doc
    with_delete = "/api/deployments/{id}/stop" in doc  # the lifecycle (stop, start, DELETE) came together
    with_ws = websocket_served(controller)
    print(f"== preparing {users} users (each: a project and a deployment; {running} of them running)")
    accounts = []
    for i in range(users):
        email, password = f"load-{i}@example.com", f"load-password-{i}"
        user = api.register_and_login(email, password)
        project = user.project(f"load-{i}")
        deployment = user.deployment(project, f"load-{i}", app_command("--rate", 10))
        if i < running:
            user.scale(deployment, 1)
        accounts.append({"email": email, "password": password, "projectId": project, "deploymentId": deployment})
    users_file = os.path.join(work, "users.json")
    json.dump(accounts, open(users_file, "w"))
    return users_file, with_logs, with_delete, with_ws


def websocket_served(controller):
    """GET /api/ws without the upgrade headers answers 426 where the WebSocket exists, 404 where it does not."""
    try:
        urllib.request.urlopen(controller.base + "/api/ws", timeout=10)
    except urllib.error.HTTPError as error:
        return error.code == 426
    return False


def run_locust(controller, users_file, work, users, spawn_rate, duration, wait_min, wait_max, with_logs,
               with_delete, with_ws):
    """Runs Locust headless; returns its figures: rows (the stats CSV), failures, p95, errors, and more."""
    env = dict(os.environ, LOAD_USERS=users_file, LOAD_WAIT_MIN=str(wait_min), LOAD_WAIT_MAX=str(wait_max),
               LOAD_WITH_LOGS="1" if with_logs else "0", LOAD_WITH_DELETE="1" if with_delete else "0",
               LOAD_WITH_WS="1" if with_ws else "0")
    prefix = os.path.join(work, "locust")
    argv = [sys.executable, "-m", "locust", "-f", os.path.join(HERE, "locustfile.py"), "--headless",
            "-u", str(users), "-r", str(spawn_rate), "-t", f"{duration}s", "--host", controller.base,
            "--csv", prefix, "--only-summary", "--stop-timeout", "30", "--loglevel", "WARNING"]
    print(f"== locust: {users} users, spawn {spawn_rate}/s, {duration}s, think {wait_min}-{wait_max}s between "
          f"journeys; logs step: {with_logs}; DELETE step: {with_delete}; WebSocket journey: {with_ws}")
    rss_before, cpu_before = controller.rss_kb(), controller.cpu_seconds()
    started = time.monotonic()
    output = os.path.join(work, "locust.out")
    with open(output, "w") as out:
        run = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=duration + 180)
    rows = list(csv.DictReader(open(prefix + "_stats.csv")))
    total = next(row for row in rows if row["Name"] == "Aggregated")
    return {"rows": rows, "failures": list(csv.DictReader(open(prefix + "_failures.csv"))),
            "p95": float(total["95%"]), "errors": int(total["Failure Count"]), "total": total,
            "elapsed": time.monotonic() - started, "exit": run.returncode, "users": users, "duration": duration,
            "rss_before": rss_before, "rss_after": controller.rss_kb(),
            "controller_cpu": (controller.cpu_seconds() - cpu_before) / (time.monotonic() - started),
            "load_average": os.getloadavg()[0],
            "cpu_warnings": sum(1 for line in open(output) if "CPU usage" in line), "work": work}


def print_table(result):
    print(f"\n{'request':52} {'count':>7} {'fail':>5} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>7}  (ms)")
    for row in result["rows"]:
        label = f"{row['Type']} {row['Name']}" if row["Type"] else "All"
        print(f"{label[:52]:52} {row['Request Count']:>7} {row['Failure Count']:>5} {row['50%']:>6} {row['95%']:>6} "
              f"{row['99%']:>6} {float(row['Max Response Time']):>7.0f}")
    for failure in result["failures"][:10]:
        print(f"  failure: {failure['Method']} {failure['Name']}: {failure['Error'][:160]} x{failure['Occurrences']}")
    total = result["total"]
    met = result["p95"] <= GOAL_P95_MS and result["errors"] == 0
    print(f"\nRESULT load-test users={result['users']} duration={result['duration']}s "
          f"requests={total['Request Count']} rps={float(total['Requests/s']):.0f} p50={total['50%']}ms "
          f"p95={result['p95']:.0f}ms p99={total['99%']}ms errors={result['errors']} "
          f"(goals: p95 <= {GOAL_P95_MS} ms, 0 errors) -> {'MET' if met else 'NOT MET'}")
    if result["cpu_warnings"]:
        print(f"warning: Locust's own CPU was saturated ({result['cpu_warnings']} warnings): client-side time is "
              f"in the figures")
    print(f"controller CPU {100 * result['controller_cpu']:.0f}% of a core on average; machine load average "
          f"{result['load_average']:.1f} at the end (2 cores)")
    print(f"controller RSS {result['rss_before'] // 1024} MB before, {result['rss_after'] // 1024} MB after; "
          f"locust ran {result['elapsed']:.0f}s (exit {result['exit']}); output in {result['work']}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("bin_dir")
    parser.add_argument("--duration", type=int, default=300)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--spawn-rate", type=int, default=20)
    parser.add_argument("--bcrypt-cost", type=int, default=4)
    parser.add_argument("--running", type=int, default=4, help="users whose deployment runs an app writing lines")
    parser.add_argument("--wait-min", type=float, default=1)
    parser.add_argument("--wait-max", type=float, default=3)
    args = parser.parse_args()
    # Benchmark settings, printed with the results: every simulated user logs in from 127.0.0.1, which the
    # per-address login limit (10/min by default) would refuse after ten; and each journey logs in, so bcrypt at
    # the default cost 10 (tens of ms of CPU per login on this 2-core machine) would measure bcrypt, not the API.
    settings = ["--auth-rate-limit", "100000", "--bcrypt-cost", str(args.bcrypt_cost)]
    controller = Controller(args.bin_dir, extra=settings).start()
    work = tempfile.mkdtemp(prefix="coderunner-load-")
    try:
        users_file, with_logs, with_delete, with_ws = prepare(controller, args.users, args.running, work)
        result = run_locust(controller, users_file, work, args.users, args.spawn_rate, args.duration, args.wait_min,
                            args.wait_max, with_logs, with_delete, with_ws)
    finally:
        left = controller.stop()
    print_table(result)
    print(f"benchmark settings: {' '.join(settings)} (per-address login limit raised, bcrypt cost lowered: "
          f"see scripts/bench/load-test)")
    if left:
        print(f"agents left behind and killed: {left}")


if __name__ == "__main__":
    main()
