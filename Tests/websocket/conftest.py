"""One real controller for the whole session, two users, and a deployment whose two instances write lines.

The controller's --bcrypt-cost 4 and --auth-rate-limit 1000 only make registering a few users fast; the
WebSocket path under test is the same at any cost."""
import itertools

import pytest

from harness import Api, Controller, Socket, app_command

_names = itertools.count(1)


@pytest.fixture(scope="session")
def controller():
    server = Controller(extra=["--bcrypt-cost", "4", "--auth-rate-limit", "1000"]).start()
    yield server
    left = server.stop()
    assert left == [], f"agents left running after the controller stopped: {left}\n{server.tail()}"


@pytest.fixture(scope="session")
def owner(controller):
    return Api(controller.base).register_and_login("owner@example.com")


@pytest.fixture(scope="session")
def stranger(controller):
    return Api(controller.base).register_and_login("stranger@example.com")


@pytest.fixture(scope="session")
def project(owner):
    return owner.project("websocket-tests")


@pytest.fixture(scope="session")
def make_deployment(owner, project):
    """Creates a deployment of log_app.py with these flags and scales it to `instances` (0: left stopped)."""

    def make(*flags, instances=1):
        deployment = owner.deployment(project, f"app-{next(_names)}", app_command(*flags))
        if instances:
            owner.scale(deployment, instances)
            owner.wait_running(deployment, instances)
        return deployment

    return make


@pytest.fixture(scope="session")
def chatty(make_deployment):
    """Two instances, 20 lines/s each, every line shape: the deployment most log tests follow."""
    return make_deployment("--rate", 20, instances=2)


@pytest.fixture
def connect(controller, owner):
    """Opens sockets (the owner's by default) and closes them after the test."""
    opened = []

    def open_socket(token=None, **options):
        socket = Socket(controller.ws_url, token or owner.token, **options)
        opened.append(socket)
        return socket

    yield open_socket
    for socket in opened:
        try:
            socket.close()
        except Exception:
            pass
