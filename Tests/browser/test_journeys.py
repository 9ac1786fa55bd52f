"""The plan's user journeys in Chromium, against a real controller: authentication, projects, the environment
configuration manager, multi-user isolation, and the same with JavaScript switched off."""
import re

from playwright.sync_api import expect

from conftest import new_email, screenshot
from helpers import add_variable, create_project, login, logout, register


def test_public_pages_render(page):
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/login$"))
    expect(page.locator("h1")).to_be_visible()
    expect(page.locator('[data-testid="login-form"]')).to_be_visible()
    screenshot(page, "login-desktop")
    page.goto("/register")
    expect(page.locator('[data-testid="register-form"]')).to_be_visible()
    screenshot(page, "register-desktop")


def test_complete_authentication_flow(page):
    email = new_email()
    register(page, email)
    expect(page.locator('[data-testid="user-menu"]')).to_be_visible()
    expect(page.locator('[data-testid="logout-button"]')).to_be_hidden()
    logout(page)
    login(page, email)
    expect(page.locator('[data-testid="user-menu"]')).to_be_visible()
    # A reload after logout does not bring the session back.
    logout(page)
    page.goto("/dashboard")
    expect(page).to_have_url(re.compile(r"/login\?next=/dashboard$"))


def test_wrong_password_shows_the_reason_next_to_the_form(page):
    email = new_email()
    register(page, email)
    logout(page)
    page.fill('[data-testid="email-input"]', email)
    page.fill('[data-testid="password-input"]', "not the password")
    page.click('[data-testid="login-button"]')
    expect(page.locator('[data-testid="form-error"]')).to_have_text("Invalid credentials")
    expect(page.locator('[data-testid="email-input"]')).to_have_value(email)


def test_project_and_configuration_journey(page):
    register(page, new_email())
    expect(page.get_by_text("No projects found")).to_be_visible()
    create_project(page, "E2E Test Project", "Test project for E2E testing")
    expect(page.get_by_role("heading", name="E2E Test Project")).to_be_visible()
    # All three environments are there before any variable.
    for name in ("development", "staging", "production"):
        expect(page.locator(f'[data-testid="environment-{name}"]')).to_contain_text("not created yet")

    add_variable(page, "NODE_ENV", "production")
    expect(page.locator("text=NODE_ENV").first).to_be_visible()
    expect(page.locator('[data-testid="variable-value"]', has_text="production")).to_be_visible()
    expect(page.locator('[data-testid="environment-development"]')).to_contain_text("1 variable")

    # A secret shows masked until the explicit reveal.
    add_variable(page, "API_KEY", "sk-live-42", "secret")
    row = page.locator('[data-testid="variable-row"][data-key="API_KEY"]')
    expect(row.locator('[data-testid="variable-value"]')).to_have_text("********")
    screenshot(page, "project-config-desktop")
    page.click('[data-testid="reveal-secrets-button"]')
    expect(row.locator('[data-testid="variable-value"]')).to_have_text("sk-live-42")
    expect(page.locator('[data-testid="secrets-revealed"]')).to_be_visible()

    # The API's validation error appears next to the field, and the form keeps what was typed.
    add_variable(page, "PORT", "eighty", "number")
    expect(page.locator('[data-testid="variable-value-error"]')).to_have_text(
        "Value must be a number for variableType number")
    expect(page.locator('[data-testid="variable-key-input"]')).to_have_value("PORT")
    screenshot(page, "project-config-error-desktop")

    # Edit, then delete.
    row = page.locator('[data-testid="variable-row"][data-key="NODE_ENV"]')
    row.locator('[data-testid="edit-variable-button"]').click()
    row.locator('[data-testid="edit-variable-value-input"]').fill("staging")
    row.locator('[data-testid="update-variable-button"]').click()
    expect(page.locator('[data-testid="variable-row"][data-key="NODE_ENV"] [data-testid="variable-value"]')).to_have_text("staging")
    row = page.locator('[data-testid="variable-row"][data-key="NODE_ENV"]')
    row.locator('[data-testid="edit-variable-button"]').click()
    row.locator('[data-testid="delete-variable-button"]').click()
    expect(page.locator('[data-testid="variable-row"][data-key="NODE_ENV"]')).to_have_count(0)

    # Import, then export (secrets masked in the download).
    page.fill('[data-testid="import-content-input"]', "LOG_LEVEL=debug\nWORKERS=4\n")
    page.click('[data-testid="import-button"]')
    expect(page.get_by_text("Imported 2 variables.")).to_be_visible()
    with page.expect_download() as download_info:
        page.click('[data-testid="export-dotenv-link"]')
    download = download_info.value
    assert download.suggested_filename == "e2e-test-project-development.env"
    assert open(download.path()).read() == 'API_KEY="********"\nLOG_LEVEL="debug"\nWORKERS="4"\n'

    # The audit log holds the reveal and verifies its chain.
    page.click('[data-testid="audit-tab"]')
    expect(page.locator('[data-testid="audit-chain-status"]')).to_contain_text("Intact")
    expect(page.locator('[data-testid="audit-log"]')).to_contain_text("reveal")
    screenshot(page, "project-audit-desktop")
    page.click('[data-testid="deploy-tab"]')
    expect(page.get_by_text("No deployments yet.")).to_be_visible()


