"""The deploy tab and the deployment page's scaling section in Chromium, against a controller whose local executor
runs real agents (coderunner-agent, unsandboxed) with the sample app as its --default-command: deploy, the
lifecycle (stop, start, delete), scaling policies, isolation with a second browser context, axe at phone and
desktop width, and one WebKit check of the deploy tab's layout.

The status waits reload the page: once the live module (/assets/live.js) updates `data-live-status` by itself, a
reload finds the same text, so the waits pass either way."""
import json
import os
import re
import shutil
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from conftest import PASSWORD, ROOT, SCREENSHOTS, Controller, new_email, screenshot
from helpers import add_variable, assert_accessible, axe, create_deployment, create_project, register  # noqa: F401 (axe is a fixture)
from test_webkit import DRIVER as WEBKIT_DRIVER, MINIBROWSER, axe_violations, by_testid, display, fill_and_submit, wait, webkit  # noqa: F401 (fixtures)

SAMPLE_APP = ROOT / "examples" / "sample-app" / "app.py"
PHONE = {"width": 375, "height": 667}
DESKTOP = {"width": 1280, "height": 860}


def agent_binary():
    """The agent the controller's local executor runs: CODERUNNER_AGENT_BINARY, else the one next to the controller."""
    given = os.environ.get("CODERUNNER_AGENT_BINARY")
    path = Path(given) if given else Path(os.environ.get("CODERUNNER_BIN_DIR", "")) / "coderunner-agent"
    if not path.is_file():
        raise RuntimeError(f"no coderunner-agent at {path}: build it (swift build --product coderunner-agent) "
                           "or set CODERUNNER_AGENT_BINARY")
    return path


@pytest.fixture(scope="module")
def deploy_controller():
    server = Controller(extra_args=["--default-command", f"python3 {SAMPLE_APP}",
                                    "--agent-binary", str(agent_binary())])
    yield server
    server.stop()


@pytest.fixture
def deploy_page(chromium, deploy_controller):
    context = chromium.new_context(base_url=deploy_controller.url, viewport=DESKTOP)
    page = context.new_page()
    errors = []
    expected = re.compile(r"^Failed to load resource: the server responded with a status of 4\d\d ")
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" and not expected.match(message.text) else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert errors == [], f"console errors: {errors}"


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_text(page, locator, text, timeout=60):
    """Waits until `locator` shows `text`, reloading the page between looks (a live page needs none)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            expect(locator).to_have_text(text, timeout=1000)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            page.reload()


def wait_for_count(page, locator, at_least, timeout=60):
    deadline = time.monotonic() + timeout
    while locator.count() < at_least:
        if time.monotonic() > deadline:
            raise AssertionError(f"fewer than {at_least} of {locator} after {timeout} s")
        time.sleep(0.5)
        page.reload()


def deploy(page, project_url, command=""):
    """Deploys from the deploy tab; returns the new card (the newest, first)."""
    page.goto(project_url)
    page.click('[data-testid="deploy-tab"]')
    if command:
        page.fill('[data-testid="deploy-command-input"]', command)
    page.click('[data-testid="deploy-button"]')
    expect(page.get_by_text("Deployment created and started.")).to_be_visible()
    return page.locator('[data-testid="deployment-card"]').first


def project_with_port(page):
    """A new user's project whose development environment has a PORT, so that its deployment gets a url."""
    register(page, new_email())
    project_url = create_project(page, "Deployed")
    port = free_port()
    add_variable(page, "PORT", str(port), "number")
    expect(page.locator('[data-testid="variable-row"][data-key="PORT"]')).to_be_visible()
    return project_url, port


def test_deploy_journey(deploy_page):
    page = deploy_page
    project_url, port = project_with_port(page)
    card = deploy(page, project_url)
    status = card.locator('[data-testid="deployment-status"]')
    # A started deployment is PROVISIONING until its first instance runs (docs/deployments.md); PENDING is the
    # state of one created and not yet started. The start returns once the agent is up, and its app may report
    # running before the tab is drawn, so the first look may already find RUNNING (seen under load): the states
    # before it are the only others allowed.
    expect(status).to_have_text(re.compile(r"^(PENDING|PROVISIONING|RUNNING)$"))
    screenshot(page, "deploy-tab-starting-desktop")
    wait_for_text(page, page.locator('[data-testid="deployment-status"]').first, "RUNNING")

    card = page.locator('[data-testid="deployment-card"]').first
    url = card.locator('[data-testid="deployment-url"]')
    wait_for_text(page, url, f"http://127.0.0.1:{port}")
    assert url.get_attribute("href") == f"http://127.0.0.1:{port}"
    # The link leads to the app itself. RUNNING says its process runs, not that it listens yet (this deployment has
    # no health check): under load Python may still be starting, so a refused connection is tried again, for 15 s.
    deadline = time.monotonic() + 15
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as response:
                assert json.load(response)["app"] == "sample-app"
            break
        except urllib.error.URLError as error:
            if not isinstance(error.reason, ConnectionRefusedError) or time.monotonic() > deadline:
                raise
            time.sleep(0.2)
    logs = page.locator('[data-testid="deployment-logs"]').first
    wait_for_count(page, logs.locator(".log-line"), 1)
    expect(logs).to_contain_text("listening")
    screenshot(page, "deploy-tab-running-desktop")

    # The card links to the deployment's own page.
    card.locator('[data-testid="deployment-link"]').click()
    expect(page).to_have_url(re.compile(r"/deployments/[a-f0-9-]{36}$"))
    expect(page.locator('[data-testid="deployment-status"]')).to_have_text("RUNNING")


