public import CSystemShims
import Glibc
import Synchronization

/// What the supervisor runs and how.
public struct SupervisorConfiguration: Sendable, Equatable {
    /// How long to wait for a child's group to go after the stop signal, before SIGKILL: 10 s, as docker stop.
    public static let defaultGracePeriod: Duration = .seconds(10)
    public static let defaultLogRingLines = 2000

    /// argv of the child; the first element is looked up in the child's PATH as execvp does.
    public var command: [String]
    /// The child's initial environment (restart(environment:) replaces it).
    public var environment: [String: String]
    public var restartPolicy: RestartPolicy
    public var gracePeriod: Duration
    /// Sent to the child's group when the agent stops it (stop request, restart, cleanup of leftovers).
    public var stopSignal: Int32
    public var backoff: BackoffPolicy
    public var logRingLines: Int
    public var logRingBytes: Int
    /// When true, no child starts until the first `restart(environment:)` (the agent waits for its config);
    /// the state meanwhile is `waitingForConfig`.
    public var waitForEnvironment: Bool

    public init(
        command: [String], environment: [String: String], restartPolicy: RestartPolicy = .onFailure,
        gracePeriod: Duration = defaultGracePeriod, stopSignal: Int32 = SIGTERM, backoff: BackoffPolicy = BackoffPolicy(),
        logRingLines: Int = defaultLogRingLines, logRingBytes: Int = LogRing.defaultMaxBytes, waitForEnvironment: Bool = false
    ) {
        self.waitForEnvironment = waitForEnvironment
        self.command = command
        self.environment = environment
        self.restartPolicy = restartPolicy
        self.gracePeriod = gracePeriod
        self.stopSignal = stopSignal
        self.backoff = backoff
        self.logRingLines = logRingLines
        self.logRingBytes = logRingBytes
    }
}

/// How a probe (`Supervisor.probe`) ended.
public enum ProbeOutcome: Sendable, Equatable {
    case exited(ExitStatus)
    /// It outlived its timeout and was killed.
    case timedOut
    case couldNotStart(String)
}

struct ProbeRequest: Sendable {
    var command: [String]
    var timeout: Duration
    var completion: @Sendable (ProbeOutcome) -> Void
}

public enum SupervisorError: Error, Equatable, CustomStringConvertible {
    case emptyCommand
    case systemCall(String, errno: Int32)

    public var description: String {
        switch self {
        case .emptyCommand: "no command to run: give one after `--` or in CODERUNNER_COMMAND"
        case .systemCall(let call, let errno): "\(call) failed: \(String(cString: strerror(errno)))"
        }
    }
}

/// Runs one child process the way tini and dumb-init do, and restarts it the way supervisord does.
///
/// Signals. `init` blocks every signal in `Signals.handled` in the calling thread, so it must run on the main
/// thread before any other thread exists: threads inherit the mask, and a process-directed signal goes to any thread
/// that does not block it (where SIGTERM's default action would kill the agent). The loop then reads them all from a
/// signalfd, and each one's fate is explicit:
/// - SIGCHLD: reap every exited process (`waitpid(-1, WNOHANG)` until none), our child and orphans alike.
/// - SIGTERM, SIGINT, SIGQUIT and the stop signal: a stop request. The signal itself is forwarded to the child's
///   process group (as tini does), the grace period starts, and when the child exits it is not restarted: what is
///   left of its group gets the stop signal, SIGKILL when the grace period (counted from the request) has passed, and
///   the agent exits with the child's status (128+N when signal N ended it). With no child running (backoff), the
///   agent exits at once with the last child's status.
/// - SIGPIPE: sent by another process (`kill -PIPE`), forwarded like the signals below. Raised by the kernel on
///   the agent's own write to a closed output, dropped: that write fails with EPIPE, and the app never hears of it.
/// - SIGKILL, SIGSTOP: cannot be caught. The synchronous signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP,
///   SIGSYS) keep their default action: they are the agent's own faults.
/// - Every other signal (SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, real-time
///   signals, ...): forwarded to the child's process group, and dropped when no child runs. If it ends the child,
///   the restart policy decides what follows.
///
/// The rules live in `SupervisorStateMachine`; the loop (`run`, in Supervisor+Loop.swift) only does the I/O
/// around it, and is the only code that touches the child. Other threads talk to it through `restart` and
/// `requestStop`, which post a command and wake the loop through an eventfd. No threads are created here.
/// It reaps with `waitpid(-1)`, so nothing else in the agent may start child processes of its own.
public final class Supervisor: Sendable {
    /// The child's output lines (empty when the child writes to the agent's terminal).
    public let logs: LogRing
    public let configuration: SupervisorConfiguration
    /// The sandbox the child runs in, if any (see `ChildContainment`).
    public let containment: (any ChildContainment)?

