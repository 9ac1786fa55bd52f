"""A real controller on loopback, its REST API and its WebSocket, for the WebSocket tests and benchmarks.

The controller runs with its local executor: every instance is a real coderunner-agent supervising
Tests/websocket/log_app.py, in a bubblewrap sandbox when we are root. Nothing here mocks a log line.
Every wait is bounded; every process started here is stopped here, by its own pid.
"""
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
APP = os.path.join(HERE, "log_app.py")
PASSWORD = "websocket-test-password"

# log_app.py's stamps: its own per-process counter and the CLOCK_MONOTONIC nanoseconds of the write.
STAMP = re.compile(r"n=(\d+) t=(\d+)")
WANT = re.compile(r"want=(\w+)/(\w+)")
ISO_MILLIS_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def bin_dir():
    """The binaries under test: $CODERUNNER_BIN_DIR, else the debug build's bin path."""
    if os.environ.get("CODERUNNER_BIN_DIR"):
        return os.environ["CODERUNNER_BIN_DIR"]
    out = subprocess.run(["swift", "build", "--show-bin-path"], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=True)
    return out.stdout.strip()


class ApiError(Exception):
    def __init__(self, method, path, status, body):
        super().__init__(f"{method} {path} answered {status}: {body[:300]!r}")
        self.status, self.body = status, body


class Api:
    """The controller's REST API, as one user (or none)."""

    def __init__(self, base, token=None):
        self.base, self.token = base, token

    def call(self, method, path, body=None, timeout=30):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.base + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raise ApiError(method, path, error.code, error.read().decode(errors="replace")) from None
        return json.loads(raw) if raw else None

    def data(self, method, path, body=None, timeout=30):
        return self.call(method, path, body, timeout)["data"]

    def register_and_login(self, email, password=PASSWORD):
        self.data("POST", "/api/auth/register", {"email": email, "password": password})
        return self.login(email, password)

    def login(self, email, password=PASSWORD):
        token = self.data("POST", "/api/auth/login", {"email": email, "password": password})["token"]
        return Api(self.base, token)

    def project(self, name):
        return self.data("POST", "/api/projects", {"name": name})["id"]

    def deployment(self, project, name, command):
        body = {"projectId": project, "environment": "production", "name": name, "command": command}
        return self.data("POST", "/api/deployments", body)["id"]

    def scale(self, deployment, instances):
        return self.data("POST", f"/api/deployments/{deployment}/scaling/override",
                         {"instances": instances, "reason": "websocket test"}, timeout=60)

    def running_instances(self, deployment):
        rows = self.data("GET", f"/api/deployments/{deployment}/instances")
        return sorted(r["instanceId"] for r in rows if r["state"] == "running" and not r["stale"])

    def wait_running(self, deployment, count, seconds=30):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            running = self.running_instances(deployment)
            if len(running) >= count:
                return running
            time.sleep(0.2)
        raise TimeoutError(f"{deployment}: {count} running instances not within {seconds}s")