def test_lifecycle_journey(deploy_page):
    page = deploy_page
    project_url, _ = project_with_port(page)
    deploy(page, project_url)
    status = page.locator('[data-testid="deployment-status"]').first
    wait_for_text(page, status, "RUNNING")

    page.locator('[data-testid="stop-deployment-button"]').first.click()
    expect(page.get_by_text("Deployment stopped.")).to_be_visible()
    expect(status).to_have_text("STOPPED")
    expect(page.locator('[data-testid="deployment-url"]')).to_have_count(0)

    page.locator('[data-testid="start-deployment-button"]').first.click()
    expect(page.get_by_text("Deployment started.")).to_be_visible()
    wait_for_text(page, status, "RUNNING")

    page.locator('[data-testid="delete-deployment-button"]').first.click()
    confirm = page.locator('[data-testid="confirm-delete-button"]').first
    expect(confirm).to_be_visible()
    screenshot(page, "deploy-tab-confirm-delete-desktop")
    confirm.click()
    expect(page.get_by_text("Deployment deleted; its tombstone stays.")).to_be_visible()
    expect(status).to_have_text("DESTROYED")
    for button in ("stop-deployment-button", "start-deployment-button", "delete-deployment-button"):
        expect(page.locator(f'[data-testid="{button}"]')).to_have_count(0)


def test_scaling_policies_on_the_deployment_page(deploy_page):
    page = deploy_page
    project_url, _ = project_with_port(page)
    deploy(page, project_url)
    page.locator('[data-testid="deployment-link"]').first.click()
    policy = {"name": "cpu", "policyType": "target_tracking", "minInstances": 5, "maxInstances": 2,
              "target": {"metric": "cpu", "value": 60}}
    page.fill('[data-testid="policy-json-input"]', json.dumps(policy))
    page.click('[data-testid="create-policy-button"]')
    # The API's validation error, in the textarea's own field, which keeps what was typed.
    field = page.locator(".field", has=page.locator('[data-testid="policy-json-input"]'))
    expect(field.locator('[data-testid="policy-error"]')).to_contain_text("validation failed: maxInstances")
    expect(page.locator('[data-testid="policy-json-input"]')).to_have_value(json.dumps(policy))
    expect(page.locator('[data-testid="policy-json-input"]')).to_have_attribute("aria-invalid", "true")
    screenshot(page, "deployment-scaling-error-desktop")

    policy["minInstances"] = 1
    policy["maxInstances"] = 3
    page.fill('[data-testid="policy-json-input"]', json.dumps(policy))
    page.click('[data-testid="create-policy-button"]')
    expect(page.get_by_text("Scaling policy created.")).to_be_visible()
    row = page.locator('[data-testid="policy-row"][data-name="cpu"]')
    expect(row).to_contain_text("target_tracking")
    expect(row).to_contain_text("1 to 3 instances")
    expect(page.locator('[data-testid="scaling-event"]').first).to_contain_text('policy "cpu" created')
    expect(page.locator('[data-testid="instances-chart"] svg[role="img"]')).to_be_visible()
    screenshot(page, "deployment-scaling-desktop")


def test_another_user_sees_access_denied(deploy_page, chromium, deploy_controller):
    page = deploy_page
    project_url, _ = project_with_port(page)
    deploy(page, project_url)
    page.locator('[data-testid="deployment-link"]').first.click()
    deployment_url = page.url
    other = chromium.new_context(base_url=deploy_controller.url)
    try:
        intruder = other.new_page()
        register(intruder, new_email())
        for url in (deployment_url, project_url + "/deployments"):
            response = intruder.goto(url)
            assert response.status == 404
            expect(intruder.locator("h1")).to_have_text("Access Denied")
        unknown = intruder.goto(re.sub(r"[a-f0-9-]{36}$", "00000000-0000-4000-8000-000000000000", deployment_url))
        assert unknown.status == 404
    finally:
        other.close()
    # The owner's deployment is untouched.
    page.reload()
    expect(page.locator('[data-testid="deployment-status"]')).not_to_have_text("DESTROYED")


