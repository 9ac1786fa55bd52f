// The real coderunner-controller on loopback (CODERUNNER_BIN_DIR), driven through its HTTP API as a user would,
// and the hot-reload app that the agents around it run (TestSupport's AgentProcess). Every wait is bounded.
import ChildProcess
import CodeRunnerWire
import Foundation
import Glibc
import Synchronization
import Testing
import TestSupport

enum E2EError: Error, CustomStringConvertible {
    case failed(String)
    var description: String { if case .failed(let s) = self { s } else { "" } }
}

/// A process whose stderr (and stdout, unless given a handle) is collected by a background thread. Started with
/// posix_spawn (ChildProcess), not Foundation's Process, whose run() can crash the test process on Linux.
final class Spawned: Sendable {
    private let child: ExitWatch
    /// Shared with the reader thread.
    private final class Output: Sendable {
        let text = Mutex("")
    }
    private let output = Output()

    init(_ executable: String, _ arguments: [String], environment: [String: String]? = nil, stdout: FileHandle? = nil) throws {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw E2EError.failed("pipe: \(String(cString: strerror(errno)))") }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devNull) }
        let pid: Int32
        do {
            pid = try ChildProcess.spawn(executable, arguments, environment: environment, stdin: devNull,
                                         stdout: stdout?.fileDescriptor ?? fds[1], stderr: fds[1])
        } catch {
            close(fds[0])
            close(fds[1])
            throw error
        }
        close(fds[1])
        // Until EOF, which comes when the process and every descendant holding the pipe are gone.
        let reader = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        let output = self.output
        Thread.detachNewThread {
            while true {
                let data = reader.availableData
                if data.isEmpty { break }
                output.text.withLock { $0 += String(decoding: data, as: UTF8.self) }
            }
        }
        child = ExitWatch(pid: pid)
    }

    var text: String { output.text.withLock { $0 } }
    var pid: Int32 { child.pid }
    var isRunning: Bool { child.isRunning }

    @discardableResult
    func waitForExit(timeout: Duration = .seconds(30)) -> Int32? { child.waitForExit(timeout: timeout) }

    func signal(_ sig: Int32) { if isRunning { kill(pid, sig) } }

    /// SIGTERM, then SIGKILL after 10 s; waits for the exit.
    func stop() {
        signal(SIGTERM)
        if waitForExit(timeout: .seconds(10)) == nil {
            signal(SIGKILL)
            waitForExit(timeout: .seconds(10))
        }
    }

    func hardKill() {
        signal(SIGKILL)
        waitForExit(timeout: .seconds(10))
    }

    deinit {
        if isRunning { hardKill() }
    }
}

/// A controller process on a fixed loopback port and data directory, restartable on both.
final class ControllerProcess {
    let port: Int
    let dataDirectory: URL
    /// More `serve` options, after the harness's.
    let extra: [String]
    /// The address it listens on (loopback, or a test's own network namespace's).
    let host: String
    /// A command that ends by exec'ing its arguments (`ip netns exec NAME`), which the controller runs inside.
    let wrapper: [String]
    private(set) var process: Spawned?
    var base: String { "http://\(host):\(port)" }

    /// `port`: a given one (another controller's that stopped, so that its agents reach this one), else a free one.
    /// `wait`: false starts the process without waiting for it to answer (a standby does not).
    init(dataDirectory: URL, port: Int? = nil, extra: [String] = [], host: String = "127.0.0.1", wrapper: [String] = [],
         wait: Bool = true) throws {
        self.port = port ?? TestSupport.freeLoopbackPort()
        self.dataDirectory = dataDirectory
        self.extra = extra
        self.host = host
        self.wrapper = wrapper
        try start(wait: wait)
    }

    func start(wait: Bool = true) throws {
        let arguments = [
            "serve", "--registration", "open", "--listen", "\(host):\(port)", "--data-dir", dataDirectory.path, "--bcrypt-cost", "4", "--log-level", "error",
        ] + extra
        let binary = TestSupport.binary("coderunner-controller")
        let p = try wrapper.isEmpty ? Spawned(binary, arguments) : Spawned(wrapper[0], Array(wrapper.dropFirst()) + [binary] + arguments)
        process = p
        guard wait else { return }
        guard isUp(within: .seconds(20)) else { throw E2EError.failed("controller did not start on \(port): \(p.text)") }
    }

    /// Whether /healthz answers 200 within `timeout`.
    func isUp(within timeout: Duration) -> Bool {
        TestSupport.waitUntil(timeout: timeout, interval: .milliseconds(50)) {
            (try? HTTP.call("GET", base + "/healthz", timeout: 1).status) == 200
        }
    }

    /// What the process printed so far.
    var output: String { process?.text ?? "" }

    func kill() { process?.hardKill(); process = nil }
    func stop() { process?.stop(); process = nil }
    deinit { process?.hardKill() }
}

/// A user, project, environment config and deployment created through the API.
struct Tenant {
    let controller: ControllerProcess
    let session: String
    let projectId: String
    let configId: String
    let deploymentId: String
    let agentToken: String

