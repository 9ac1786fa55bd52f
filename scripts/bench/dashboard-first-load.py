#!/usr/bin/env python3
"""First load of the dashboard's pages in headless Chromium on loopback: bytes transferred (uncompressed bodies of
every request the page made) and time to interactive. Every page loads live.js, a module script: it runs before
DOMContentLoaded, so interactive is domContentLoadedEventEnd (the document parsed, its stylesheet applied and the
script's handlers attached); domInteractive and loadEventEnd are reported beside it. On /deployments/:id, "live" is
when ws-status first says Connected (the socket is up and subscribing), from the navigation's start.

Each load is cold: a new browser context (empty cache) holding only the session cookie. The login page (no live
part, the script finds nothing to do) is the anchor the others are compared with. Targets: <= 100 kB and
<= 300 ms. Usage: CODERUNNER_BIN_DIR=<bin dir> scripts/bench/dashboard-first-load.py [runs, default 20]
"""
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "Tests" / "browser"))
from conftest import CHROMIUM, PASSWORD, Controller  # noqa: E402
from helpers import create_deployment  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402


def measure(browser, url, state):
    context = browser.new_context(storage_state=state)
    page = context.new_page()
    sizes = []
    page.on("requestfinished", lambda request: sizes.append(
        0 if 300 <= request.response().status < 400 else len(request.response().body())))
    page.goto(url, wait_until="load")
    live = None
    if page.locator('[data-testid="ws-status"]').count():
        page.wait_for_selector('[data-testid="ws-status"].connected', timeout=10_000)
        live = page.evaluate("performance.now()")
    timing = page.evaluate("(() => { const n = performance.getEntriesByType('navigation')[0];"
                           " return [n.domContentLoadedEventEnd, n.loadEventEnd, n.domInteractive]; })()")
    context.close()
    return sum(sizes), len(sizes), timing[0], timing[1], timing[2], live


def main():
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    controller = Controller()
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            setup = browser.new_context(base_url=controller.url)
            page = setup.new_page()
            page.goto("/register")
            page.fill('[data-testid="email-input"]', "bench@example.com")
            page.fill('[data-testid="password-input"]', PASSWORD)
            page.click('[data-testid="register-button"]')
            for index in range(6):
                page.click('[data-testid="create-project-button"]')
                page.fill('[data-testid="project-name-input"]', f"Project {index}")
                page.click('[data-testid="create-project-submit"]')
            page.locator('[data-testid="project-card"]').first.click()
            project = page.url
            for index in range(20):
                page.click('[data-testid="add-variable-button"]')
                page.fill('[data-testid="variable-key-input"]', f"VARIABLE_{index}")
                page.fill('[data-testid="variable-value-input"]', f"value number {index}")
                page.click('[data-testid="save-variable-button"]')
            deployment = create_deployment(controller.url, "bench@example.com", project)
            state = setup.storage_state()
            setup.close()
            anonymous = {"cookies": [], "origins": []}
            anchor = None
            for name, url, session in [("/login", controller.url + "/login", anonymous),
                                       ("/dashboard (6 projects)", controller.url + "/dashboard", state),
                                       ("/projects/:id (20 variables)", project, state),
                                       ("/deployments/:id (live view)", controller.url + f"/deployments/{deployment}", state)]:
                results = [measure(browser, url, session) for _ in range(runs)]
                size, requests = results[0][0], results[0][1]
                interactive = sorted(r[2] for r in results)
                loaded = sorted(r[3] for r in results)
                parsed = sorted(r[4] for r in results)
                p95 = max(0, int(round(0.95 * runs)) - 1)
                anchor = anchor or statistics.median(interactive)
                line = (f"{name}: {size:,} bytes in {requests} requests; interactive (DOMContentLoaded end) median "
                        f"{statistics.median(interactive):.0f} ms, p95 {interactive[p95]:.0f} ms "
                        f"({statistics.median(interactive) / anchor:.2f}x the login page); domInteractive median "
                        f"{statistics.median(parsed):.0f} ms; load median {statistics.median(loaded):.0f} ms")
                if results[0][5] is not None:
                    live = sorted(r[5] for r in results)
                    line += f"; live (Connected) median {statistics.median(live):.0f} ms, p95 {live[p95]:.0f} ms"
                print(line + f" ({runs} cold loads)")
            browser.close()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
