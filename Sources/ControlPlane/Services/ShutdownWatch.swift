// A stopping controller says what it waits for. Shutdown runs the services' graceful stops one after the other
// (ServiceGroup's reverse order), and some wait on the outside world: the scaler for its agents to exit, the HTTP
// server for its connections to close. A stop that takes long then shows in the log as a warning naming the service
// still stopping and how long it has taken, every `every`, instead of a silent wait until systemd's SIGKILL.
public import Logging
public import ServiceLifecycle
import Synchronization

public final class ShutdownWatch: Sendable {
    public static let defaultAfter: Duration = .seconds(5)

    struct State {
        var began: ContinuousClock.Instant?
        /// Services told to stop that have not returned yet, in the order they were told, with what more their
        /// warning says.
        var stopping: [(name: String, since: ContinuousClock.Instant, details: (@Sendable () -> String)?)] = []
        var watcher: Task<Void, Never>?
    }

    let after: Duration
    let every: Duration
    let logger: Logger
    private let state = Mutex(State())

    public init(after: Duration = defaultAfter, every: Duration = defaultAfter, logger: Logger) {
        self.after = after
        self.every = every
        self.logger = logger
    }

    /// `service`, reporting to this watch when it is told to stop and when it has stopped. With `limit`, a service
    /// still running that long after it was told to stop is cancelled, with a warning: an HTTP server whose client
    /// trickles a request body (or never sends the rest) would otherwise hold the stop as long as the client likes.
    /// `details`: more about what it waits for (open sockets), added to its warning.
    public func watching(_ service: any Service, as name: String, limit: Duration? = nil,
                         details: (@Sendable () -> String)? = nil) -> any Service {
        Watched(inner: service, name: name, limit: limit, details: details, watch: self)
    }

    func told(_ name: String, details: (@Sendable () -> String)?) {
        let now = ContinuousClock.now
        state.withLock { s in
            s.stopping.append((name, now, details))
            guard s.began == nil else { return }
            s.began = now
            s.watcher = Task.detached { [self] in await self.watch(since: now) }
        }
    }

    func stopped(_ name: String) {
        state.withLock { s in
            s.stopping.removeAll { $0.name == name }
        }
    }

    /// The warnings a stop taking long logs: what is still stopping, now (tests read it).
    func report(now: ContinuousClock.Instant) -> [String] {
        let (began, stopping) = state.withLock { ($0.began, $0.stopping) }
        guard let began else { return [] }
        return stopping.map { entry in
            var text = "still stopping after \(Self.seconds(now - began)): waiting \(Self.seconds(now - entry.since)) for \(entry.name)"
            if let details = entry.details { text += " (\(details()))" }
            return text
        }
    }

    private func watch(since began: ContinuousClock.Instant) async {
        var next = began.advanced(by: after)
        while !Task.isCancelled {
            do { try await Task.sleep(until: next, clock: .continuous) } catch { return }
            for line in report(now: .now) { logger.warning("\(line)") }
            next = next.advanced(by: every)
        }
    }

    /// Ends the watcher once the whole group has stopped.
    public func finish() {
        state.withLock { s in
            s.watcher?.cancel()
            s.watcher = nil
        }
    }

    static func seconds(_ d: Duration) -> String {
        let tenths = d.components.seconds * 10 + d.components.attoseconds / 100_000_000_000_000_000
        return "\(tenths / 10).\(tenths % 10) s"
    }
}

/// A stop limit's timer, and whether it fired.
private final class LimitTimer: Sendable {
    let state = Mutex<(task: Task<Void, Never>?, fired: Bool)>((nil, false))
}

private struct Watched: Service, CustomStringConvertible {
    let inner: any Service
    let name: String
    let limit: Duration?
    let details: (@Sendable () -> String)?
    let watch: ShutdownWatch

    var description: String { name }

    func run() async throws {
        defer { watch.stopped(name) }
        // Task {} keeps the task-locals: the inner service hears the group's graceful shutdown as it would alone.
        let running = Task { try await inner.run() }
        let timer = LimitTimer()
        defer { timer.state.withLock { $0.task?.cancel() } }
        do {
            try await withTaskCancellationHandler {
                try await withGracefulShutdownHandler {
                    try await running.value
                } onGracefulShutdown: {
                    watch.told(name, details: details)
                    guard let limit else { return }
                    timer.state.withLock { state in
                        state.task = Task.detached { [watch, name] in
                            do { try await Task.sleep(for: limit) } catch { return }
                            watch.logger.warning("stopped waiting for \(name) after \(ShutdownWatch.seconds(limit)): cancelling what is left")
                            timer.state.withLock { $0.fired = true }
                            running.cancel()
                        }
                    }
                }
            } onCancel: {
                running.cancel()
            }
        } catch where timer.state.withLock({ $0.fired }) {
            // The stop went on as planned, only cut short: not the service's failure.
        }
    }
}
