"""Locust scenarios of the load test: the weighted mix of user journeys the controller must serve at 200
concurrent users with p95 <= 200 ms and no errors. Run by scripts/bench/load-test (which starts the controller,
creates the users and sets the environment below); not meant to be run alone.

  authentication 30   log in, GET /api/auth/me
  projects       40   log in, list, create, read a project; add an environment and a variable, read it back
  deployments    20   log in, create a deployment, poll its status 5 times, read its logs (and, where the
                      controller has the lifecycle, destroy it again)
  websocket      10   log in, open /api/ws, subscribe to logs, 10 s, subscribe to status, 15 s, unsubscribe

Environment: LOAD_USERS (JSON file: [{email, password, projectId, deploymentId}]), LOAD_WAIT_MIN/MAX (think time
between journeys, s), LOAD_WITH_LOGS, LOAD_WITH_DELETE and LOAD_WITH_WS (1 when the controller serves those routes).
"""
import itertools
import json
import os
import random
import string
import time

from locust import FastHttpUser, between, task

ACCOUNTS = json.load(open(os.environ["LOAD_USERS"]))
WITH_LOGS = os.environ.get("LOAD_WITH_LOGS") == "1"
WITH_DELETE = os.environ.get("LOAD_WITH_DELETE") == "1"
# A controller without the WebSocket runs the other journeys only (the driver prints which ran).
WITH_WS = os.environ.get("LOAD_WITH_WS", "1") == "1"
_next_account = itertools.count()


def random_string(n=8):
    return "".join(random.choices(string.ascii_lowercase + string.digits, k=n))


class PlanUser(FastHttpUser):
    wait_time = between(float(os.environ.get("LOAD_WAIT_MIN", "1")), float(os.environ.get("LOAD_WAIT_MAX", "3")))
    # One connection per user, like a browser tab; requests time out well past any goal.
    connection_timeout = 10
    network_timeout = 30

    def on_start(self):
        self.account = ACCOUNTS[next(_next_account) % len(ACCOUNTS)]
        self.token = None

    def auth(self):
        return {"Authorization": f"Bearer {self.token}"}

    def expect(self, method, path, name, status=200, **kwargs):
        """A request that fails (and counts as an error) unless it answers `status`; returns its data."""
        with self.client.request(method, path, name=name, catch_response=True, **kwargs) as response:
            if response.status_code != status:
                response.failure(f"{response.status_code}: {(response.text or '')[:200]}")
                return None
            try:
                body = response.json()
            except Exception:
                return None
            return body.get("data") if isinstance(body, dict) else body

    def login(self):
        data = self.expect("POST", "/api/auth/login", "/api/auth/login",
                           json={"email": self.account["email"], "password": self.account["password"]})
        self.token = data["token"] if data else None
        return self.token is not None

    @task(30)
    def authentication(self):
        if self.login():
            self.expect("GET", "/api/auth/me", "/api/auth/me", headers=self.auth())

    @task(40)
    def project_operations(self):
        if not self.login():
            return
        self.expect("GET", "/api/projects", "/api/projects", headers=self.auth())
        project = self.expect("POST", "/api/projects", "/api/projects", status=201, headers=self.auth(),
                              json={"name": f"Load Test Project {random_string()}",
                                    "description": "Project created during load testing"})
        if not project:
            return
        self.expect("GET", f"/api/projects/{project['id']}", "/api/projects/:id", headers=self.auth())
        config = self.expect("POST", f"/api/config/projects/{project['id']}/environments",
                             "/api/config/projects/:id/environments", status=201, headers=self.auth(),
                             json={"environment": "development", "name": "load"})
        if not config:
            return
        self.expect("PUT", f"/api/config/environments/{config['id']}/variables/LOAD_LEVEL",
                    "/api/config/environments/:id/variables/:key", headers=self.auth(),
                    json={"value": random_string(), "variableType": "string"})
        self.expect("GET", f"/api/config/environments/{config['id']}", "/api/config/environments/:id",
                    headers=self.auth())

    @task(20)
    def deployment_lifecycle(self):
        if not self.login():
            return
        deployment = self.expect("POST", "/api/deployments", "/api/deployments", status=201,
                                 headers=self.auth(),
                                 json={"projectId": self.account["projectId"], "environment": "development",
                                       "runtimeType": "nodejs"})
        if not deployment:
            return
        for _ in range(5):
            self.expect("GET", f"/api/deployments/{deployment['id']}/status", "/api/deployments/:id/status",
                        headers=self.auth())
        if WITH_LOGS:
            self.expect("GET", f"/api/deployments/{deployment['id']}/logs?tail=100",
                        "/api/deployments/:id/logs", headers=self.auth())
        if WITH_DELETE:
            self.expect("DELETE", f"/api/deployments/{deployment['id']}", "/api/deployments/:id",
                        headers=self.auth())

    @task(10)
    def websocket(self):
        if not WITH_WS or not self.login():
            return
        from websockets.sync.client import connect
        url = self.host.replace("http://", "ws://") + "/api/ws"
        deployment = self.account["deploymentId"]
        fire = self.environment.events.request.fire
        started = time.perf_counter()
        try:
            ws = connect(url, additional_headers=self.auth(), open_timeout=10, close_timeout=5).__enter__()
        except Exception as error:
            # The status alone: websockets' message lists every header, which would split one error in many.
            status = getattr(getattr(error, "response", None), "status_code", None)
            fire(request_type="WS", name="/api/ws connect", response_time=(time.perf_counter() - started) * 1000,
                 response_length=0, exception=RuntimeError(f"HTTP {status}") if status else error, context={})
            return
        fire(request_type="WS", name="/api/ws connect", response_time=(time.perf_counter() - started) * 1000,
             response_length=0, exception=None, context={})
        try:
            for event, think in [("subscribe_logs", 10), ("subscribe_status", 15)]:
                started = time.perf_counter()
                ws.send(json.dumps({"event": event, "data": {"deploymentId": deployment}}))
                error = self.confirmation(ws, deployment)
                fire(request_type="WS", name=f"/api/ws {event} -> confirmed",
                     response_time=(time.perf_counter() - started) * 1000, response_length=0, exception=error,
                     context={})
                self.read_for(ws, think)
            ws.send(json.dumps({"event": "unsubscribe_logs", "data": {"deploymentId": deployment}}))
        except Exception as error:
            fire(request_type="WS", name="/api/ws connection", response_time=0, response_length=0, exception=error,
                 context={})
        finally:
            ws.close()

    @staticmethod
    def confirmation(ws, deployment, seconds=10):
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                frame = json.loads(ws.recv(timeout=left))
            except TimeoutError:
                break
            if frame.get("event") == "subscription_confirmed" and frame["data"].get("deploymentId") == deployment:
                return None
            if frame.get("event") in ("subscription_error", "error"):
                return RuntimeError(f"{frame['event']}: {frame.get('data')}")
        return TimeoutError(f"no subscription_confirmed within {seconds}s")

    @staticmethod
    def read_for(ws, seconds):
        """Thinks for `seconds` while reading what the subscription sends, as a dashboard would."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                ws.recv(timeout=left)
            except TimeoutError:
                return
