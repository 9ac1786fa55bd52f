#!/usr/bin/env python3
"""CodeRunner's sample app: a small HTTP server that the quickstart runs under coderunner-agent.

GET /            a greeting built from the environment (GREETING, APP_NAME), so a config change shows
GET /burn?ms=N   burns N ms of CPU in the request (load for the scaler demo; capped at 2000 ms)
GET /env         the names (never the values) of the variables it was started with
It listens on $PORT (default 8080) on 127.0.0.1 with SO_REUSEPORT, so several instances share one port and
the kernel spreads new connections among them (the quickstart's instances do), and prints one line per request.
If API_KEY is set (a secret), it prints only a fingerprint of it, which shows the secret arrived decrypted.
"""
import hashlib
import http.server
import json
import os
import socket
import sys
import time
import urllib.parse

MAX_BURN_MS = 2000


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
            greeting = os.environ.get("GREETING", "hello")
            name = os.environ.get("APP_NAME", "sample-app")
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
        else:
            self._send(404, json.dumps({"error": "not found"}) + "\n")

    def log_message(self, fmt, *args):
        sys.stdout.write("%s %s\n" % (self.address_string(), fmt % args))
        sys.stdout.flush()


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self):
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def main():
    port = int(os.environ.get("PORT", "8080"))
    server = Server(("127.0.0.1", port), Handler)
    secret = os.environ.get("API_KEY")
    fingerprint = f" api_key=sha256:{hashlib.sha256(secret.encode()).hexdigest()[:12]}" if secret else ""
    print(f"sample-app listening on 127.0.0.1:{port} pid={os.getpid()} "
          f"greeting={os.environ.get('GREETING', 'hello')!r}{fingerprint}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
