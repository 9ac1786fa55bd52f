"""The dashboard's session on GET /api/ws: its cookie counts only together with an Origin naming the controller,
an API token in the cookie is refused, and a logout through the dashboard closes the sockets the session opened."""
import http.client
import json
import re
import urllib.parse

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from harness import PASSWORD, Socket

COOKIE = "cr_session"


class Dashboard:
    """The dashboard's forms over plain HTTP, as a browser posts them (no redirects followed)."""

    def __init__(self, base):
        self.base = base
        self.netloc = urllib.parse.urlsplit(base).netloc
        self.cookies = {}

    def request(self, method, path, form=None):
        connection = http.client.HTTPConnection(self.netloc, timeout=30)
        headers = {"Origin": self.base}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if form is not None:
            body = urllib.parse.urlencode(form)
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        text = response.read().decode()
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if value and "Max-Age=0" not in header:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        connection.close()
        return response.status, text

    def login(self, email, password=PASSWORD):
        self.request("GET", "/login")
        status, _ = self.request("POST", "/login", {"email": email, "password": password,
                                                     "_csrf": self.cookies["cr_form"]})
        assert status == 303 and COOKIE in self.cookies, f"dashboard login answered {status}"
        return self.cookies[COOKIE]

    def logout(self):
        status, page = self.request("GET", "/dashboard")
        assert status == 200
        csrf = re.search(r'name="_csrf" value="([0-9a-f]{64})"', page).group(1)
        status, _ = self.request("POST", "/logout", {"_csrf": csrf})
        assert status == 303


class CookieSocket(Socket):
    """A socket opened as the dashboard's page opens it: the session cookie, and the page's Origin (or another)."""

    def __init__(self, url, cookie, origin):
        from websockets.sync.client import connect
        headers = {"Cookie": f"{COOKIE}={cookie}"} if cookie else {}
        self.ws = connect(url, additional_headers=headers, origin=origin, open_timeout=10, close_timeout=5).__enter__()
        self.frames = []
        self.cursor = 0


def refused_status(controller, cookie, origin):
    with pytest.raises(InvalidStatus) as refused:
        CookieSocket(controller.ws_url, cookie, origin).close()
    return refused.value.response.status_code, refused.value.response.body


def test_the_session_cookie_with_the_pages_origin_is_accepted(controller, owner, chatty):
    cookie = Dashboard(controller.base).login("owner@example.com")
    socket = CookieSocket(controller.ws_url, cookie, origin=controller.base)
    try:
        socket.send("subscribe_status", {"deploymentId": chatty})
        assert socket.expect("subscription_confirmed", seconds=5) == {"type": "status", "deploymentId": chatty}
        assert socket.expect("status_update", seconds=5)["status"] == "RUNNING"
    finally:
        socket.close()


def test_the_cookie_without_an_origin_is_refused_with_401(controller, owner):
    cookie = Dashboard(controller.base).login("owner@example.com")
    status, body = refused_status(controller, cookie, origin=None)
    assert status == 401 and json.loads(body)["error"] == "Authentication failed"


def test_the_cookie_from_another_origin_is_refused_with_403(controller, owner):
    cookie = Dashboard(controller.base).login("owner@example.com")
    status, body = refused_status(controller, cookie, origin="http://evil.example")
    assert status == 403 and json.loads(body)["error"] == "Origin not allowed"


def test_an_api_token_in_the_cookie_is_refused(controller, owner):
    # A valid API token, but the cookie holds only dashboard sessions: the same 401 as an unknown one.
    status, _ = refused_status(controller, owner.token, origin=controller.base)
    assert status == 401


def test_a_dashboard_logout_closes_the_sessions_socket_with_4401(controller, owner, chatty):
    dashboard = Dashboard(controller.base)
    cookie = dashboard.login("owner@example.com")
    socket = CookieSocket(controller.ws_url, cookie, origin=controller.base)
    socket.send("subscribe_logs", {"deploymentId": chatty})
    socket.expect("subscription_confirmed", seconds=5)
    dashboard.logout()
    with pytest.raises(ConnectionClosed) as closed:
        socket.read_for(5)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    assert refused_status(controller, cookie, origin=controller.base)[0] == 401
