#!/usr/bin/env python3
"""The deployment page's log view under a flood: a real app (Tests/websocket/log_app.py --plain) writes LINES_PER_S
lines a second through a real agent and controller for SECONDS, while headless Chromium shows /deployments/:id.
Does the page stay responsive, and does its DOM stay bounded?

Measured in the page (an init script, installed before live.js runs):
- main-thread lag: a 100 ms interval timer's lateness, sampled all along (what every input would wait at most);
- long tasks (PerformanceObserver 'longtask': tasks over 50 ms), their count and total time;
- input delay: every 2 s a key is typed into the filter box and erased (Event Timing: processingStart - startTime);
- at the end: .log-line elements kept, DOM nodes, JS heap, and how far the newest line in view is behind the app's
  newest line (read from the API at the same moment).
The anchor is the same page for the first 10 s before the flood starts (an app writing 1 line/s): lag ratios are
quoted against it.

Usage: CODERUNNER_BIN_DIR=<bin dir> scripts/bench/dashboard-log-view.py [LINES_PER_S, default 5000] [SECONDS, default 60]
The controller runs with --bcrypt-cost 4 and --auth-rate-limit 1000 (only so that signing in is fast).
"""
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


def percentile(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))] if ordered else 0.0


def phase(page, seconds):
    """Reads the probe's samples for `seconds`, typing into the filter every 2 s; returns them."""
    page.evaluate("__bench.lags = []; __bench.longTasks = []; __bench.inputDelays = []")
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        page.focus('[data-testid="log-filter-input"]')
        page.keyboard.type("n")  # every line of log_app.py holds "n=": the filter keeps them all
        page.keyboard.press("Backspace")
        time.sleep(2)
    return page.evaluate("__bench")


def summary(name, samples, seconds):
    lags, tasks = samples["lags"], samples["longTasks"]
    delays = samples["inputDelays"]
    print(f"{name}: main-thread lag p50 {percentile(lags, 50):.1f} ms, p99 {percentile(lags, 99):.1f} ms, "
          f"max {max(lags, default=0):.1f} ms; long tasks {len(tasks)} ({sum(tasks):.0f} ms in {seconds} s, "
          f"longest {max(tasks, default=0):.0f} ms); input delay max {max(delays, default=0):.1f} ms "
          f"({len(delays)} slow events of >= 16 ms)")
    return percentile(lags, 99)


def main():
    rate = int(sys.argv[1]) if len(sys.argv) > 1 else 5000
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 60
    controller = Controller(extra=["--bcrypt-cost", "4", "--auth-rate-limit", "1000"]).start()
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

            page.goto(f"/deployments/{flood}")
            page.wait_for_selector('[data-testid="ws-status"].connected')
            page.wait_for_selector(".log-line[data-seq]")
            flooded = summary(f"{rate:,} lines/s for {seconds} s", phase(page, seconds), seconds)
            end = page.evaluate("""() => {
                const rows = document.querySelectorAll('.log-line[data-seq]');
                return {lines: document.querySelectorAll('.log-line').length, nodes: document.getElementsByTagName('*').length,
                        heap: performance.memory ? performance.memory.usedJSHeapSize : 0,
                        newest: rows.length ? Number(rows[rows.length - 1].dataset.seq) : 0,
                        notices: document.querySelectorAll('.log-notice').length}; }""")
            logs = owner.data("GET", f"/api/deployments/{flood}/logs?tail=1", timeout=60)["lines"]
            behind = f", the app's newest {logs[-1]['seq']:,} ({logs[-1]['seq'] - end['newest']:,} behind)" if logs else ""
            print(f"after {seconds} s: {end['lines']:,} .log-line elements kept ({end['notices']} 'skipped' notices "
                  f"among them), {end['nodes']:,} DOM elements, JS heap {end['heap'] / 1e6:.1f} MB; newest line in "
                  f"view seq {end['newest']:,}{behind}")
            print(f"lag p99 ratio flood / anchor: {flooded / max(anchor, 0.1):.1f}x")
            browser.close()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
