"""Responsive layout (phone width with a menu button, desktop with a sidebar) and axe-core on every page."""
import re

import pytest
from playwright.sync_api import expect

from conftest import new_email, screenshot
from helpers import add_variable, assert_accessible, axe, create_deployment, create_project, register  # noqa: F401 (axe is a fixture)

PHONE = {"width": 375, "height": 667}
TABLET = {"width": 768, "height": 1024}
DESKTOP = {"width": 1920, "height": 1080}


def test_responsive_layout(page):
    page.set_viewport_size(PHONE)
    page.goto("/")
    expect(page.locator('[data-testid="mobile-menu-button"]')).to_be_visible()
    expect(page.locator('[data-testid="sidebar"]')).to_be_hidden()
    page.click('[data-testid="mobile-menu-button"]')
    expect(page.locator('[data-testid="mobile-menu"]')).to_be_visible()
    screenshot(page, "login-phone-menu")

    register(page, new_email())
    create_project(page, "Responsive")
    add_variable(page, "A_RATHER_LONG_VARIABLE_NAME", "a value that is long enough to need wrapping on a phone")
    screenshot(page, "project-config-phone")
    # Nothing is wider than the phone's screen.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]

    page.set_viewport_size(TABLET)
    page.goto("/dashboard")
    expect(page.locator('[data-testid="project-grid"]')).to_have_class(re.compile(r"responsive-grid"))
    screenshot(page, "dashboard-tablet")

    page.set_viewport_size(DESKTOP)
    page.goto("/dashboard")
    expect(page.locator('[data-testid="sidebar"]')).to_be_visible()
    expect(page.locator('[data-testid="main-content"]')).to_be_visible()
    expect(page.locator('[data-testid="mobile-menu-button"]')).to_be_hidden()
    screenshot(page, "dashboard-desktop")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_axe_finds_no_violations(page, axe, viewport, base_url):
    page.set_viewport_size(viewport)
    page.goto("/login")
    assert_accessible(axe, page, "login")
    page.goto("/register")
    assert_accessible(axe, page, "register")
    email = new_email()
    register(page, email)
    assert_accessible(axe, page, "empty dashboard")
    page.click('[data-testid="user-menu"]')
    assert_accessible(axe, page, "dashboard with the user menu open")
    project = create_project(page, "Accessible")
    assert_accessible(axe, page, "project without variables")
    add_variable(page, "SECRET_TOKEN", "hidden", "secret")
    add_variable(page, "9BAD", "x")
    # The form is open with an error beside a field.
    assert_accessible(axe, page, "project with a failed form")
    page.goto(project + "?env=production")
    assert_accessible(axe, page, "environment with the template form")
    page.goto(project + "/audit")
    assert_accessible(axe, page, "audit log")
    deployment = create_deployment(base_url, email, project)
    page.goto(project + "/deployments")
    assert_accessible(axe, page, "deployments")
    page.click('[data-testid="deployment-link"]')
    expect(page.locator('[data-testid="deployment-status"]')).to_have_text("PENDING")
    assert page.url.endswith(f"/deployments/{deployment}")
    assert_accessible(axe, page, "deployment")
    screenshot(page, f"deployment-{viewport['width']}")
    page.goto(project.replace(project[-36:], "00000000-0000-4000-8000-000000000000"))
    assert_accessible(axe, page, "access denied")
