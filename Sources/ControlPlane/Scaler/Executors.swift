// Executors carry out a decision: run agents here (local), run an operator's command (exec), or POST a
// signed request (webhook). The scaler serialises calls per deployment; an executor never sees two
// scalings of one deployment at once.
import CurlHTTP
import ChildProcess
public import Foundation
import Sealing
import Synchronization

/// What an executor needs to know about the deployment it scales.
public struct ScalingTarget: Sendable, Equatable {
    public var deploymentId: String
    /// The deployment's command (run under `sh -c` by the local executor).
    public var command: String?
    /// What each instance may use (the deployment's ResourceLimits), for each agent's sandbox: cores, bytes
    /// of memory, processes. nil when unknown (a deleted deployment's instances are only stopped).
    public var cpuLimit: Double?
    public var memoryLimit: Int?
    public var pidsLimit: Int?

    public init(deploymentId: String, command: String?, cpuLimit: Double? = nil, memoryLimit: Int? = nil, pidsLimit: Int? = nil) {
        self.deploymentId = deploymentId
        self.command = command
        self.cpuLimit = cpuLimit
        self.memoryLimit = memoryLimit
        self.pidsLimit = pidsLimit
    }
}

public enum ExecutorError: Error, Equatable, Sendable, CustomStringConvertible {
    case noCommand(String)
    case agentStart(String)
    case commandFailed(String)
    case webhookFailed(String)

    public var description: String {
        switch self {
        case .noCommand(let id): "deployment \(id) has no command, so the local executor has nothing to run; create it with a command"
        case .agentStart(let reason): "could not start an agent: \(reason)"
        case .commandFailed(let reason): "scaling command failed: \(reason)"
        case .webhookFailed(let reason): "scaling webhook failed: \(reason)"
        }
    }

    /// What the deployment's owner may read (events, the override's answer, notifications): which step
    /// failed, never the operator's URL, the command's output or paths on the host. `description` goes to
    /// the controller's log.
    public var tenantReason: String {
        switch self {
        case .noCommand: description
        case .agentStart: "could not start an agent; the operator finds the details in the controller's log"
        case .commandFailed: "the scaling command failed; the operator finds the details in the controller's log"
        case .webhookFailed: "the scaling webhook failed; the operator finds the details in the controller's log"
        }
    }
}

public protocol ScalingExecutor: Sendable {
    /// Brings the deployment from `from` to `to` instances; returns the count actually running afterwards.
    func scale(_ target: ScalingTarget, from: Int, to: Int) async throws -> Int
    /// How many instances run now, when the executor knows (the local one does); nil otherwise.
    func runningInstances(deploymentId: String) async -> Int?
    /// Stops whatever the executor owns (the local executor's agents); called on controller shutdown.
    func shutdown() async
}

extension ScalingExecutor {
    public func runningInstances(deploymentId: String) async -> Int? { nil }
    public func shutdown() async {}
}

// MARK: exec

/// Runs `/bin/sh -c COMMAND` with DEPLOYMENT_ID, FROM and TO in its environment; a non-zero exit is a failure
/// (its last stderr bytes are the message). Bounded by `timeout`, after which it is killed.
public struct ExecExecutor: ScalingExecutor {
    public static let defaultTimeout: Duration = .seconds(60)
    /// The only variables the command inherits from the controller: what a shell and its tools need, never
    /// the controller's configuration or secrets (a webhook secret, a master key given in the environment).
    public static let inheritedVariables = ["PATH", "HOME", "USER", "LOGNAME", "LANG", "LC_ALL", "TZ", "TMPDIR"]
    public static let defaultPath = "/usr/local/bin:/usr/bin:/bin"
    public var command: String
    public var timeout: Duration

    public init(command: String, timeout: Duration = defaultTimeout) {
        self.command = command
        self.timeout = timeout
    }

    /// The command's whole environment: the inherited few, then the scaling's own variables.
    static func environment(_ target: ScalingTarget, from: Int, to: Int, parent: [String: String]) -> [String: String] {
        var environment = parent.filter { inheritedVariables.contains($0.key) }
        if environment["PATH"] == nil { environment["PATH"] = defaultPath }
        environment["DEPLOYMENT_ID"] = target.deploymentId
        environment["FROM"] = String(from)
        environment["TO"] = String(to)
        return environment
    }

    public func scale(_ target: ScalingTarget, from: Int, to: Int) async throws -> Int {
        let environment = Self.environment(target, from: from, to: to, parent: ProcessInfo.processInfo.environment)
        let result = try await CommandRunner.run(executable: "/bin/sh", arguments: ["-c", command], environment: environment,
                                                timeout: timeout)
        guard result.status == 0 else {
            let tail = String(decoding: result.stderr.suffix(512), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
            throw ExecutorError.commandFailed("exit status \(result.status)\(tail.isEmpty ? "" : ": \(tail)")")
        }
        return to
    }
}

/// A command run to completion with its stderr collected, killed when it overruns its time.
enum CommandRunner {
    struct Result { var status: Int32; var stderr: Data }