    static func create(_ controller: ControllerProcess, variables: [(key: String, value: String, secret: Bool, required: Bool)]) throws -> Tenant {
        let base = controller.base
        let email = "e2e-\(UUID().uuidString.prefix(8))@example.com"
        let registered = try HTTP.call("POST", base + "/api/auth/register", json: ["email": email, "password": "correct horse battery"])
        guard registered.status == 201 else { throw E2EError.failed("register: \(registered.text)") }
        let session = try HTTP.call("POST", base + "/api/auth/login", json: ["email": email, "password": "correct horse battery"])
            .data(LoginAnswer.self).token
        let projectId = try HTTP.call("POST", base + "/api/projects", token: session, json: ["name": "e2e"]).data(Identified.self).id
        let configId = try HTTP.call("POST", base + "/api/config/projects/\(projectId)/environments", token: session,
                                     json: ["environment": "production", "name": "main"]).data(Identified.self).id
        let deployment = try HTTP.call("POST", base + "/api/deployments", token: session,
                                       json: ["projectId": projectId, "environment": "production"]).data(CreatedDeployment.self)
        let tenant = Tenant(controller: controller, session: session, projectId: projectId, configId: configId,
                            deploymentId: deployment.id, agentToken: deployment.agentToken)
        for v in variables { try tenant.set(v.key, v.value, secret: v.secret, required: v.required) }
        return tenant
    }

    /// The same tenant through another controller of the same database.
    func on(_ other: ControllerProcess) -> Tenant {
        Tenant(controller: other, session: session, projectId: projectId, configId: configId, deploymentId: deploymentId,
               agentToken: agentToken)
    }

    /// PUTs a variable; returns the answer's status.
    @discardableResult
    func set(_ key: String, _ value: String, secret: Bool = false, required: Bool = false) throws -> Int {
        let answer = try HTTP.call("PUT", controller.base + "/api/config/environments/\(configId)/variables/\(key)", token: session,
                                   json: ["value": value, "variableType": secret ? "secret" : "string", "isEncrypted": secret,
                                          "isRequired": required])
        guard answer.status == 200 else { throw E2EError.failed("set \(key): \(answer.text)") }
        return answer.status
    }

    func reload() throws -> Int64 {
        let answer = try HTTP.call("POST", controller.base + "/api/config/deployments/\(deploymentId)/reload", token: session)
        guard answer.status == 200 else { throw E2EError.failed("reload: \(answer.text)") }
        return try answer.data(ReloadAnswer.self).version
    }

    func instances() throws -> [InstanceAnswer] {
        try HTTP.call("GET", controller.base + "/api/deployments/\(deploymentId)/instances", token: session).data([InstanceAnswer].self)
    }

    func auditActions() throws -> [String] {
        try HTTP.call("GET", controller.base + "/api/config/projects/\(projectId)/audit", token: session).data([AuditAnswer].self)
            .map(\.action)
    }
}

/// An agent around a shell app that records its pid in `<dir>/pid`, then its environment in `<dir>/env` (each
/// atomically: write, then rename; a new env file therefore implies the new pid file), then sleeps. With CRASH=1 in
/// its environment it exits 3 at once instead.
extension AgentProcess {
    static let app = """
        if [ "$CRASH" = "1" ]; then echo crashing; exit 3; fi
        echo $$ > "$APP_DIR/pid.tmp.$$" && mv "$APP_DIR/pid.tmp.$$" "$APP_DIR/pid"
        env > "$APP_DIR/env.tmp.$$" && mv "$APP_DIR/env.tmp.$$" "$APP_DIR/env"
        exec sleep 1000
        """

    /// Starts the agent with --controller around `app`, and waits until it announces its metrics port.
    /// `wrapper` (a command that ends by exec'ing its arguments, such as unshare) runs the agent inside it.
    convenience init(controller: String, token: String, directory: URL, extra: [String] = [], wrapper: [String] = []) throws {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let tokenFile = directory.appendingPathComponent("token")
        if !FileManager.default.fileExists(atPath: tokenFile.path) {
            try Data(token.utf8).write(to: tokenFile)
            chmod(tokenFile.path, 0o600)
        }
        // A small, explicit environment: the app inherits it (--inherit-env all) under the config's variables.
        let env = ["PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin", "APP_DIR": directory.path,
                   "LANG": "C.UTF-8"]
        try self.init(options: [
            "--controller", controller, "--token-file", tokenFile.path,
            "--state-dir", directory.appendingPathComponent("state").path,
            "--sample-interval", "0.1", "--grace-period", "2", "--backoff-initial", "0.2", "--backoff-max", "1",
        ] + extra, command: ["sh", "-c", Self.app], metricsListen: "127.0.0.1:0", environment: env, inheritEnvironment: false,
                      wrapper: wrapper, stdout: .discard, in: directory)
        guard metricsAddress() != nil else { throw E2EError.failed("agent did not announce its port: \(stderr)") }
    }

    /// The app's environment as last recorded (empty before the first start).
    var appEnvironment: [String: String] {
        guard let text = try? String(contentsOf: directory.appendingPathComponent("env"), encoding: .utf8) else { return [:] }
        var env: [String: String] = [:]
        for line in text.split(separator: "\n") {
            if let eq = line.firstIndex(of: "=") { env[String(line[..<eq])] = String(line[line.index(after: eq)...]) }
        }
        return env
    }

    var appPid: Int32? {
        (try? String(contentsOf: directory.appendingPathComponent("pid"), encoding: .utf8))
            .flatMap { Int32($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
    }

    func reloads(_ result: String) -> Double { metric("coderunner_config_reloads_total{result=\"\(result)\"}") ?? -1 }
}

extension AgentStatus {
    var configVersion: Int64? { config?.version }
}