    private struct Shared {
        var snapshot = SupervisorSnapshot(state: .starting)
        var pendingEnvironment: [String: String]?
        var pendingGeneration: UInt64 = 0
        var pendingReload: (environment: [String: String], generation: UInt64, signals: [Int32])?
        var pendingProbe: ProbeRequest?
        var nextGeneration: UInt64 = 1
        var stopRequested = false
        var running = false
        var exitObserver: (@Sendable (ChildExit) -> Void)?
    }
    private let shared = Mutex(Shared())
    let signalFD: Int32
    let commandFD: Int32

    /// Sets up signal handling; see the type's documentation for why this must run before any thread is created.
    public init(configuration: SupervisorConfiguration, containment: (any ChildContainment)? = nil) throws(SupervisorError) {
        guard !configuration.command.isEmpty else { throw .emptyCommand }
        self.configuration = configuration
        self.containment = containment
        logs = LogRing(capacity: max(1, configuration.logRingLines), maxBytes: max(1, configuration.logRingBytes))

        // A closed fd 0, 1 or 2 would be reused by our pipes and confuse the child; point it at /dev/null.
        for fd: Int32 in 0...2 where fcntl(fd, F_GETFD) == -1 {
            _ = open("/dev/null", O_RDWR)
        }
        // SIGPIPE is blocked below and read from the signalfd; ignoring it as well keeps a thread that might lack
        // the mask alive on its own write to a closed socket (a blocked signal is still queued while ignored).
        signal(SIGPIPE, SIG_IGN)
        if Self.threadCount() > 1 {
            // Another thread without the mask would take SIGTERM & co. with their default action (death).
            AgentLog.write("warning: the supervisor was created after other threads; signals may be lost")
        }
        var handled = Signals.handled
        guard pthread_sigmask(SIG_BLOCK, &handled, nil) == 0 else { throw .systemCall("pthread_sigmask", errno: errno) }
        let sfd = cr_signalfd(&handled)
        guard sfd >= 0 else { throw .systemCall("signalfd", errno: errno) }
        let efd = cr_eventfd()
        guard efd >= 0 else {
            close(sfd)
            throw .systemCall("eventfd", errno: errno)
        }
        signalFD = sfd
        commandFD = efd
        if configuration.waitForEnvironment { shared.withLock { $0.snapshot.state = .waitingForConfig } }
        // As PID 1 the kernel re-parents orphans to us anyway; otherwise ask for them, so none stays a zombie.
        if getpid() != 1 { _ = cr_set_child_subreaper() }
    }

    /// Threads in this process now (entries of /proc/self/task).
    private static func threadCount() -> Int {
        guard let dir = opendir("/proc/self/task") else { return 1 }
        defer { closedir(dir) }
        var count = 0
        while let entry = readdir(dir) {
            if entry.pointee.d_name.0 != UInt8(ascii: ".") { count += 1 }
        }
        return count
    }

    deinit {
        close(signalFD)
        close(commandFD)
    }

    /// The supervisor's state, pid, restarts and last exit, consistent at one instant. Any thread.
    public var snapshot: SupervisorSnapshot { shared.withLock { $0.snapshot } }

    /// Stops the child gracefully and starts it again with `environment`. Any thread; returns at once.
    /// Requests are serialized by the loop: the next child starts only once the previous one and its whole
    /// process group are gone, so two children never run at once. Requests made meanwhile coalesce (the latest
    /// environment wins). It does not count as a crash: the backoff starts over. Ignored once the agent is stopping.
    /// Returns the environment's generation: the child started with it reports it in `snapshot.generation` and
    /// in `ChildExit` (the initial environment is generation 0).
    @discardableResult
    public func restart(environment: [String: String]) -> UInt64 {
        let generation = shared.withLock { s in
            s.pendingEnvironment = environment
            s.pendingGeneration = s.nextGeneration
            s.nextGeneration += 1
            return s.pendingGeneration
        }
        wake()
        return generation
    }

