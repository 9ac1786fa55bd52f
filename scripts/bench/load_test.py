#!/usr/bin/env python3
"""Driver of scripts/bench/load-test: starts a controller on loopback, creates the users, runs Locust
headless on scripts/bench/locustfile.py, and prints a table of the figures against the goals.

usage: load_test.py BIN_DIR --duration SECONDS --users N [--spawn-rate N] [--bcrypt-cost N] [--running N]
                    [--wait-min S --wait-max S]
"""
import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "websocket"))
from harness import Api, Controller, app_command  # noqa: E402

GOAL_P95_MS = 200

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
    api = Api(controller.base)
    doc = urllib.request.urlopen(controller.base + "/api/openapi.yaml", timeout=10).read().decode()
    with_logs = "/api/deployments/{id}/logs" in doc
    with_delete = "/api/deployments/{id}/stop" in doc  # the lifecycle (stop, start, DELETE) came together

    print(f"== preparing {args.users} users (each: a project and a deployment; {args.running} of them running)")
    accounts = []
    for i in range(args.users):
        email, password = f"load-{i}@example.com", f"load-password-{i}"
        user = api.register_and_login(email, password)
        project = user.project(f"load-{i}")
        deployment = user.deployment(project, f"load-{i}", app_command("--rate", 10))
        if i < args.running:
            user.scale(deployment, 1)
        accounts.append({"email": email, "password": password, "projectId": project, "deploymentId": deployment})
    users_file = os.path.join(work, "users.json")
    json.dump(accounts, open(users_file, "w"))
    rss_before = controller.rss_kb()

    env = dict(os.environ, LOAD_USERS=users_file, LOAD_WAIT_MIN=str(args.wait_min), LOAD_WAIT_MAX=str(args.wait_max),
               LOAD_WITH_LOGS="1" if with_logs else "0", LOAD_WITH_DELETE="1" if with_delete else "0")
    prefix = os.path.join(work, "locust")
    argv = [sys.executable, "-m", "locust", "-f", os.path.join(HERE, "locustfile.py"), "--headless",
            "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.duration}s", "--host", controller.base,
            "--csv", prefix, "--only-summary", "--stop-timeout", "30", "--loglevel", "WARNING"]
    print(f"== locust: {args.users} users, spawn {args.spawn_rate}/s, {args.duration}s, think {args.wait_min}-"
          f"{args.wait_max}s between journeys; logs step: {with_logs}; DELETE step: {with_delete}")
    started = time.monotonic()
    with open(os.path.join(work, "locust.out"), "w") as out:
        run = subprocess.run(argv, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=args.duration + 180)
    elapsed = time.monotonic() - started
    rss_after = controller.rss_kb()

    rows = list(csv.DictReader(open(prefix + "_stats.csv")))
    print(f"\n{'request':58} {'count':>7} {'fail':>5} {'p50':>6} {'p95':>6} {'p99':>6} {'max':>7}  (ms)")
    for row in rows:
        name = row["Name"] if row["Type"] else "All"
        label = f"{row['Type']} {name}".strip()
        print(f"{label[:58]:58} {row['Request Count']:>7} {row['Failure Count']:>5} {row['50%']:>6} {row['95%']:>6} "
              f"{row['99%']:>6} {float(row['Max Response Time']):>7.0f}")
    total = next(row for row in rows if row["Name"] == "Aggregated")
    failures = list(csv.DictReader(open(prefix + "_failures.csv")))
    for failure in failures[:10]:
        print(f"  failure: {failure['Method']} {failure['Name']}: {failure['Error'][:160]} x{failure['Occurrences']}")
    p95, errors, count = float(total["95%"]), int(total["Failure Count"]), int(total["Request Count"])
    print(f"\nRESULT load-test users={args.users} duration={args.duration}s requests={count} "
          f"rps={float(total['Requests/s']):.0f} p50={total['50%']}ms p95={p95:.0f}ms p99={total['99%']}ms "
          f"errors={errors} (goals: p95 <= {GOAL_P95_MS} ms, 0 errors) -> "
          f"{'MET' if p95 <= GOAL_P95_MS and errors == 0 else 'NOT MET'}")
    cpu_warnings = [l for l in open(os.path.join(work, "locust.out")) if "CPU usage" in l]
    if cpu_warnings:
        print(f"warning: Locust's own CPU was saturated ({len(cpu_warnings)} warnings): client-side time is in the figures")
    print(f"controller RSS {rss_before // 1024} MB before, {rss_after // 1024} MB after; locust ran {elapsed:.0f}s "
          f"(exit {run.returncode})")
    print(f"benchmark settings: {' '.join(settings)} (per-address login limit raised, bcrypt cost lowered: "
          f"see scripts/bench/load-test)")
finally:
    print(f"locust output and CSV files: {work}")
    left = controller.stop()
    if left:
        print(f"agents left behind and killed: {left}")
