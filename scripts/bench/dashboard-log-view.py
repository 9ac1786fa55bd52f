#!/usr/bin/env python3
"""The deployment page's log view under a flood: a real app (Tests/websocket/log_app.py --plain) writes LINES_PER_S
lines a second through a real agent and controller for SECONDS, while headless Chromium shows /deployments/:id.
Does the page stay responsive, and does its DOM stay bounded?

Measured in the page (an init script, installed before live.js runs):
- main-thread lag: a 100 ms interval timer's lateness, sampled all along (what every input would wait at most);
- long tasks (PerformanceObserver 'longtask': tasks over 50 ms), their count and total time;
- input delay: every 2 s a key is typed into the filter box and erased (Event Timing: processingStart - startTime);
- how far the view is behind, every 2 s: the age of the newest line in view (log_app.py stamps each line with the
  CLOCK_MONOTONIC time of its write, and this script runs on the same host), p50 and max;
- at the end: .log-line elements kept, DOM nodes, JS heap, and how far the newest line in view is behind the app's
  newest line (read from the API at the same moment).
The anchor is the same page for the first 10 s before the flood starts (an app writing 1 line/s): lag ratios are
quoted against it. With --per-line, the flood is shown a second time with the page's subscriptions stripped of
`batch` (an init script rewrites what live.js sends), so the controller sends one log_update per line as before
log_batch: the two modes compared in one run, on the same machine load.

Usage: scripts/bench/dashboard-log-view.py [--per-line] [LINES_PER_S, default 5000] [SECONDS, default 60]
Binaries: $CODERUNNER_BIN_DIR, else a release build made here (swift build -c release, scratch .build-release-ws).
The controller runs with --bcrypt-cost 4 and --auth-rate-limit 1000 (only so that signing in is fast). The load
average (uptime) is printed before and after: quote it with the figures.
"""
import os
import re
import subprocess
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "Tests" / "websocket"))
sys.path.insert(0, str(ROOT / "Tests" / "browser"))
from conftest import CHROMIUM  # noqa: E402
from harness import PASSWORD, Api, Controller, app_command  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

PROBE = """
window.__bench = {lags: [], longTasks: [], inputDelays: []};
new PerformanceObserver(list => { for (const e of list.getEntries()) __bench.longTasks.push(e.duration); })
  .observe({type: 'longtask', buffered: true});
new PerformanceObserver(list => { for (const e of list.getEntries())
    if (e.name === 'keydown' || e.name === 'keyup' || e.name === 'input') __bench.inputDelays.push(e.processingStart - e.startTime); })
  .observe({type: 'event', durationThreshold: 16, buffered: true});
let last = performance.now();
setInterval(() => { const now = performance.now(); __bench.lags.push(Math.max(0, now - last - 100)); last = now; }, 100);
"""


# Sent by live.js as {"event":"subscribe_logs","data":{...,"batch":true}}; --per-line removes the flag.
PER_LINE = """
const send = WebSocket.prototype.send;
WebSocket.prototype.send = function (text) {
  try {
    const frame = JSON.parse(text);
    if (frame.event === 'subscribe_logs' && frame.data) { delete frame.data.batch; text = JSON.stringify(frame); }
  } catch (error) {}
  return send.call(this, text);
};
"""
NEWEST = """() => { const rows = document.querySelectorAll('.log-line[data-seq]');
    return rows.length ? rows[rows.length - 1].textContent : ''; }"""
STAMP = re.compile(r"n=(\d+) t=(\d+)")


def release_bin_dir():
    """$CODERUNNER_BIN_DIR, else the release build of both binaries (built when missing)."""
    if os.environ.get("CODERUNNER_BIN_DIR"):
        return os.environ["CODERUNNER_BIN_DIR"]
    scratch = ["--scratch-path", str(ROOT / ".build-release-ws"), "-c", "release"]
    for product in ("coderunner-controller", "coderunner-agent"):
        subprocess.run(["swift", "build", *scratch, "--product", product], cwd=ROOT, check=True)
    out = subprocess.run(["swift", "build", *scratch, "--show-bin-path"], cwd=ROOT, check=True, capture_output=True, text=True)
    os.environ["CODERUNNER_BIN_DIR"] = out.stdout.strip()
    return os.environ["CODERUNNER_BIN_DIR"]


def load():
    return os.getloadavg()


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))] if ordered else 0.0


def phase(page, seconds):
    """Reads the probe's samples for `seconds`, typing into the filter every 2 s; returns them, with the age of the
    newest line in view at each look (ms)."""
    page.evaluate("__bench.lags = []; __bench.longTasks = []; __bench.inputDelays = []")
    ages = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        page.focus('[data-testid="log-filter-input"]')
        page.keyboard.type("n")  # every line of log_app.py holds "n=": the filter keeps them all
        page.keyboard.press("Backspace")
        match = STAMP.search(page.evaluate(NEWEST))
        if match:
            ages.append((time.monotonic_ns() - int(match.group(2))) / 1e6)
        time.sleep(2)
    samples = page.evaluate("__bench")
    samples["ages"] = ages
    return samples


