// The agent's health check against real apps: http (the sample app on loopback) and command (run beside the app,
// refused in a sandbox, see Sandbox.prepareProbe), each passing, failing with its reason, and timing out. The config comes
// from a small stand-in for the controller's agent API (`StubController`): the rollout strategy that sets
// `healthCheck` belongs to the controller's half of issue 15, and the agent's part is what is tested here.
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

/// Serves `/api/agent/v1/*` from `config.json` in its directory (rewritten by the test): register, heartbeats and
/// reports are accepted, and the config long-poll holds until the file's version passes `index`.
final class StubController {
    static let script = #"""
        import http.server, json, os, sys, time, urllib.parse
        directory = sys.argv[1]
        def now(): return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        def current():
            with open(os.path.join(directory, "config.json")) as f: return json.load(f)
        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            def answer(self, data):
                body = json.dumps({"success": True, "data": data, "timestamp": now()} if data is not None
                                  else {"success": True, "timestamp": now()}).encode()
                self.send_response(200); self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                self.answer({"instanceId": "i-1", "heartbeatIntervalSeconds": 10} if self.path.endswith("/register") else None)
            def do_GET(self):
                query = urllib.parse.parse_qs(urllib.parse.urlparse(self.path).query)
                index = int(query.get("index", ["-1"])[0])
                deadline = time.time() + 25
                while current()["version"] <= index and time.time() < deadline: time.sleep(0.02)
                self.answer(current())
            def log_message(self, *args): pass
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        print(server.server_address[1], flush=True)
        server.serve_forever()
        """#

    let directory: URL
    let process: Spawned
    let base: String

    init(directory: URL) throws {
        self.directory = directory
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        process = try Spawned("/usr/bin/env", ["python3", "-c", Self.script, directory.path])
        let process = process
        _ = TestSupport.waitUntil(timeout: .seconds(30)) { process.text.contains("\n") }
        guard let port = process.text.split(separator: "\n").first.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) else {
            throw E2EError.failed("the stub controller did not start: \(process.text)")
        }
        base = "http://127.0.0.1:\(port)"
    }

    /// Publishes `config` (atomically: a long poll never reads half a file).
    func publish(_ config: AgentConfig) throws {
        let data = try JSONEncoder().encode(config)
        let temporary = directory.appendingPathComponent("config.json.tmp")
        try data.write(to: temporary)
        guard rename(temporary.path, directory.appendingPathComponent("config.json").path) == 0 else {
            throw E2EError.failed("rename: \(String(cString: strerror(errno)))")
        }
    }

    func stop() { process.hardKill() }
}

@Suite(.serialized)
struct AgentHealthCheckTests {
    static let wait: Duration = .seconds(30)

    static func config(_ version: Int64, port: Int, check: AgentHealthCheck) -> AgentConfig {
        let variables = ["PORT": "\(port)"]
        return AgentConfig(deploymentId: "d1", version: version,
                           checksum: String(repeating: "0", count: 64), variables: variables, required: [], healthCheck: check)
    }

    /// Runs the sample app under an agent fed by a stub controller, publishes each check in turn, and waits for
    /// the report each one gets.
    func check(_ cases: [(AgentHealthCheck, ok: Bool, reason: String?)], extra: [String] = []) throws {
        let dir = try TestSupport.makeTemporaryDirectory("e2e-health")
        defer { try? FileManager.default.removeItem(at: dir) }
        let stub = try StubController(directory: dir.appendingPathComponent("stub"))
        defer { stub.stop() }
        let port = TestSupport.freeLoopbackPort()
        try stub.publish(Self.config(1, port: port, check: cases[0].0))
        let tokenFile = dir.appendingPathComponent("token")
        try Data("stub-token".utf8).write(to: tokenFile)
        chmod(tokenFile.path, 0o600)
        let app = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("examples/sample-app/app.py").path
        let agent = try AgentProcess(options: [
            "--controller", stub.base, "--token-file", tokenFile.path, "--state-dir", dir.appendingPathComponent("state").path,
            "--sample-interval", "0.2", "--grace-period", "2", "--inherit-env", "PATH",
        ] + extra, command: ["python3", app], metricsListen: "127.0.0.1:0", stdout: .discard, in: dir)
        defer { _ = agent.stop() }
        guard agent.metricsAddress() != nil else { throw E2EError.failed("agent did not announce its port: \(agent.stderr)") }
        for (i, c) in cases.enumerated() {
            let version = Int64(i + 1)
            if i > 0 { try stub.publish(Self.config(version, port: port, check: c.0)) }
            var seen: AgentStatus?
            let reported = TestSupport.waitUntil(timeout: Self.wait) {
                seen = try? agent.status()
                guard let health = seen?.health else { return false }
                return health.version == version && health.ok == c.ok
            }
            #expect(reported, "version \(version): \(String(describing: seen?.health)) \(agent.stderr)")
            let health = try #require(seen?.health)
            #expect(health.reason == c.reason)
            #expect(health.childStartedAt == seen?.startedAt, "the report names the running child")
        }
    }

    @Test("http: 2xx passes; another status, and a timeout, fail with the reason")
    func http() throws {
        try check([
            (AgentHealthCheck(http: "/healthz", timeoutMs: 2000), true, nil),
            (AgentHealthCheck(http: "/missing", timeoutMs: 2000), false, "GET /missing answered 404"),
            (AgentHealthCheck(http: "/burn?ms=1500", timeoutMs: 200), false, "timed out after 200 ms"),
        ])
    }

    @Test("command: exit 0 passes; a non-zero exit and a timeout fail with the reason, and the timed-out check is killed")
    func command() throws {
        try check([
            (AgentHealthCheck(command: ["sh", "-c", "exit 0"], timeoutMs: 5000), true, nil),
            (AgentHealthCheck(command: ["sh", "-c", "exit 2"], timeoutMs: 5000), false, "sh exited with status 2"),
            (AgentHealthCheck(command: ["sleep", "7"], timeoutMs: 300), false, "timed out after 300 ms"),
        ])
        #expect(processes(named: "sleep", argument: "7").isEmpty, "the timed-out check was killed")
    }

    @Test("command in a sandbox: refused with the reason (it would run outside the seccomp filter and the cgroups)")
    func commandInSandboxIsRefused() throws {
        let dir = try TestSupport.makeTemporaryDirectory("e2e-health-sandbox")
        defer { try? FileManager.default.removeItem(at: dir) }
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        try check([
            (AgentHealthCheck(command: ["sh", "-c", "exit 0"], timeoutMs: 5000), false,
             "could not run the check: a command health check does not run in a sandbox: it would escape the sandbox's "
                + "seccomp filter and cgroup limits; use an http check"),
        ], extra: ["--sandbox", "--instance", "health-\(getpid())", "--sandbox-dir", dir.appendingPathComponent("app").path,
                   "--sandbox-read-only", repository.appendingPathComponent("examples").path])
    }
}

/// Pids of processes named `name` whose first argument is `argument`.
private func processes(named name: String, argument: String) -> [Int32] {
    let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
    return entries.compactMap { entry in
        guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
        let words = data.split(separator: 0).map { String(decoding: $0, as: UTF8.self) }
        return words.count >= 2 && words[0].hasSuffix(name) && words[1] == argument ? pid : nil
    }
}
