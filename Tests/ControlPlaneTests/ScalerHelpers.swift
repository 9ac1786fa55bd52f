// Helpers for the scaler tests: a real loopback HTTP listener (python3's http.server in a child process)
// that records every request and answers with a fixed status and body, and a harness that builds the
// controller with a chosen executor.
import ChildProcess
import ControlPlane
import Foundation
import Hummingbird
import HummingbirdTesting
import Testing
import TestSupport

/// A python3 http.server on 127.0.0.1:<ephemeral>, started and stopped by the test. Every request is appended
/// to `requests.jsonl` as {"method", "path", "headers", "body"} (body base64).
final class LoopbackListener: Sendable {
    let port: Int
    let directory: URL
    private let process: ExitWatch
    var pid: Int32 { process.pid }

    static let script = #"""
import base64, json, sys, http.server
status, body, log = int(sys.argv[1]), open(sys.argv[2], 'rb').read(), sys.argv[3]
location = sys.argv[4] if len(sys.argv) > 4 else ''

class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    def handle_any(self):
        n = int(self.headers.get('Content-Length') or 0)
        data = self.rfile.read(n) if n else b''
        with open(log, 'a') as f:
            f.write(json.dumps({'method': self.command, 'path': self.path,
                                'headers': {k.lower(): v for k, v in self.headers.items()},
                                'body': base64.b64encode(data).decode()}) + '\n')
        self.send_response(status)
        self.send_header('Content-Type', 'application/json')
        if location: self.send_header('Location', location)
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    do_GET = do_POST = do_PUT = handle_any
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
print(s.server_address[1], flush=True)
s.serve_forever()
"""#

    /// `location`: a Location header on every answer (with a 3xx status, a redirect).
    init(status: Int = 200, body: String = #"{"ok":true}"#, location: String? = nil) throws {
        directory = try TestSupport.makeTemporaryDirectory("listener")
        let scriptURL = directory.appendingPathComponent("server.py")
        try Self.script.write(to: scriptURL, atomically: true, encoding: .utf8)
        let bodyURL = directory.appendingPathComponent("body")
        try body.write(to: bodyURL, atomically: true, encoding: .utf8)
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw POSIXError(.EMFILE) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        let arguments = ["python3", scriptURL.path, String(status), bodyURL.path, directory.appendingPathComponent("requests.jsonl").path]
            + (location.map { [$0] } ?? [])
        let spawned = Result { try ChildProcess.spawn("/usr/bin/env", arguments, stdin: devNull, stdout: fds[1], stderr: devNull) }
        close(devNull)
        close(fds[1])
        let out = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        let process = ExitWatch(pid: try spawned.get())
        // The first line is the bound port; python prints it once the socket listens.
        var line = Data()
        while true {
            let byte = out.readData(ofLength: 1)
            if byte.isEmpty || byte == Data("\n".utf8) { break }
            line += byte
        }
        guard let port = Int(String(decoding: line, as: UTF8.self)) else {
            kill(process.pid, SIGKILL)
            throw ListenerError.noPort
        }
        self.port = port
        self.process = process
    }

    enum ListenerError: Error { case noPort }

    var url: String { "http://127.0.0.1:\(port)" }

    struct Recorded: Sendable {
        var method: String
        var path: String
        var headers: [String: String]
        var body: Data
    }

    var requests: [Recorded] {
        guard let text = try? String(contentsOf: directory.appendingPathComponent("requests.jsonl"), encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap { line in
            guard let o = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
            return Recorded(method: o["method"] as? String ?? "", path: o["path"] as? String ?? "",
                            headers: o["headers"] as? [String: String] ?? [:],
                            body: Data(base64Encoded: o["body"] as? String ?? "") ?? Data())
        }
    }

    /// SIGKILL: the server holds nothing worth a graceful stop.
    func stop() {
        kill(pid, SIGKILL)
        process.waitForExit(timeout: .seconds(10))
        try? FileManager.default.removeItem(at: directory)
    }
}

/// The controller with a chosen scaler configuration, driven in-process; the clock is the harness's.
struct ScalerHarness {
    let base: Harness
    var configuration: ControllerConfiguration

    init(_ configure: (inout ScalerConfiguration) -> Void) throws {
        base = try Harness()
        var c = base.configuration
        configure(&c.scaling)
        configuration = c
    }

    /// A scaler that runs `command` for each scaling and signs its notifications; `allowingLoopback` lets it
    /// post to (and poll) 127.0.0.1, where the tests' listeners are.
    static func notifying(_ command: String = "true", allowingLoopback: Bool = false) throws -> ScalerHarness {
        try ScalerHarness {
            $0.executor = .exec(command)
            $0.webhookSecret = "notification-secret-1"
            if allowingLoopback { $0.fetchAllowList = [IPNetwork("127.0.0.1/32")!] }
        }
    }

    /// `.live` puts the controller on a loopback socket, as clients reach it.
    func run<T: Sendable>(_ setup: TestingSetup = .router, _ body: @Sendable (Client) async throws -> T) async throws -> T {
        defer { try? FileManager.default.removeItem(at: base.directory) }
        let (app, controlPlane) = try await buildApplication(controlPlane: nil, configuration, dependencies: base.dependencies)
        do {
            let result = try await app.test(setup) { client in
                try await body(Client(client: client, controlPlane: controlPlane, harness: base))
            }
            await controlPlane.scaling.scaler.shutdown()
            return result
        } catch {
            await controlPlane.scaling.scaler.shutdown()
            throw error
        }
    }
}

extension Client {
    /// A user, a project and a deployment running `command`: the session token, the deployment's id and the
    /// base path of its scaling routes.
    func scaledDeployment(_ email: String = "owner@example.com",
                          command: String = "sleep 1000") async throws -> (token: String, deployment: String, base: String) {
        let (token, project) = try await signUpWithProject(email)
        let answer = try await call(.post, "/api/deployments", token: token,
                                    json: json(["projectId": project, "environment": "development", "command": command]))
        #expect(answer.status == .created, "create deployment: \(answer.text)")
        let deployment = try #require(answer.string("id"))
        return (token, deployment, "/api/deployments/\(deployment)/scaling")
    }

    /// Sets the deployment's instance count by hand.
    func override(_ token: String, _ deployment: String, instances: Int) async throws -> Answer {
        try await call(.post, "/api/deployments/\(deployment)/scaling/override", token: token, json: #"{"instances": \#(instances)}"#)
    }
}
