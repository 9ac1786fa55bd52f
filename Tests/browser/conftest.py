"""Fixtures for the dashboard's browser tests: a real coderunner-controller on loopback (real SQLite in a
temporary directory), started by the tests, and Debian's Chromium driven by Playwright.

The controller binary comes from CODERUNNER_BIN_DIR (the `swift build --show-bin-path` of the build under test).
Screenshots land in CODERUNNER_SCREENSHOTS (default .build/browser-screenshots), outside git.
"""
import os
import re
import select
import shutil
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("CODERUNNER_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(os.environ.get("CODERUNNER_SCREENSHOTS", ROOT / ".build" / "browser-screenshots"))
PASSWORD = "correct horse battery staple"


class Controller:
    """`coderunner-controller serve` on 127.0.0.1:<free port>, stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, extra_args=()):
        bin_dir = os.environ.get("CODERUNNER_BIN_DIR")
        if not bin_dir:
            raise RuntimeError("set CODERUNNER_BIN_DIR to the build's bin directory (swift build --show-bin-path)")
        self.binary = Path(bin_dir) / "coderunner-controller"
        self.data = Path(tempfile.mkdtemp(prefix="coderunner-browser-"))
        # Open registration (several users sign up), bcrypt's minimum cost and a high attempt limit: the tests
        # sign in many times from one address. The local executor runs nothing here, so no sandbox is needed.
        self.process = subprocess.Popen(
            [str(self.binary), "serve", "--listen", "127.0.0.1:0", "--data-dir", str(self.data),
             "--registration", "open", "--bcrypt-cost", "4", "--auth-rate-limit", "10000", "--sandbox", "off",
             "--log-level", "warning", *extra_args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.url = self._wait_for_address(timeout=30)

    def _wait_for_address(self, timeout):
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            ready, _, _ = select.select([self.process.stdout], [], [], 0.5)
            if ready:
                line = self.process.stdout.readline()
                if not line and self.process.poll() is not None:
                    break
                seen.append(line)
                match = re.search(r"listening on (http://\S+)", line)
                if match:
                    return match.group(1)
        self.stop()
        raise RuntimeError("controller did not start:\n" + "".join(seen))

    def stop(self):
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.data, ignore_errors=True)


@pytest.fixture(scope="session")
def controller():
    server = Controller()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def base_url(controller):
    return controller.url


@pytest.fixture(scope="session")
def chromium():
    with sync_playwright() as playwright:
        # Debian's Chromium (Playwright's own browser downloads cannot be reached here); root needs --no-sandbox.
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"], headless=True)
        yield browser
        browser.close()


@pytest.fixture
def context(chromium, base_url):
    context = chromium.new_context(base_url=base_url, viewport={"width": 1280, "height": 860})
    yield context
    context.close()


@pytest.fixture
def page(context):
    page = context.new_page()
    # A page that logs an error (a CSP violation, a failed load) fails the test that opened it. A page answered
    # with 4xx on purpose (a refused form, Access Denied) is logged as a failed load too: that one is expected.
    errors = []
    expected = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d ")
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and not expected.match(message.text) else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    assert errors == [], f"console errors: {errors}"


def new_email():
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


def screenshot(page, name):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