def test_deploy_without_command_or_default_shows_the_reason(page):
    """The session's controller has no --default-command: the reason appears beside the command field."""
    register(page, new_email())
    project_url = create_project(page, "No default")
    page.goto(project_url + "/deployments")
    page.click('[data-testid="deploy-button"]')
    expect(page.locator('[data-testid="deploy-command-error"]')).to_have_text(
        "command is required: the deployment has no command, so the local executor has nothing to run; "
        "create it with a command")
    expect(page.locator('[data-testid="deployment-card"]')).to_have_count(0)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_axe_and_layout_of_the_deploy_pages(deploy_page, axe, viewport):
    page = deploy_page
    page.set_viewport_size(viewport)
    project_url, _ = project_with_port(page)
    page.goto(project_url + "/deployments")
    assert_accessible(axe, page, "empty deploy tab")
    # Every project tab is whole on screen: the row wraps rather than hiding a tab in a sideways scroll.
    tabs = page.evaluate("""() => { const nav = document.querySelector('nav.tabs');
        return {scroll: nav.scrollWidth, client: nav.clientWidth, cut: [...nav.querySelectorAll('a')]
            .filter(a => { const r = a.getBoundingClientRect(); return r.left < 0 || r.right > innerWidth || a.scrollWidth > a.clientWidth + 1; })
            .map(a => a.textContent)}; }""")
    assert tabs == {"scroll": tabs["client"], "client": tabs["client"], "cut": []}, tabs
    deploy(page, project_url, command="")
    wait_for_text(page, page.locator('[data-testid="deployment-status"]').first, "RUNNING")
    wait_for_count(page, page.locator('[data-testid="deployment-logs"] .log-line'), 1)
    page.locator('[data-testid="delete-deployment-button"]').first.click()
    assert_accessible(axe, page, "deploy tab with a running deployment and the delete confirmation open")
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    screenshot(page, f"deploy-tab-{viewport['width']}")

    page.locator('[data-testid="deployment-link"]').first.click()
    page.fill('[data-testid="policy-json-input"]', '{"name": "bad"')
    page.click('[data-testid="create-policy-button"]')
    expect(page.locator('[data-testid="policy-error"]')).to_be_visible()
    assert_accessible(axe, page, "deployment page with a refused policy")
    page.fill('[data-testid="policy-json-input"]', json.dumps(
        {"name": "cpu", "policyType": "target_tracking", "minInstances": 1, "maxInstances": 3,
         "target": {"metric": "cpu", "value": 60}}))
    page.click('[data-testid="create-policy-button"]')
    page.locator('[data-testid="edit-policy-button"]').first.click()
    assert_accessible(axe, page, "deployment page with a policy, its editor open, events and the chart")
    assert page.evaluate("document.documentElement.scrollWidth") <= viewport["width"]
    screenshot(page, f"deployment-scaling-{viewport['width']}")


# WebKit (WebKitGTK's WebDriver under Xvfb, test_webkit's fixtures): the deploy tab's layout at phone width.
@pytest.mark.skipif(not WEBKIT_DRIVER or not MINIBROWSER or not shutil.which("Xvfb"),
                    reason="needs webkit2gtk-driver and xvfb (scripts/test-browser installs them)")
@pytest.mark.filterwarnings("ignore:setting remote_server_addr:DeprecationWarning")
def test_deploy_tab_layout_in_webkit(webkit, base_url):
    from selenium.webdriver.support import expected_conditions as EC

    email = new_email()
    fill_and_submit(webkit, base_url, "/register", "register-button", email)
    webkit.find_element(*by_testid("create-project-button")).click()
    webkit.find_element(*by_testid("project-name-input")).send_keys("WebKit")
    webkit.find_element(*by_testid("create-project-submit")).click()
    wait(webkit, EC.element_to_be_clickable(by_testid("project-card"))).click()
    wait(webkit, EC.url_matches(r"/projects/[a-f0-9-]{36}$"))
    project = webkit.current_url
    # Created through the API and not started: a card with every button, and no agent needed for a layout check.
    create_deployment(base_url, email, project, PASSWORD)
    webkit.set_window_size(375, 740)
    webkit.get(project + "/deployments")
    card = wait(webkit, EC.visibility_of_element_located(by_testid("deployment-card")))
    assert card.find_element(*by_testid("deployment-status")).text == "PENDING"
    for name in ("deploy-button", "stop-deployment-button", "start-deployment-button", "delete-deployment-button",
                 "mobile-menu-button"):
        assert webkit.find_element(*by_testid(name)).is_displayed(), name
    assert not webkit.find_element(*by_testid("sidebar")).is_displayed()
    # Nothing wider than the window (MiniBrowser's is 447 px at the least, still the phone layout), and the card
    # inside the main column.
    assert webkit.execute_script("return window.innerWidth") <= 767
    assert webkit.execute_script("return document.documentElement.scrollWidth <= window.innerWidth")
    main = webkit.find_element(*by_testid("main-content")).rect
    assert main["x"] <= card.rect["x"] and card.rect["x"] + card.rect["width"] <= main["x"] + main["width"] + 1
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    webkit.save_screenshot(str(SCREENSHOTS / "webkit-deploy-tab-phone.png"))
    assert axe_violations(webkit) == []
