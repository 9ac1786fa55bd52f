"""The real-time journey on /deployments/:id against a real controller whose local executor runs real agents, each
supervising Tests/websocket/log_app.py: the socket's state, live lines, the filter, the export, live metrics, and a
controller restart (same data directory and port) that the page rides out by itself. Then the same page in WebKit,
and axe-core on it."""
import os
import re
import signal
import shutil
import subprocess
import sys
import time

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from conftest import PASSWORD, ROOT, SCREENSHOTS, new_email, screenshot
from helpers import api, create_project, register
from selenium.webdriver.common.by import By
from test_webkit import DRIVER, MINIBROWSER, by_testid, display, fill_and_submit, wait, webkit  # noqa: F401 (fixtures)

sys.path.insert(0, str(ROOT / "Tests" / "websocket"))
from harness import Controller, app_command, free_port  # noqa: E402

LINE = ".log-line[data-seq]"


class RestartableController(Controller):
    """The WebSocket tests' controller (local executor, sandboxed agents) on a fixed port, restartable in place."""

    def __init__(self):
        super().__init__(binaries=os.environ.get("CODERUNNER_BIN_DIR"),
                         extra=["--bcrypt-cost", "4", "--auth-rate-limit", "10000"])
        port = free_port()
        self.argv[self.argv.index("127.0.0.1:0")] = f"127.0.0.1:{port}"

    def stop_in_place(self):
        """SIGTERM as systemd sends it (sockets close with 1001), keeping the data: start() runs the same command."""
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            # A stop that takes long warns every 5 s with what it waits for: the log says which part held it.
            self.process.kill()
            self.process.wait(5)
            raise AssertionError(f"the controller did not stop within 30 s of SIGTERM; its log ends:\n{self.tail(60)}")
        finally:
            self.log.close()


@pytest.fixture(scope="module")
def live():
    server = RestartableController().start()
    yield server
    left = server.stop()
    assert left == [], f"agents left running: {left}"


