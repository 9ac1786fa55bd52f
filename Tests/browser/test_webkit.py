"""WebKit (Safari's engine) through WebKitGTK's WebDriver and Selenium: the login journey, the phone layout and
axe-core. WebKitGTK draws on X11, so the test starts its own Xvfb."""
import os
import shutil
import subprocess
from pathlib import Path

import axe_playwright_python
import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait
from selenium.webdriver.webkitgtk.options import Options
from selenium.webdriver.webkitgtk.service import Service

from conftest import PASSWORD, SCREENSHOTS, new_email

DRIVER = shutil.which("WebKitWebDriver")
MINIBROWSER = next(iter(Path("/usr/lib").glob("*/webkit2gtk-4.*/MiniBrowser")), None)
AXE = Path(axe_playwright_python.__file__).with_name("axe.min.js")

pytestmark = [
    pytest.mark.skipif(not DRIVER or not MINIBROWSER or not shutil.which("Xvfb"),
                       reason="needs webkit2gtk-driver and xvfb (scripts/test-browser installs them)"),
    # Selenium's own WebKitGTK driver class still uses a constructor argument Selenium deprecated.
    pytest.mark.filterwarnings("ignore:setting remote_server_addr:DeprecationWarning"),
]


@pytest.fixture(scope="module")
def display():
    # -displayfd: Xvfb picks a free display number and writes it to us once it accepts connections.
    read, write = os.pipe()
    server = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1280x1024x24", "-nolisten", "tcp"],
                              pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    yield f":{number}"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def webkit(display):
    options = Options()
    options.binary_location = str(MINIBROWSER)
    options.add_argument("--automation")
    service = Service(executable_path=DRIVER, env={**os.environ, "DISPLAY": display})
    driver = webdriver.WebKitGTK(options=options, service=service)
    driver.set_window_size(1280, 900)
    yield driver
    driver.quit()


def wait(driver, condition, timeout=15):
    return WebDriverWait(driver, timeout).until(condition)


def by_testid(name):
    return (By.CSS_SELECTOR, f'[data-testid="{name}"]')


def fill_and_submit(driver, base_url, path, button, email):
    driver.get(base_url + path)
    driver.find_element(*by_testid("email-input")).send_keys(email)
    driver.find_element(*by_testid("password-input")).send_keys(PASSWORD)
    driver.find_element(*by_testid(button)).click()
    wait(driver, EC.url_to_be(base_url + "/dashboard"))


def axe_violations(driver):
    driver.execute_script(AXE.read_text())
    result = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {resultTypes: ['violations']}).then(r => done(r.violations.map(v => v.id + ': ' + v.help)));")
    return result


def test_login_journey_in_webkit(webkit, base_url):
    email = new_email()
    fill_and_submit(webkit, base_url, "/register", "register-button", email)
    assert webkit.find_element(*by_testid("user-menu")).is_displayed()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    webkit.save_screenshot(str(SCREENSHOTS / "webkit-dashboard.png"))
    webkit.find_element(*by_testid("user-menu")).click()
    wait(webkit, EC.visibility_of_element_located(by_testid("logout-button"))).click()
    wait(webkit, EC.url_to_be(base_url + "/login"))
    fill_and_submit(webkit, base_url, "/login", "login-button", email)
    assert webkit.find_element(*by_testid("user-menu")).is_displayed()
    assert axe_violations(webkit) == []


def test_phone_layout_and_axe_in_webkit(webkit, base_url):
    webkit.set_window_size(375, 700)
    webkit.get(base_url + "/login")
    button = wait(webkit, EC.visibility_of_element_located(by_testid("mobile-menu-button")))
    assert not webkit.find_element(*by_testid("sidebar")).is_displayed()
    button.click()
    wait(webkit, EC.visibility_of_element_located(by_testid("mobile-menu")))
    webkit.save_screenshot(str(SCREENSHOTS / "webkit-login-phone.png"))
    assert axe_violations(webkit) == []
