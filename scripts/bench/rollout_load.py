"""A closed-loop HTTP load generator on loopback, for counting the requests a config rollout loses.

Each client opens a new connection per request (no keep-alive: every request meets the listeners as they are at that
moment, which is what a restarting instance puts at risk), sends `GET /`, reads the whole answer, and at once sends
the next. A request fails when the connection is refused or reset, the answer is not 2xx, or it takes longer than the
timeout. Bounded in time and in count; it only ever connects to 127.0.0.1.
"""
import http.client
import socket
import threading
import time

KINDS = ("refused", "reset", "timeout", "status", "other")


class LoadGenerator:
    def __init__(self, port, clients=8, timeout=2.0, max_seconds=180.0, max_requests=500_000, path="/"):
        self.port, self.clients, self.timeout, self.path = port, clients, timeout, path
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.lock = threading.Lock()
        self.sent = 0
        self.ok = 0
        self.failures = {kind: 0 for kind in KINDS}
        # The first few failures, for a reader who wants to know what happened (kind, seconds since start, detail).
        self.examples = []
        self._stop = threading.Event()
        self._threads = []
        self.started = None
        self.elapsed = 0.0

    def _one(self):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        try:
            conn.request("GET", self.path, headers={"Connection": "close"})
            response = conn.getresponse()
            response.read()
            return None if 200 <= response.status < 300 else ("status", f"HTTP {response.status}")
        except ConnectionRefusedError as e:
            return "refused", str(e)
        except (ConnectionResetError, BrokenPipeError, http.client.RemoteDisconnected, http.client.BadStatusLine) as e:
            return "reset", f"{type(e).__name__}: {e}"
        except (socket.timeout, TimeoutError) as e:
            return "timeout", str(e)
        except OSError as e:
            return "other", f"{type(e).__name__}: {e}"
        finally:
            conn.close()

    def _run(self):
        deadline = self.started + self.max_seconds
        while not self._stop.is_set() and time.monotonic() < deadline:
            with self.lock:
                if self.sent >= self.max_requests:
                    return
                self.sent += 1
            failure = self._one()
            with self.lock:
                if failure is None:
                    self.ok += 1
                else:
                    self.failures[failure[0]] += 1
                    if len(self.examples) < 10:
                        self.examples.append((failure[0], round(time.monotonic() - self.started, 3), failure[1]))

    def start(self):
        self.started = time.monotonic()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(self.clients)]
        for t in self._threads:
            t.start()
        return self

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        self.elapsed = time.monotonic() - self.started
        return self

    @property
    def failed(self):
        return sum(self.failures.values())

    def summary(self):
        kinds = ", ".join(f"{k} {v}" for k, v in self.failures.items() if v) or "none"
        ratio = self.failed / self.sent if self.sent else 0.0
        return (f"{self.sent} requests in {self.elapsed:.1f} s ({self.sent / max(self.elapsed, 1e-9):.0f}/s), "
                f"{self.failed} failed ({ratio:.4%}; {kinds})")