    /// Sends each of `signals` to the running app (its process group; in a sandbox every process but the launcher)
    /// without restarting it, and makes `environment` the one its next start uses (a crash restart's, or a later
    /// restart's when none is asked for meanwhile). No signal reaches a child that is starting or stopping: it
    /// starts with the new environment anyway. Any thread; returns at once with the environment's generation.
    /// Requests made before the loop takes them coalesce: the latest environment wins, every signal is sent once.
    @discardableResult
    public func reload(environment: [String: String], signals: [Int32]) -> UInt64 {
        let generation = shared.withLock { s in
            let earlier = s.pendingReload?.signals ?? []
            let merged = earlier + signals.filter { !earlier.contains($0) }
            s.pendingReload = (environment, s.nextGeneration, merged)
            s.nextGeneration += 1
            return s.nextGeneration - 1
        }
        wake()
        return generation
    }

    /// Runs `command` once beside the running app, with its environment (in a sandbox: in the app's namespaces, as
    /// its uid), killed with its process group at `timeout`; `completion` gets the outcome on the supervisor's
    /// thread. The supervisor starts it because it alone may have children (it reaps with waitpid(-1)). One at a
    /// time: a request while one runs, or while no app runs, completes at once with `couldNotStart`.
    public func probe(command: [String], timeout: Duration, completion: @escaping @Sendable (ProbeOutcome) -> Void) {
        let earlier = shared.withLock { s in
            defer { s.pendingProbe = ProbeRequest(command: command, timeout: timeout, completion: completion) }
            return s.pendingProbe
        }
        earlier?.completion(.couldNotStart("a newer check replaced it"))
        wake()
    }

    /// Called on the supervisor's thread each time a child ends (or fails to start); keep it short and
    /// non-blocking (it may call `restart`). The config reloader uses it to roll back a crashing version.
    public func onChildExit(_ observer: @escaping @Sendable (ChildExit) -> Void) {
        shared.withLock { $0.exitObserver = observer }
    }

    /// Asks the loop to stop the child (stop signal, grace period, SIGKILL) and return its status. Any thread.
    public func requestStop() {
        shared.withLock { $0.stopRequested = true }
        wake()
    }

    private func wake() {
        var one: UInt64 = 1
        _ = write(commandFD, &one, 8)
    }

    /// Runs the child until the agent must exit, on the calling thread, and returns the agent's exit code: the
    /// child's status as a shell reports it. `onTick` runs on this thread every `tickInterval` (the sampler's hook).
    public func run(tickInterval: Duration? = nil, onTick: () -> Void = {}) -> Int32 {
        let alreadyRunning = shared.withLock { s in
            defer { s.running = true }
            return s.running
        }
        precondition(!alreadyRunning, "Supervisor.run must be called once")
        var loop = SupervisorLoop(supervisor: self, tickInterval: tickInterval)
        return loop.run(onTick: onTick)
    }

    // MARK: Loop access to the shared state

    func publish(_ update: (inout SupervisorSnapshot) -> Void) {
        shared.withLock { update(&$0.snapshot) }
    }

    struct Commands {
        var environment: [String: String]?
        var generation: UInt64
        var reload: (environment: [String: String], generation: UInt64, signals: [Int32])?
        var probe: ProbeRequest?
        var stop: Bool
    }

    func takeCommands() -> Commands {
        var count: UInt64 = 0
        _ = read(commandFD, &count, 8)
        return shared.withLock { s in
            defer { s.pendingEnvironment = nil; s.pendingReload = nil; s.pendingProbe = nil }
            return Commands(environment: s.pendingEnvironment, generation: s.pendingGeneration, reload: s.pendingReload,
                            probe: s.pendingProbe, stop: s.stopRequested)
        }
    }

    func notifyExit(_ exit: ChildExit) {
        shared.withLock { $0.exitObserver }?(exit)
    }
}