@pytest.fixture
def live_page(chromium, live):
    context = chromium.new_context(base_url=live.base, viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    # While the controller is down, Chromium logs the page's refused reconnects: the socket's, and a request the page
    # makes meanwhile (a refused connection: the loopback controller refuses only while the test has it stopped; a
    # request it answers with an error is logged otherwise). Anything else fails the test.
    errors = []
    expected = re.compile(r"^WebSocket connection to 'ws://[^']+/api/ws' failed|^Failed to load resource: net::ERR_CONNECTION_REFUSED$")
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" and not expected.match(m.text) else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"console errors: {errors}"


def running_deployment(base_url, email, project_id=None, rate=20):
    """A deployment of log_app.py (with --burn, so the figures move), scaled to one running instance."""
    token = api(base_url, "POST", "/api/auth/login", {"email": email, "password": PASSWORD})["token"]
    if project_id is None:
        project_id = api(base_url, "POST", "/api/projects", {"name": "live"}, token)["id"]
    deployment = api(base_url, "POST", "/api/deployments",
                     {"projectId": project_id, "environment": "production", "name": "live",
                      "command": app_command("--rate", rate, "--burn")}, token)["id"]
    api(base_url, "POST", f"/api/deployments/{deployment}/scaling/override",
        {"instances": 1, "reason": "browser test"}, token)
    return deployment, token


def shown_lines(page):
    """(instance, seq) of every live line in view, in order."""
    return page.eval_on_selector_all(LINE, "rows => rows.map(r => [r.dataset.instance, Number(r.dataset.seq)])")


def assert_in_order_once(lines):
    assert len(lines) == len({tuple(line) for line in lines}), "a line was shown twice"
    for instance in {i for i, _ in lines}:
        seqs = [seq for i, seq in lines if i == instance]
        assert seqs == sorted(seqs), f"{instance}: lines out of order"


def test_the_real_time_journey(live_page, live, tmp_path):
    page = live_page
    email = new_email()
    register(page, email)
    project = create_project(page, "Realtime")[-36:]
    deployment, _ = running_deployment(live.base, email, project)
    page.goto(f"/deployments/{deployment}")

    status = page.locator('[data-testid="ws-status"]')
    expect(status).to_have_text("Connected", timeout=10_000)
    expect(status).to_have_class(re.compile(r"\bconnected\b"))
    expect(page.locator('[data-testid="deployment-status"]')).to_have_text("RUNNING", timeout=30_000)
    # The badge is coloured as on the deploy tab, and the instance table (rendered while the instance started)
    # follows the status: it says running too.
    expect(page.locator('[data-testid="deployment-status"]')).to_have_class(re.compile(r"\bstatus-RUNNING\b"))
    rows = page.locator('[data-testid="instance-row"]')
    expect(rows).to_have_count(1, timeout=15_000)
    expect(rows.first.locator("td").nth(1)).to_have_text("running", timeout=15_000)
    logs = page.locator('[data-testid="deployment-logs"]')
    expect(logs.locator(LINE).first).to_be_visible(timeout=30_000)
    expect(logs.locator(LINE).first).to_contain_text("n=")

    # The filter: the lines in view that do not match hide, and the lines that come next match.
    page.fill('[data-testid="log-filter-input"]', "WANT=WARN")
    page.wait_for_timeout(1500)
    visible = page.eval_on_selector_all(LINE, "rows => rows.filter(r => !r.hidden).map(r => r.textContent)")
    assert visible and all("want=warn" in text.lower() for text in visible), visible[:5]
    hidden = page.eval_on_selector_all(LINE, "rows => rows.filter(r => r.hidden).length")
    assert hidden > 0
    page.fill('[data-testid="log-filter-input"]', "")
    page.wait_for_timeout(500)
    assert page.eval_on_selector_all(LINE, "rows => rows.filter(r => r.hidden).length") == 0

    # The export: a download named after the deployment, holding every line the page showed before the click.
    shown = page.eval_on_selector_all(LINE, "rows => rows.map(r => r.textContent).join('\\n')")
    in_view = set(re.findall(r"n=(\d+) ", shown))
    with page.expect_download() as download_info:
        page.click('[data-testid="export-logs-button"]')
    download = download_info.value
    assert download.suggested_filename == f"deployment-{deployment}-logs.txt"
    exported = tmp_path / "export.txt"
    download.save_as(exported)
    stamps = set(re.findall(r"n=(\d+) ", exported.read_text()))
    assert in_view and in_view <= stamps, sorted(in_view - stamps)[:10]

    # Live figures: a value and a chart that grows with every metrics_update.
    for metric in ["cpu-metric", "memory-metric"]:
        expect(page.locator(f'[data-testid="{metric}"] [data-metric-value]')).to_have_text(re.compile(r"^\d+\.\d%$"),
                                                                                          timeout=10_000)
    points = lambda: len(page.get_attribute('[data-testid="cpu-metric"] polyline', "points").split())
    before = points()
    page.wait_for_timeout(2500)
    assert points() > before >= 1
    screenshot(page, "deployment-live")

    # The controller restarts: the page says so and comes back by itself. A controller that stops stops its
    # deployments' agents, and starts again what was running when it is back (docs/deployments.md): the new
    # agent's lines reach the same view, live, none twice. The new agent's sequence starts anew: each side is
    # checked on its own.
    assert_in_order_once(shown_lines(page))
    live.stop_in_place()
    try:
        expect(status).to_have_text("Reconnecting…", timeout=10_000)
        expect(status).to_have_class(re.compile(r"\breconnecting\b"))
        screenshot(page, "deployment-reconnecting")
        # The socket is closed: what is in view now is everything from before the restart (a frame flushes it).
        page.wait_for_timeout(200)
        page.eval_on_selector_all(LINE, "rows => { rows[rows.length - 1].dataset.mark = 'restart'; }")
    finally:
        live.start()
    expect(status).to_have_text("Connected", timeout=30_000)
    expect(status).to_have_class(re.compile(r"\bconnected\b"))
    deployment_status = page.locator('[data-testid="deployment-status"]')
    expect(deployment_status).to_have_text("RUNNING", timeout=30_000)
    expect(deployment_status).to_have_class(re.compile(r"\bstatus-RUNNING\b"))
    after = "() => [...document.querySelectorAll('.log-line[data-mark=restart] ~ .log-line[data-seq]')]" \
            ".map(r => [r.dataset.instance, Number(r.dataset.seq)])"
    # (wait_for_function would evaluate a string, which the page's CSP forbids: poll instead.)
    deadline = time.monotonic() + 60
    while len(page.evaluate(after)) < 5 and time.monotonic() < deadline:
        page.wait_for_timeout(250)
    resumed = page.evaluate(after)
    assert len(resumed) >= 5, f"{len(resumed)} lines after the restart"
    assert_in_order_once(resumed)
    screenshot(page, "deployment-after-restart")


def test_the_live_deployment_page_is_accessible(live_page, live):
    page = live_page
    email = new_email()
    register(page, email)
    project = create_project(page, "Accessible")[-36:]
    deployment, _ = running_deployment(live.base, email, project, rate=5)
    page.goto(f"/deployments/{deployment}")
    expect(page.locator(LINE).first).to_be_visible(timeout=30_000)
    expect(page.locator('[data-testid="cpu-metric"] [data-metric-value]')).to_have_text(re.compile(r"%$"), timeout=10_000)
    violations = [f"{v['id']}: {v['help']} ({v['nodes'][0]['target']})" for v in Axe().run(page).response["violations"]]
    assert violations == []


@pytest.mark.skipif(not DRIVER or not MINIBROWSER or not shutil.which("Xvfb"),
                    reason="needs webkit2gtk-driver and xvfb (scripts/test-browser installs them)")
@pytest.mark.filterwarnings("ignore:setting remote_server_addr:DeprecationWarning")
def test_the_live_view_in_webkit(webkit, live):
    email = new_email()
    fill_and_submit(webkit, live.base, "/register", "register-button", email)
    deployment, _ = running_deployment(live.base, email, rate=5)
    webkit.get(f"{live.base}/deployments/{deployment}")
    status = webkit.find_element(*by_testid("ws-status"))
    wait(webkit, lambda _: status.text == "Connected")
    assert "connected" in status.get_attribute("class").split()
    wait(webkit, lambda driver: driver.find_elements(By.CSS_SELECTOR, f'[data-testid="deployment-logs"] {LINE}'), timeout=30)
    line = webkit.find_element(By.CSS_SELECTOR, LINE).text
    assert re.search(r"n=\d+ t=\d+", line), line
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    webkit.save_screenshot(str(SCREENSHOTS / "webkit-deployment-live.png"))