    static func run(executable: String, arguments: [String], environment: [String: String], timeout: Duration) async throws -> Result {
        var pipe: [Int32] = [-1, -1]
        guard Glibc.pipe(&pipe) == 0 else { throw ExecutorError.commandFailed("cannot make a pipe: \(String(cString: strerror(errno)))") }
        for fd in pipe { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        defer { close(devNull) }
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(executable, arguments, environment: environment, stdin: devNull, stdout: devNull, stderr: pipe[1])
        } catch {
            close(pipe[0])
            close(pipe[1])
            throw ExecutorError.commandFailed("\(error)")
        }
        close(pipe[1])
        // Read stderr on its own thread so a chatty command cannot fill the pipe and block.
        let reader = FileHandle(fileDescriptor: pipe[0], closeOnDealloc: true)
        let collected = Task.detached { reader.readDataToEndOfFile() }
        let exited = AsyncExit()
        ChildProcess.onExit(of: pid) { exited.finish($0) }
        let overran = Mutex(false)
        let watchdog = Task {
            try await Task.sleep(for: timeout)
            overran.withLock { $0 = true }
            kill(pid, SIGKILL)
        }
        let status = await exited.wait()
        watchdog.cancel()
        let stderr = await collected.value
        if overran.withLock({ $0 }) && status == 128 + SIGKILL {
            throw ExecutorError.commandFailed("timed out after \(timeout) and was killed")
        }
        return Result(status: status, stderr: stderr)
    }
}

/// A one-shot value a Process termination handler (a Foundation thread) hands to async code.
final class AsyncExit: Sendable {
    private let state = Mutex<(value: Int32?, waiter: CheckedContinuation<Int32, Never>?)>((nil, nil))

    func finish(_ value: Int32) {
        let waiter = state.withLock { s -> CheckedContinuation<Int32, Never>? in
            s.value = value
            defer { s.waiter = nil }
            return s.waiter
        }
        waiter?.resume(returning: value)
    }

    func wait() async -> Int32 {
        await withCheckedContinuation { c in
            let ready = state.withLock { s -> Int32? in
                if let v = s.value { return v }
                s.waiter = c
                return nil
            }
            if let ready { c.resume(returning: ready) }
        }
    }

    var value: Int32? { state.withLock { $0.value } }
}

// MARK: webhook

/// Signs JSON bodies: `X-CodeRunner-Signature: sha256=<hex HMAC-SHA256 of the body>`, as GitHub does, so a
/// receiver can check the sender and the body with a shared secret.
public struct WebhookSigner: Sendable {
    public static let header = "X-CodeRunner-Signature"
    let key: [UInt8]
    public init(secret: String) { key = Array(secret.utf8) }
    public func signature(_ body: [UInt8]) -> String { "sha256=" + Digest.hex(Digest.hmacSHA256(key: key, data: body)) }
}

/// The body of a scaling webhook and of every scaling notification.
public struct ScalingNotification: Codable, Sendable, Equatable {
    public var event: String
    public var deploymentId: String
    public var from: Int
    public var to: Int
    public var reason: String?
    public var success: Bool?
    public var error: String?
    public var timestamp: Double
}

/// POSTs signed JSON; a 2xx answer is success. Each post has a client of its own that follows no redirect
/// (posts are rare: one per scaling).
public struct WebhookPoster: Sendable {
    public static let defaultTimeout: Duration = .seconds(10)
    let signer: WebhookSigner
    let timeout: Duration
    /// Set when tenants choose the URLs (notifications): each post's address is checked and pinned.
    let fetcher: GuardedFetcher?

    public init(signer: WebhookSigner, timeout: Duration = defaultTimeout, policy: FetchPolicy? = nil) {
        self.signer = signer
        self.timeout = timeout
        self.fetcher = policy.map { GuardedFetcher(policy: $0, client: nil) }
    }

    /// The same signer and timeout, for URLs tenants choose.
    public func guarded(by policy: FetchPolicy) -> WebhookPoster {
        WebhookPoster(signer: signer, timeout: timeout, policy: policy)
    }

    public func post(_ notification: ScalingNotification, to url: String) async throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let body = Array(try encoder.encode(notification))
        let request = CurlHTTPRequest(method: "POST", url: url,
                                  headers: [("Content-Type", "application/json"), (WebhookSigner.header, signer.signature(body))],
                                  body: body)
        let result = if let fetcher {
            await fetcher.fetch(request, timeout: timeout, maxBytes: 64 * 1024)
        } else {
            await GuardedFetcher.once(request, timeout: timeout, maxBytes: 64 * 1024)
        }
        switch result {
        case .failure(let failure):
            throw ExecutorError.webhookFailed(failure.detail)
        case .success(let response):
            guard (200..<300).contains(response.status) else { throw ExecutorError.webhookFailed("\(url) answered HTTP \(response.status)") }
        }
    }
}

/// Asks an external system to scale: POSTs {"event": "scale", deploymentId, from, to, ...} and trusts a 2xx.
public struct WebhookExecutor: ScalingExecutor {
    public var url: String
    let poster: WebhookPoster
    let now: @Sendable () -> Date

    public init(url: String, poster: WebhookPoster, now: @escaping @Sendable () -> Date = { Date() }) {
        self.url = url
        self.poster = poster
        self.now = now
    }

    public func scale(_ target: ScalingTarget, from: Int, to: Int) async throws -> Int {
        try await poster.post(ScalingNotification(event: "scale", deploymentId: target.deploymentId, from: from, to: to,
                                                  timestamp: now().timeIntervalSince1970), to: url)
        return to
    }
}
