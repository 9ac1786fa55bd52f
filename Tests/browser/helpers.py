"""Steps the journeys share, written with the plan's data-testid names."""
import json
import re
import urllib.request

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from conftest import PASSWORD


def register(page: Page, email: str, password: str = PASSWORD):
    page.goto("/register")
    page.fill('[data-testid="email-input"]', email)
    page.fill('[data-testid="password-input"]', password)
    page.click('[data-testid="register-button"]')
    expect(page).to_have_url(re.compile(r"/dashboard$"))


def login(page: Page, email: str, password: str = PASSWORD):
    page.goto("/login")
    page.fill('[data-testid="email-input"]', email)
    page.fill('[data-testid="password-input"]', password)
    page.click('[data-testid="login-button"]')
    expect(page).to_have_url(re.compile(r"/dashboard$"))


def logout(page: Page):
    page.click('[data-testid="user-menu"]')
    page.click('[data-testid="logout-button"]')
    expect(page).to_have_url(re.compile(r"/login$"))


def create_project(page: Page, name: str, description: str = "") -> str:
    """Creates a project from the dashboard and opens it; returns its URL."""
    page.goto("/dashboard")
    page.click('[data-testid="create-project-button"]')
    page.fill('[data-testid="project-name-input"]', name)
    if description:
        page.fill('[data-testid="project-description-input"]', description)
    page.click('[data-testid="create-project-submit"]')
    card = page.locator('[data-testid="project-card"]', has_text=name)
    expect(card).to_be_visible()
    card.click()
    expect(page).to_have_url(re.compile(r"/projects/[a-f0-9-]{36}$"))
    return page.url


def add_variable(page: Page, key: str, value: str, kind: str = "string"):
    page.click('[data-testid="environment-config-tab"]')
    page.click('[data-testid="add-variable-button"]')
    page.fill('[data-testid="variable-key-input"]', key)
    page.fill('[data-testid="variable-value-input"]', value)
    page.select_option('[data-testid="variable-type-select"]', kind)
    page.click('[data-testid="save-variable-button"]')


def api(base_url: str, method: str, path: str, body: dict, token: str = None) -> dict:
    """One JSON API call (the deployment pages have no form to create a deployment yet)."""
    request = urllib.request.Request(base_url + path, method=method, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json",
                                              **({"Authorization": f"Bearer {token}"} if token else {})})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)["data"]


def create_deployment(base_url: str, email: str, project_url: str, password: str = PASSWORD) -> str:
    token = api(base_url, "POST", "/api/auth/login", {"email": email, "password": password})["token"]
    deployment = api(base_url, "POST", "/api/deployments",
                     {"projectId": project_url[-36:], "environment": "development", "name": "web"}, token)
    return deployment["id"]


@pytest.fixture(scope="module")
def axe():
    """axe-core (from axe-playwright-python) for one module's pages."""
    return Axe()


def assert_accessible(axe, page, name):
    results = axe.run(page)
    violations = [f"{v['id']}: {v['help']} ({len(v['nodes'])} nodes: {v['nodes'][0]['target']})"
                  for v in results.response["violations"]]
    assert violations == [], f"{name}: {violations}"
