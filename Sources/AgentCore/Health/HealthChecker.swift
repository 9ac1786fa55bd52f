// Runs the rollout's health check (`AgentConfig.healthCheck`) against the app, as `HealthCheckRules` decides, and
// keeps the latest outcome for /v1/status. The supervisor's tick decides; an http check runs on this type's own
// thread (libcurl blocks), a command check is started by the supervisor (the only code that may have children)
// and completes on its thread. Neither ever blocks the supervisor.
import ChildProcess
public import CodeRunnerWire
import CSystemShims
import Glibc
public import Supervision
import Synchronization

public final class HealthChecker: Sendable {
    /// What the checker needs to know of the config: the check it sets, its version, and the app's PORT.
    public struct Subject: Sendable, Equatable {
        public var check: AgentHealthCheck?
        public var version: Int64?
        public var port: String?
        public init(check: AgentHealthCheck?, version: Int64?, port: String?) {
            self.check = check; self.version = version; self.port = port
        }
    }

    private struct HTTPJob: Sendable {
        var target: HealthCheckRules.Target
        var path: String
        var port: String?
        var timeoutMs: Int
    }

    private let supervisor: Supervisor
    private let subject: @Sendable () -> Subject
    private let unixNow: @Sendable () -> Double
    private let rules = Mutex(HealthCheckRules())
    private let job = Mutex<HTTPJob?>(nil)
    private let wakeFD: Int32
    private let threadStarted = Mutex(false)

    public init(supervisor: Supervisor, subject: @escaping @Sendable () -> Subject,
                unixNow: @escaping @Sendable () -> Double = { Now.unix() }) {
        self.supervisor = supervisor
        self.subject = subject
        self.unixNow = unixNow
        wakeFD = cr_eventfd()
    }

    deinit { close(wakeFD) }

    /// The latest outcome for the current child, for /v1/status.
    public var report: AgentHealthReport? { rules.withLock { $0.report } }

    /// The supervisor's tick: starts a check when one is due.
    public func tick() {
        let snapshot = supervisor.snapshot
        let subject = subject()
        let now = unixNow()
        let child = snapshot.state == .running ? snapshot.startedAt.map { HealthCheckRules.Target(childStartedAt: $0, version: subject.version) } : nil
        guard let target = rules.withLock({ $0.tick(now: now, child: child, check: subject.check) }),
              let check = subject.check else { return }
        if let path = check.http {
            startThreadOnce()
            job.withLock { $0 = HTTPJob(target: target, path: path, port: subject.port, timeoutMs: check.timeoutMs) }
            var one: UInt64 = 1
            _ = write(wakeFD, &one, 8)
        } else if let command = check.command {
            let timeoutMs = check.timeoutMs
            supervisor.probe(command: command, timeout: .milliseconds(timeoutMs)) { [self] outcome in
                let (ok, reason) = Self.describe(outcome, command: command, timeoutMs: timeoutMs)
                finish(target, ok: ok, reason: reason)
            }
        } else {
            finish(target, ok: false, reason: "the health check sets neither http nor command")
        }
    }

    private func finish(_ target: HealthCheckRules.Target, ok: Bool, reason: String?) {
        let now = unixNow()
        rules.withLock { $0.finished(target, ok: ok, reason: reason, now: now) }
    }

    /// A command check's outcome in words a user can act on.
    static func describe(_ outcome: ProbeOutcome, command: [String], timeoutMs: Int) -> (ok: Bool, reason: String?) {
        switch outcome {
        case .exited(.exited(0)): (true, nil)
        case .exited(.exited(let code)): (false, "\(command[0]) exited with status \(code)")
        case .exited(.signaled(let signal)): (false, "\(command[0]) was killed by SIG\(Signals.name(of: signal))")
        case .timedOut: (false, "timed out after \(timeoutMs) ms")
        case .couldNotStart(let why): (false, "could not run the check: \(why)")
        }
    }

    private func startThreadOnce() {
        let first = threadStarted.withLock { started in
            defer { started = true }
            return !started
        }
        guard first else { return }
        DetachedThread.start { [self] in runHTTPChecks() }
    }

    /// The http checks' thread: one libcurl handle, one check at a time, woken by `tick`.
    private func runHTTPChecks() {
        CurlGlobal.initialize(tls: false)
        var curl: CurlEasy?
        while true {
            // The eventfd is non-blocking: wait for it, then take its count.
            var waiting = pollfd(fd: wakeFD, events: Int16(POLLIN), revents: 0)
            guard poll(&waiting, 1, -1) >= 0 || errno == EINTR else { return }
            var count: UInt64 = 0
            _ = read(wakeFD, &count, 8)
            guard let next = job.withLock({ j in defer { j = nil }; return j }) else { continue }
            guard let port = next.port, let number = UInt16(port), number > 0 else {
                finish(next.target, ok: false, reason: "the app has no valid PORT variable to check GET \(next.path) on")
                continue
            }
            // Each check's own timeout bounds the whole request, connecting included.
            if curl == nil { curl = try? CurlEasy(options: CurlEasy.Options(connectTimeout: .seconds(60))) }
            guard let handle = curl else {
                finish(next.target, ok: false, reason: "could not set up libcurl for the check")
                continue
            }
            // The sandbox shares the host's network namespace: the app's loopback port is the agent's.
            let url = "http://127.0.0.1:\(number)\(next.path)"
            do {
                let response = try handle.perform(method: "GET", url: url, bearer: nil, body: nil, timeout: .milliseconds(next.timeoutMs))
                if (200..<300).contains(response.status) {
                    finish(next.target, ok: true, reason: nil)
                } else {
                    finish(next.target, ok: false, reason: "GET \(next.path) answered \(response.status)")
                }
            } catch {
                finish(next.target, ok: false, reason: error.isTimeout ? "timed out after \(next.timeoutMs) ms"
                                                                       : "GET \(next.path) failed: \(error.description)")
            }
        }
    }
}