def app_command(*flags):
    """The deployment command that runs log_app.py with these flags (sh -c runs it inside the sandbox)."""
    return "exec python3 -u " + " ".join(shlex.quote(a) for a in [APP, *map(str, flags)])


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Controller:
    """coderunner-controller serve on 127.0.0.1 with the local executor, in a fresh data directory.

    `extra` adds flags (benchmarks raise the login rate limit, lower the bcrypt cost, and say so)."""

    def __init__(self, binaries=None, extra=(), log_level="warning"):
        self.bin = binaries or bin_dir()
        self.data = tempfile.mkdtemp(prefix="coderunner-ws-")
        self.log_path = os.path.join(self.data, "controller.log")
        sandbox = ["--sandbox", "on", "--sandbox-read-only", HERE] if os.geteuid() == 0 else ["--sandbox", "off"]
        self.argv = [os.path.join(self.bin, "coderunner-controller"), "serve", "--listen", "127.0.0.1:0",
                     "--data-dir", self.data, "--registration", "open", "--executor", "local",
                     "--agent-binary", os.path.join(self.bin, "coderunner-agent"), "--poll-interval", "1",
                     "--log-level", log_level, *sandbox, *extra]
        self.process = None
        self.base = None

    def start(self, seconds=30):
        self.log = open(self.log_path, "w")
        self.process = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"controller exited {self.process.returncode}: {self.tail()}")
            match = re.search(r"listening on (http://[0-9.:]+)", open(self.log_path).read())
            if match:
                self.base = match.group(1)
                return self
            time.sleep(0.05)
        raise TimeoutError(f"controller did not listen within {seconds}s: {self.tail()}")

    @property
    def ws_url(self):
        return self.base.replace("http://", "ws://") + "/api/ws"

    @property
    def pid(self):
        return self.process.pid

    def tail(self, lines=30):
        """The controller log's last lines (for failure messages; gone once stop() removed the data)."""
        try:
            return "".join(open(self.log_path).readlines()[-lines:])
        except OSError:
            return ""

    def rss_kb(self):
        for row in open(f"/proc/{self.pid}/status"):
            if row.startswith("VmRSS:"):
                return int(row.split()[1])
        return 0

    def cpu_seconds(self):
        """User plus system CPU time the controller has used so far."""
        fields = open(f"/proc/{self.pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def agent_pids(self):
        """Agents this controller started: children whose command line names our data directory."""
        pids = []
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                cmdline = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"coderunner-agent") and any(self.data.encode() in a for a in cmdline):
                pids.append(int(entry))
        return pids

    def stop(self, seconds=30):
        """SIGTERM, as systemd would: the controller stops its agents, which stop their apps."""
        if self.process is None:
            return []
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(seconds)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        left = self.agent_pids()
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.log.close()
        if not os.environ.get("CODERUNNER_KEEP_DATA"):
            shutil.rmtree(self.data, ignore_errors=True)
        return left


class Socket:
    """One client connection to GET /api/ws (websockets' threaded client), recording every frame it reads.

    Frames are {"event": NAME, "data": {...}}; `frames` keeps (monotonic_ns at arrival, event, data) in order."""

    def __init__(self, url, token, **options):
        from websockets.sync.client import connect
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        # Entered as a context manager (websockets 17 warns about a bare connect()); close() exits it.
        self.ws = connect(url, additional_headers=headers, open_timeout=10, close_timeout=5, **options).__enter__()
        self.frames = []
        self.cursor = 0

    def send(self, event, data=None):
        self.ws.send(json.dumps({"event": event, "data": data if data is not None else {}}))

    def send_raw(self, text):
        self.ws.send(text)

    def _read(self, timeout):
        """The next frame, or None when none came within `timeout` seconds."""
        try:
            raw = self.ws.recv(timeout=max(timeout, 0))
        except TimeoutError:
            return None
        frame = json.loads(raw)
        self.frames.append((time.monotonic_ns(), frame["event"], frame.get("data")))
        return self.frames[-1]

    def expect(self, event, where=lambda data: True, seconds=10):
        """The data of the first frame not yet taken, old or new, of this event and matching `where`."""
        deadline = time.monotonic() + seconds
        while True:
            while self.cursor < len(self.frames):
                _, name, data = self.frames[self.cursor]
                self.cursor += 1
                if name == event and where(data):
                    return data
            left = deadline - time.monotonic()
            if left <= 0 or self._read(left) is None:
                seen = sorted({name for _, name, _ in self.frames})
                raise AssertionError(f"no {event} frame within {seconds}s (seen: {seen})")

    def read_for(self, seconds):
        """Reads every frame arriving in the next `seconds`; returns them."""
        first = len(self.frames)
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            self._read(left)
        return self.frames[first:]

    def events(self, event, since=0):
        return [data for _, name, data in self.frames[since:] if name == event]

    def close(self):
        self.ws.close()


def stamp(message):
    """(n, monotonic write ns) from a log_app.py line."""
    match = STAMP.search(message)
    assert match, f"not a log_app.py line: {message!r}"
    return int(match.group(1)), int(match.group(2))


def percentile(values, p):
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, int(round(p / 100 * len(ordered))) - 1))]
