#!/usr/bin/env python3
"""CodeRunner's sample app: a small HTTP server that the quickstart runs under coderunner-agent.

GET /            a greeting built from the environment (GREETING, APP_NAME), so a config change shows
GET /burn?ms=N   burns N ms of CPU in the request (load for the scaler demo; capped at 2000 ms)
GET /env         the names (never the values) of the variables it was started with
GET /healthz     200 "ok" (the rollout's health check); HEALTHZ_STATUS=503 (any status) makes it answer that
                 instead, which shows a change that fails the check being rolled back
It listens on $PORT (default 8080) on 127.0.0.1 with SO_REUSEPORT, so several instances share one port and
the kernel spreads new connections among them (the quickstart's instances do), and prints one line per request.
If API_KEY is set (a secret), it prints only a fingerprint of it, which shows the secret arrived decrypted.

Signals. SIGHUP re-reads the config file the agent renders (CODERUNNER_CONFIG_FILE, from --config-file): the
greeting changes without a restart. SIGTERM drains: the app stops accepting, serves the connections already
waiting and the requests in flight, then exits 0, so that a rolling restart loses no request.
"""
import hashlib
import http.server
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

MAX_BURN_MS = 2000

# The values that a SIGHUP may change; read by the request threads, replaced whole by the main thread.
settings = {}


def parse_dotenv(text):
    """The agent's dotenv form: KEY="value" lines with \\ \" \n \r \t \$ escaped (plain KEY=value accepted too)."""
    escapes = {"n": "\n", "r": "\r", "t": "\t", "\\": "\\", '"': '"', "$": "$"}
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, raw = line.split("=", 1)
        if raw.startswith('"') and raw.endswith('"') and len(raw) >= 2:
            out, i, body = [], 0, raw[1:-1]
            while i < len(body):
                if body[i] == "\\" and i + 1 < len(body):
                    out.append(escapes.get(body[i + 1], body[i + 1]))
                    i += 2
                else:
                    out.append(body[i])
                    i += 1
            raw = "".join(out)
        values[key.strip()] = raw
    return values


def load_settings():
    """The environment, with the agent's config file on top when it has one (it holds the newest values)."""
    values = dict(os.environ)
    path = os.environ.get("CODERUNNER_CONFIG_FILE")
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
            values.update(json.loads(text) if text.lstrip().startswith("{") else parse_dotenv(text))
        except (OSError, ValueError) as e:
            print(f"sample-app: cannot read {path}: {e}", file=sys.stderr, flush=True)
    return values


class Handler(http.server.BaseHTTPRequestHandler):
    def _send(self, status, body, content_type="application/json"):
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        url = urllib.parse.urlparse(self.path)
        if url.path == "/":
            current = settings
            greeting = current.get("GREETING", "hello")
            name = current.get("APP_NAME", "sample-app")
            self._send(200, json.dumps({"app": name, "greeting": greeting, "pid": os.getpid()}) + "\n")
        elif url.path == "/burn":
            try:
                ms = min(MAX_BURN_MS, max(0, int(urllib.parse.parse_qs(url.query).get("ms", ["100"])[0])))
            except ValueError:
                self._send(400, json.dumps({"error": "ms must be an integer"}) + "\n")
                return
            deadline = time.process_time() + ms / 1000
            x = 0
            while time.process_time() < deadline:
                x += 1
            self._send(200, json.dumps({"burnedMs": ms}) + "\n")
        elif url.path == "/env":
            self._send(200, json.dumps(sorted(os.environ.keys())) + "\n")
        elif url.path == "/healthz":
            try:
                status = int(settings.get("HEALTHZ_STATUS") or 200)
            except ValueError:
                status = 200
            self._send(status, "ok\n" if status < 300 else "unhealthy\n", "text/plain")
        else:
            self._send(404, json.dumps({"error": "not found"}) + "\n")

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


class Server(http.server.ThreadingHTTPServer):
    # server_close() waits for the requests in flight: the drain on SIGTERM.
    daemon_threads = False
    block_on_close = True

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def drain(server):
    """Serves the connections the kernel already accepted into the backlog, then waits for every request in flight.

    The kernel keeps handing this listener its share of the port's new connections until it is closed (SO_REUSEPORT
    spreads them over every listener of the port), and closing it resets whatever it queued meanwhile: so the
    backlog is emptied right before the close, leaving a window of microseconds. Linux's net.ipv4.tcp_migrate_req=1
    moves what the kernel queues in that window to another instance's listener instead of resetting it: the host's
    setting, not the app's, which the controller's local executor turns on."""
    server.socket.setblocking(False)
    while True:
        try:
            request, address = server.socket.accept()
        except (BlockingIOError, OSError):
            break
        request.setblocking(True)
        server.process_request(request, address)
    server.server_close()


def main():
    global settings

    def reload(signum, frame):
        global settings
        settings = load_settings()
        print(f"sample-app reloaded its config on SIGHUP: greeting={settings.get('GREETING', 'hello')!r}", flush=True)

    # Before anything is announced: a SIGHUP that came before the handler would end the app (its default action).
    signal.signal(signal.SIGHUP, reload)
    settings = load_settings()
    port = int(os.environ.get("PORT", "8080"))
    server = Server(("127.0.0.1", port), Handler)

    def stop(signum, frame):
        # shutdown() waits for serve_forever to return, which runs in this very thread: ask from another one.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    secret = os.environ.get("API_KEY")
    fingerprint = f" api_key=sha256:{hashlib.sha256(secret.encode()).hexdigest()[:12]}" if secret else ""
    print(f"sample-app listening on 127.0.0.1:{port} pid={os.getpid()} "
          f"greeting={settings.get('GREETING', 'hello')!r}{fingerprint}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        drain(server)
        print("sample-app drained: every request in flight was answered", flush=True)


if __name__ == "__main__":
    main()