def test_template_apply_with_overrides(page):
    register(page, new_email())
    create_project(page, "Templated")
    page.click('[data-testid="environment-staging"]')
    page.select_option('[data-testid="template-select"]', index=0)
    page.click('[data-testid="apply-template-button"]')
    error = page.locator('[data-testid="template-error"]')
    if error.count():
        # The chosen template has required variables without defaults: the error names them; give them.
        text = error.inner_text()
        assert text.startswith("validation failed: missing required variables: ")
        keys = text.split(": ", 2)[2].split(", ")
        page.fill('[data-testid="template-overrides-input"]', "\n".join(f"{key}=value-{i}" for i, key in enumerate(keys)))
        page.click('[data-testid="apply-template-button"]')
    expect(page.get_by_text("Template applied.")).to_be_visible()
    expect(page.locator('[data-testid="environment-staging"]')).not_to_contain_text("not created yet")


def test_multi_user_isolation(page, chromium, base_url):
    first = new_email()
    register(page, first)
    project_url = create_project(page, "User1 Private Project")
    # An incognito-like second context for the second user.
    other = chromium.new_context(base_url=base_url)
    try:
        intruder = other.new_page()
        register(intruder, new_email())
        response = intruder.goto(project_url)
        assert response.status == 404
        expect(intruder.locator("text=Access Denied")).to_be_visible()
        screenshot(intruder, "access-denied")
        unknown = intruder.goto(re.sub(r"[a-f0-9-]{36}$", "00000000-0000-4000-8000-000000000000", project_url))
        assert unknown.status == 404
        intruder.goto("/dashboard")
        expect(intruder.locator('[data-testid="project-card"]')).to_have_count(0)
        expect(intruder.locator("text=No projects found")).to_be_visible()
    finally:
        other.close()


def test_everything_without_javascript(chromium, base_url):
    """Forms post and the server redirects: the pages that need no live data work with JavaScript off."""
    context = chromium.new_context(base_url=base_url, java_script_enabled=False)
    try:
        page = context.new_page()
        email = new_email()
        register(page, email)
        logout(page)
        login(page, email)
        create_project(page, "No Script")
        add_variable(page, "PLAIN", "value")
        expect(page.locator('[data-testid="variable-row"][data-key="PLAIN"]')).to_be_visible()
        add_variable(page, "bad key", "x")
        expect(page.locator('[data-testid="variable-key-error"]')).to_contain_text("Key must match")
    finally:
        context.close()


def test_user_menu_and_forms_work_from_the_keyboard(page):
    register(page, new_email())
    # The skip link comes first, then the menu; Enter opens the user menu and the sign-out button is reachable.
    page.keyboard.press("Tab")
    expect(page.locator(".skip-link")).to_be_focused()
    page.locator('[data-testid="user-menu"] summary').focus()
    page.keyboard.press("Enter")
    expect(page.locator('[data-testid="logout-button"]')).to_be_visible()
    page.keyboard.press("Tab")
    expect(page.locator('[data-testid="logout-button"]')).to_be_focused()
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/login$"))