def summary(name, samples, seconds):
    lags, tasks = samples["lags"], samples["longTasks"]
    delays, ages = samples["inputDelays"], samples["ages"]
    print(f"{name}: main-thread lag p50 {percentile(lags, 50):.1f} ms, p99 {percentile(lags, 99):.1f} ms, "
          f"max {max(lags, default=0):.1f} ms; long tasks {len(tasks)} ({sum(tasks):.0f} ms in {seconds} s, "
          f"longest {max(tasks, default=0):.0f} ms); input delay max {max(delays, default=0):.1f} ms "
          f"({len(delays)} slow events of >= 16 ms); newest line in view behind the app by p50 "
          f"{percentile(ages, 50):,.0f} ms, max {max(ages, default=0):,.0f} ms ({len(ages)} looks)", flush=True)
    return percentile(lags, 99)


def main():
    args = sys.argv[1:]
    per_line = "--per-line" in args
    args = [a for a in args if a != "--per-line"]
    rate = int(args[0]) if len(args) > 0 else 5000
    seconds = int(args[1]) if len(args) > 1 else 60
    binaries = release_bin_dir()
    print(f"binaries {binaries}; load average before {load()[0]:.2f} {load()[1]:.2f} {load()[2]:.2f}", flush=True)
    controller = Controller(binaries=binaries, extra=["--bcrypt-cost", "4", "--auth-rate-limit", "1000"]).start()
    try:
        owner = Api(controller.base).register_and_login("bench@example.com")
        project = owner.project("log-view")
        quiet = owner.deployment(project, "quiet", app_command("--rate", 1, "--plain"))
        flood = owner.deployment(project, "flood", app_command("--rate", rate, "--plain"))
        for deployment in (quiet, flood):
            owner.scale(deployment, 1)
            owner.wait_running(deployment, 1)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            context = browser.new_context(base_url=controller.base, viewport={"width": 1280, "height": 900})
            context.add_init_script(PROBE)
            page = context.new_page()
            page.goto("/login")
            page.fill('[data-testid="email-input"]', "bench@example.com")
            page.fill('[data-testid="password-input"]', PASSWORD)
            page.click('[data-testid="login-button"]')
            page.wait_for_url("**/dashboard")

            page.goto(f"/deployments/{quiet}")
            page.wait_for_selector('[data-testid="ws-status"].connected')
            anchor = summary("anchor: 1 line/s for 10 s", phase(page, 10), 10)

            modes = [("log_batch", page)]
            if per_line:
                # The same session in a second page whose subscriptions do not ask for batches.
                other = context.new_page()
                other.add_init_script(PER_LINE)
                modes.append(("per-line log_update", other))
            for mode, view in modes:
                view.goto(f"/deployments/{flood}")
                view.wait_for_selector('[data-testid="ws-status"].connected')
                view.wait_for_selector(".log-line[data-seq]")
                flooded = summary(f"{mode}: {rate:,} lines/s for {seconds} s", phase(view, seconds), seconds)
                end = view.evaluate("""() => {
                    const rows = document.querySelectorAll('.log-line[data-seq]');
                    return {lines: document.querySelectorAll('.log-line').length, nodes: document.getElementsByTagName('*').length,
                            heap: performance.memory ? performance.memory.usedJSHeapSize : 0,
                            newest: rows.length ? Number(rows[rows.length - 1].dataset.seq) : 0,
                            notices: document.querySelectorAll('.log-notice').length}; }""")
                logs = owner.data("GET", f"/api/deployments/{flood}/logs?tail=1", timeout=60)["lines"]
                behind = f", the app's newest {logs[-1]['seq']:,} ({logs[-1]['seq'] - end['newest']:,} behind)" if logs else ""
                print(f"{mode}: after {seconds} s: {end['lines']:,} .log-line elements kept ({end['notices']} 'skipped' "
                      f"notices among them), {end['nodes']:,} DOM elements, JS heap {end['heap'] / 1e6:.1f} MB; newest "
                      f"line in view seq {end['newest']:,}{behind}")
                print(f"{mode}: lag p99 ratio flood / anchor: {flooded / max(anchor, 0.1):.1f}x; load average now "
                      f"{load()[0]:.2f} {load()[1]:.2f} {load()[2]:.2f}", flush=True)
                # Leave the page, so that its socket does not take the machine's time from the next mode.
                view.goto("about:blank")
            browser.close()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
