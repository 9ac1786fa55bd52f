import CShims
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
/// - SIGPIPE: ignored (not blocked): an external one does nothing, and writing to a closed output gives EPIPE.
/// - SIGKILL, SIGSTOP: cannot be caught. The synchronous signals (SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP,
///   SIGSYS) keep their default action: they are the agent's own faults.
/// - Every other signal (SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGALRM, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, real-time
///   signals, ...): forwarded to the child's process group, and dropped when no child runs. If it ends the child,
///   the restart policy decides what follows.
///
/// The loop (`run`) is the only code that touches the child; other threads talk to it through `restart` and
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
        var nextGeneration: UInt64 = 1
        var stopRequested = false
        var running = false
        var exitObserver: (@Sendable (ChildExit) -> Void)?
    }
    private let shared = Mutex(Shared())
    private let signalFD: Int32
    private let commandFD: Int32

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
        signal(SIGPIPE, SIG_IGN)
        if Self.threadCount() > 1 {
            // Another thread without the mask would take SIGTERM & co. with their default action (death).
            let warning = "coderunner-agent: warning: the supervisor was created after other threads; signals may be lost\n"
            _ = warning.withCString { write(STDERR_FILENO, $0, strlen($0)) }
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

    fileprivate var signalDescriptor: Int32 { signalFD }
    fileprivate var commandDescriptor: Int32 { commandFD }

    fileprivate func publish(_ update: (inout SupervisorSnapshot) -> Void) {
        shared.withLock { update(&$0.snapshot) }
    }

    fileprivate func takeCommands() -> (environment: [String: String]?, generation: UInt64, stop: Bool) {
        var count: UInt64 = 0
        _ = read(commandFD, &count, 8)
        return shared.withLock { s in
            defer { s.pendingEnvironment = nil }
            return (s.pendingEnvironment, s.pendingGeneration, s.stopRequested)
        }
    }

    fileprivate func notifyExit(_ exit: ChildExit) {
        shared.withLock { $0.exitObserver }?(exit)
    }
}

// MARK: - The loop

/// The loop's private state, owned by the thread in `Supervisor.run`.
private struct SupervisorLoop {
    let supervisor: Supervisor
    let config: SupervisorConfiguration
    let containment: (any ChildContainment)?
    let tickInterval: Duration?
    /// The child gets the agent's terminal instead of pipes when stdin is a terminal.
    let terminal: Bool
    /// Whether the agent's group owns the terminal's foreground, so it may hand it to the child and take it back.
    let foreground: Bool

    var environment: [String: String]
    var pendingEnvironment: [String: String]?
    /// Generation of `environment` and of `pendingEnvironment` (see `Supervisor.restart`).
    var generation: UInt64 = 0
    var pendingGeneration: UInt64 = 0
    var backoff: RestartBackoff
    var random = SystemRandomNumberGenerator()

    /// The running child, until reaped.
    var child: pid_t?
    var childStartedAt: Duration = .zero
    /// The process group of the current or last child, until it is empty.
    var group: pid_t?
    /// When the group gets SIGKILL; set once the stop signal (or a stop request) reached it.
    var killDeadline: Duration?
    var killed = false
    /// Once set, no more children start; the agent exits when the group is empty.
    var exiting = false
    /// When the next child may start (nil: none is due).
    var nextStartAt: Duration?
    var lastExit: ExitStatus?
    var restarts = 0
    var started = false
    var nextTick: Duration?
    var pipes: [OutputPipe] = []
    let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 64 * 1024, alignment: 16)

    /// How often the loop checks whether a child's group is empty: members that are not our children exit
    /// without telling us.
    static let groupPollInterval: Duration = .milliseconds(20)

    init(supervisor: Supervisor, tickInterval: Duration?) {
        self.supervisor = supervisor
        config = supervisor.configuration
        containment = supervisor.containment
        self.tickInterval = tickInterval
        // A sandboxed app never gets the agent's terminal: it could push input into it (TIOCSTI).
        terminal = containment == nil && isatty(STDIN_FILENO) == 1
        foreground = terminal && tcgetpgrp(STDIN_FILENO) == getpgrp()
        environment = config.environment
        backoff = RestartBackoff(policy: config.backoff)
    }

    mutating func run(onTick: () -> Void) -> Int32 {
        defer { buffer.deallocate() }
        let now = Now.monotonic()
        if config.waitForEnvironment {
            supervisor.publish { $0.state = .waitingForConfig }
        } else {
            nextStartAt = now
        }
        if let tickInterval { nextTick = now + tickInterval }
        handleCommands()  // a restart or stop requested before run() applies to the first child
        var fds: [pollfd] = []
        while true {
            if let code = settle() {
                finish()
                return code
            }
            // Build the poll set: our two control fds, then each pipe (read when nothing waits to be relayed,
            // else wait until its target can take more, which holds the child back when our output is slow).
            fds.removeAll(keepingCapacity: true)
            fds.append(pollfd(fd: supervisor.signalDescriptor, events: Int16(POLLIN), revents: 0))
            fds.append(pollfd(fd: supervisor.commandDescriptor, events: Int16(POLLIN), revents: 0))
            for pipe in pipes {
                if pipe.hasPending {
                    fds.append(pollfd(fd: pipe.target, events: Int16(POLLOUT), revents: 0))
                } else if pipe.isOpen {
                    fds.append(pollfd(fd: pipe.fd, events: Int16(POLLIN), revents: 0))
                } else {
                    fds.append(pollfd(fd: -1, events: 0, revents: 0))  // fd -1: poll skips it, and the indices stay aligned
                }
            }
            let ready = poll(&fds, nfds_t(fds.count), timeoutMilliseconds(from: Now.monotonic()))
            if ready < 0 && errno != EINTR {
                message("poll failed: \(String(cString: strerror(errno)))")
            }
            if fds[0].revents != 0 { handleSignals() }
            if fds[1].revents != 0 { handleCommands() }
            for i in pipes.indices where fds[i + 2].revents != 0 {
                if pipes[i].hasPending {
                    pipes[i].relay()
                } else {
                    pipes[i].read(into: buffer, ring: supervisor.logs)
                }
            }
            let now = Now.monotonic()
            if let deadline = killDeadline, !killed, now >= deadline { killGroup() }
            if let tick = nextTick, let interval = tickInterval, now >= tick {
                onTick()
                let after = Now.monotonic()
                nextTick = tick + interval > after ? tick + interval : after + interval
            }
        }
    }

    /// The poll timeout: until the nearest timer (tick, SIGKILL deadline, next start, group check).
    func timeoutMilliseconds(from now: Duration) -> Int32 {
        var nearest: Duration?
        func consider(_ d: Duration?) {
            guard let d else { return }
            nearest = nearest.map { min($0, d) } ?? d
        }
        consider(nextTick)
        if !killed { consider(killDeadline) }
        if child == nil && group == nil && !exiting { consider(nextStartAt) }
        if child == nil && group != nil { consider(now + Self.groupPollInterval) }
        guard let nearest else { return -1 }
        let wait = nearest - now
        return wait.pollMilliseconds
    }

    // MARK: Decisions

    /// Moves the state machine forward after events: clears an empty group, starts a due child, or returns the
    /// exit code when the agent is done.
    mutating func settle() -> Int32? {
        if child == nil, let g = group {
            if groupIsEmpty(g) {
                group = nil
                killDeadline = nil
                killed = false
                closePipes()
                reclaimTerminal()
            } else if killDeadline == nil {
                // The child is gone but part of its group lives on: stop it like the child.
                signalGroup(config.stopSignal)
                killDeadline = Now.monotonic() + config.gracePeriod
            }
        }
        guard child == nil, group == nil else { return nil }
        if exiting {
            supervisor.publish { $0.state = .exited; $0.pid = nil; $0.nextRestartAt = nil }
            return lastExit?.shellCode ?? 0
        }
        guard let due = nextStartAt else { return nil }
        let now = Now.monotonic()
        if now < due {
            let unixDue = Now.unix() + (due - now).seconds
            supervisor.publish { $0.state = .backoff; $0.pid = nil; $0.nextRestartAt = unixDue }
            return nil
        }
        nextStartAt = nil
        if let env = pendingEnvironment {
            environment = env
            generation = pendingGeneration
            pendingEnvironment = nil
            backoff.reset()
        }
        if started { restarts += 1 }
        started = true
        let generation = self.generation
        supervisor.publish { $0.state = .starting; $0.restarts = restarts; $0.nextRestartAt = nil; $0.generation = generation }
        switch spawnChild() {
        case .success(let pid):
            child = pid
            group = pid
            childStartedAt = Now.monotonic()
            let unixStart = Now.unix()
            supervisor.publish { $0.state = .running; $0.pid = pid; $0.startedAt = unixStart }
        case .failure(let failure):
            message(failure.message)
            childStartedAt = Now.monotonic()
            childEnded(.exited(failure.exitCode))
            return settle()
        }
        return nil
    }

    /// The child ended (or could not start): decide what comes next.
    mutating func childEnded(_ status: ExitStatus) {
        child = nil
        lastExit = status
        let now = Now.monotonic()
        supervisor.publish { $0.lastExit = status; $0.pid = nil; $0.startedAt = nil }
        supervisor.notifyExit(ChildExit(status: status, generation: generation, ranFor: now - childStartedAt))
        if exiting { return }
        // The observer may have asked for a restart (a rollback): take it now, instead of a crash backoff.
        handleCommands()
        if exiting { return }
        if pendingEnvironment != nil {
            nextStartAt = now
        } else if config.restartPolicy.restarts(after: status) {
            nextStartAt = backoff.childExited(startedAt: childStartedAt, exitedAt: now, using: &random)
            message("the child \(status); restarting in \(format(nextStartAt! - now)) s (restart policy \(config.restartPolicy.rawValue))")
        } else {
            exiting = true
        }
        if group != nil { supervisor.publish { $0.state = .stopping } }
    }

    /// Sends the stop signal (or `signal`) to the running child's group and starts the grace period, once.
    mutating func beginStop(with signal: Int32) {
        guard child != nil || group != nil else { return }
        signalGroup(signal)
        if killDeadline == nil { killDeadline = Now.monotonic() + config.gracePeriod }
        supervisor.publish { $0.state = .stopping }
    }

    mutating func killGroup() {
        killed = true
        if child != nil || group.map({ !groupIsEmpty($0) }) == true {
            message("the grace period (\(format(config.gracePeriod)) s) is over: sending SIGKILL to the child's process group")
        }
        signalGroup(SIGKILL)
    }

    // MARK: Events

    mutating func handleSignals() {
        while true {
            let signal = cr_signalfd_next(supervisor.signalDescriptor)
            if signal <= 0 { return }
            if signal == SIGCHLD {
                reap()
            } else if Signals.stopRequests.contains(signal) || signal == config.stopSignal {
                exiting = true
                if child == nil && group == nil && lastExit == nil { lastExit = .signaled(signal) }
                beginStop(with: signal)
            } else if group != nil {
                signalGroup(signal)
            }
        }
    }

    mutating func handleCommands() {
        let (env, envGeneration, stop) = supervisor.takeCommands()
        // The stop signal goes out once per child: a second request while it is stopping only updates the plan
        // (a shell's trap would run again on a second signal).
        if stop && !exiting {
            exiting = true
            if killDeadline == nil { beginStop(with: config.stopSignal) }
        }
        if let env, !exiting {
            pendingEnvironment = env
            pendingGeneration = envGeneration
            if child != nil {
                if killDeadline == nil { beginStop(with: config.stopSignal) }
            } else {
                nextStartAt = Now.monotonic()  // in backoff, or clearing a dead child's group: skip the wait
            }
        }
    }

    /// Reaps every exited process: our child, and the orphans re-parented to us (PID 1 or subreaper).
    mutating func reap() {
        while true {
            var status: Int32 = 0
            let pid = waitpid(-1, &status, WNOHANG)
            if pid <= 0 { return }  // 0: none exited; -1 ECHILD: no children at all
            guard pid == child else { continue }
            // <sys/wait.h> macros: the low 7 bits are the terminating signal, or 0 when it exited normally.
            let signal = status & 0x7f
            var ended: ExitStatus = signal == 0 ? .exited((status >> 8) & 0xff) : .signaled(signal)
            // bubblewrap, the sandbox's launcher, reports an app that signal N ended as exit code 128+N.
            if containment != nil, case .exited(let code) = ended, code > 128, code < 128 + 65 { ended = .signaled(code - 128) }
            childEnded(ended)
        }
    }

    // MARK: Processes

    func groupIsEmpty(_ g: pid_t) -> Bool {
        if let containment { return containment.isEmpty }
        return kill(-g, 0) == -1 && errno == ESRCH
    }

    /// Signals the whole group, and the child itself should it have left the group (setsid, setpgid).
    /// In a sandbox: every process in it; the launcher (our child) only gets SIGKILL.
    func signalGroup(_ signal: Int32) {
        if let containment {
            containment.signal(signal, sparing: signal == SIGKILL ? nil : child)
            return
        }
        if let g = group { _ = kill(-g, signal) }
        if let c = child, getpgid(c) != group { _ = kill(c, signal) }
    }

    struct SpawnFailure: Error {
        let exitCode: Int32
        let message: String
    }

    mutating func spawnChild() -> Result<pid_t, SpawnFailure> {
        if let containment { return spawnContained(containment) }
        let name = config.command[0]
        let path: String
        switch ExecutableLookup.resolve(name, path: environment["PATH"]) {
        case .found(let p): path = p
        case .notFound:
            return .failure(SpawnFailure(exitCode: 127, message: "cannot run '\(name)': command not found"))
        case .permissionDenied(let p):
            return .failure(SpawnFailure(exitCode: 126, message: "cannot run '\(p)': Permission denied"))
        }

        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        // Own process group; a clean signal mask and default dispositions (we block and ignore things).
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        posix_spawnattr_setpgroup(&attributes, 0)
        var none = sigset_t()
        sigemptyset(&none)
        posix_spawnattr_setsigmask(&attributes, &none)
        var all = sigset_t()
        sigfillset(&all)
        posix_spawnattr_setsigdefault(&attributes, &all)

        var newPipes: [OutputPipe] = []
        var childEnds: [Int32] = []
        defer { for fd in childEnds { close(fd) } }
        if terminal {
            // The child inherits the terminal; in its own group it must own the foreground to read it and to
            // give an interactive shell job control. glibc does tcsetpgrp in the child before exec, so there is no
            // window where the child reads the terminal from the background (and stops on SIGTTIN).
            if foreground { cr_spawn_file_actions_addtcsetpgrp(&actions, STDIN_FILENO) }
        } else {
            for (stream, target) in [(LogStream.stdout, STDOUT_FILENO), (.stderr, STDERR_FILENO)] {
                var ends: [Int32] = [-1, -1]
                guard cr_pipe_cloexec(&ends) == 0 else {
                    let e = errno
                    for p in newPipes { close(p.fd) }
                    return .failure(SpawnFailure(exitCode: 126, message: "cannot run '\(name)': pipe: \(String(cString: strerror(e)))"))
                }
                // Only our end is non-blocking; the child's stays blocking, as a terminal or file would be.
                _ = fcntl(ends[0], F_SETFL, fcntl(ends[0], F_GETFL) | O_NONBLOCK)
                childEnds.append(ends[1])
                posix_spawn_file_actions_adddup2(&actions, ends[1], target)
                newPipes.append(OutputPipe(fd: ends[0], stream: stream, target: target))
            }
        }

        var argv: [UnsafeMutablePointer<CChar>?] = config.command.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        cr_spawn_file_actions_addclosefrom(&actions, 3)  // libcurl's sockets may lack FD_CLOEXEC
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, path, &actions, &attributes, &argv, &envp)
        guard rc == 0 else {
            for p in newPipes { close(p.fd) }
            // As shells do: 127 when the file does not exist, 126 when it exists but cannot be executed.
            let code: Int32 = rc == ENOENT ? 127 : 126
            return .failure(SpawnFailure(exitCode: code, message: "cannot run '\(path)': \(String(cString: strerror(rc)))"))
        }
        pipes += newPipes
        return .success(pid)
    }

    /// Starts the child inside `containment`: the launcher joins the sandbox's cgroups before it runs (see
    /// cr_spawn_contained), with /dev/null as stdin and our pipes as stdout and stderr.
    mutating func spawnContained(_ containment: any ChildContainment) -> Result<pid_t, SpawnFailure> {
        let name = config.command[0]
        let launch: ContainedLaunch
        do {
            launch = try containment.prepareLaunch(command: config.command, environment: environment)
        } catch {
            return .failure(SpawnFailure(exitCode: 126, message: "cannot run '\(name)' in its sandbox: \(error)"))
        }
        defer { launch.close() }
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        var ends: [[Int32]] = []
        defer { for e in ends { close(e[1]) } }
        for _ in 0..<2 {
            var pair: [Int32] = [-1, -1]
            guard cr_pipe_cloexec(&pair) == 0 else {
                let e = errno
                for p in ends { close(p[0]) }
                return .failure(SpawnFailure(exitCode: 126, message: "cannot run '\(name)': pipe: \(String(cString: strerror(e)))"))
            }
            _ = fcntl(pair[0], F_SETFL, fcntl(pair[0], F_GETFL) | O_NONBLOCK)
            ends.append(pair)
        }
        var argv: [UnsafeMutablePointer<CChar>?] = launch.arguments.map { strdup($0) } + [nil]
        var envp: [UnsafeMutablePointer<CChar>?] = launch.environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
        defer {
            for p in argv { free(p) }
            for p in envp { free(p) }
        }
        let pid = launch.cgroupProcs.withUnsafeBufferPointer { cgroups in
            launch.passedDescriptors.withUnsafeBufferPointer { pass in
                cr_spawn_contained(launch.path, &argv, &envp, cgroups.baseAddress, Int32(cgroups.count),
                                   devNull, ends[0][1], ends[1][1], pass.baseAddress, Int32(pass.count))
            }
        }
        guard pid > 0 else {
            let e = errno
            for p in ends { close(p[0]) }
            return .failure(SpawnFailure(exitCode: 126, message: "cannot start the sandbox for '\(name)' (\(launch.path)): \(String(cString: strerror(e)))"))
        }
        pipes.append(OutputPipe(fd: ends[0][0], stream: .stdout, target: STDOUT_FILENO))
        pipes.append(OutputPipe(fd: ends[1][0], stream: .stderr, target: STDERR_FILENO))
        return .success(pid)
    }

    /// Takes the terminal's foreground back from the child's (now empty) group.
    func reclaimTerminal() {
        if foreground { _ = tcsetpgrp(STDIN_FILENO, getpgrp()) }  // SIGTTOU is blocked, so this cannot stop us
    }

    /// Drains what the old pipes still hold, relays it, and closes them. Runs when the child's group is gone,
    /// so a process that left the group and still holds a pipe loses output written after this point.
    mutating func closePipes() {
        for i in pipes.indices {
            pipes[i].drainAndClose(buffer: buffer, ring: supervisor.logs)
        }
        pipes.removeAll()
    }

    mutating func finish() {
        closePipes()
        reclaimTerminal()
    }

    func message(_ text: String) {
        AgentLog.write(text)
    }

    func format(_ d: Duration) -> String {
        let tenths = Int((d.seconds * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}

// MARK: - Output pipes

/// One of the child's output pipes: relayed byte for byte to the agent's own stdout or stderr, and split into
/// lines for the ring.
private struct OutputPipe {
    let fd: Int32
    let stream: LogStream
    let target: Int32
    /// Bytes per write: a pipe or socket that polls writable takes PIPE_BUF bytes without blocking, so a slow
    /// reader never blocks the loop; a file or terminal takes a whole read at once.
    let chunk: Int
    var pending: [UInt8] = []
    var pendingStart = 0
    var splitter = LineSplitter()
    var isOpen = true
    /// Our own output is gone (EPIPE, EBADF...): keep reading the child so it never blocks, record, relay nothing.
    var relayBroken = false

    init(fd: Int32, stream: LogStream, target: Int32) {
        self.fd = fd
        self.stream = stream
        self.target = target
        var st = stat()
        let mode = fstat(target, &st) == 0 ? st.st_mode & S_IFMT : 0
        chunk = (mode == S_IFIFO || mode == S_IFSOCK) ? Int(PIPE_BUF) : 64 * 1024
    }

    var hasPending: Bool { pendingStart < pending.count }

    enum ReadResult { case data, wouldBlock, closed }

    /// Reads what the pipe holds now: into the ring by lines, and into `pending` for relaying.
    @discardableResult
    mutating func read(into buffer: UnsafeMutableRawBufferPointer, ring: LogRing) -> ReadResult {
        let n = Glibc.read(fd, buffer.baseAddress, buffer.count)
        if n > 0 {
            let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<n])
            let now = Now.unix()
            let stream = stream
            splitter.feed(bytes) { ring.append($0, stream: stream, timestamp: now) }
            if !relayBroken {
                pending.removeAll(keepingCapacity: true)
                pendingStart = 0
                pending.append(contentsOf: bytes)
            }
            return .data
        }
        if n < 0 && (errno == EAGAIN || errno == EINTR) { return .wouldBlock }
        isOpen = false
        let stream = stream
        let now = Now.unix()
        splitter.flush { ring.append($0, stream: stream, timestamp: now) }
        return .closed
    }

    /// Writes the next chunk of pending bytes to the target (which polled writable).
    mutating func relay() {
        let count = min(chunk, pending.count - pendingStart)
        let n = pending.withUnsafeBytes { write(target, $0.baseAddress! + pendingStart, count) }
        if n > 0 {
            pendingStart += n
        } else if n < 0 && errno != EAGAIN && errno != EINTR {
            relayBroken = true
            pending.removeAll()
            pendingStart = 0
        }
    }

    mutating func drainAndClose(buffer: UnsafeMutableRawBufferPointer, ring: LogRing) {
        // Bounded: at most 64 reads (4 MiB), and one second of waiting for each stalled write.
        for _ in 0..<64 {
            flushPending()
            guard isOpen, read(into: buffer, ring: ring) == .data else { break }
        }
        flushPending()
        if isOpen {
            let stream = stream
            let now = Now.unix()
            splitter.flush { ring.append($0, stream: stream, timestamp: now) }
        }
        close(fd)
        isOpen = false
    }

    private mutating func flushPending() {
        while hasPending {
            var p = pollfd(fd: target, events: Int16(POLLOUT), revents: 0)
            guard poll(&p, 1, 1000) > 0 else {
                relayBroken = true
                pending.removeAll()
                pendingStart = 0
                return
            }
            relay()
        }
    }
}

// MARK: - PATH

/// Finds a command the way execvp does, but in the child's PATH rather than the agent's (posix_spawnp would use
/// the agent's, and a restart may change PATH).
public enum ExecutableLookup {
    public enum Resolution: Equatable, Sendable {
        case found(String)
        case notFound
        /// A file by that name exists but cannot be executed (the shell's 126).
        case permissionDenied(String)
    }

    /// glibc's default when PATH is unset (confstr(_CS_PATH)).
    public static let defaultPath = "/bin:/usr/bin"

    public static func resolve(_ name: String, path: String?) -> Resolution {
        if name.contains("/") {
            // execvp does no lookup either; posix_spawn reports ENOENT or EACCES for it.
            return .found(name)
        }
        guard !name.isEmpty else { return .notFound }
        var denied: String?
        for dir in (path ?? defaultPath).split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + name
            var st = stat()
            guard stat(candidate, &st) == 0 else { continue }
            if st.st_mode & S_IFMT == S_IFREG && access(candidate, X_OK) == 0 {
                return .found(candidate)
            }
            if denied == nil { denied = candidate }  // execvp remembers EACCES and keeps looking
        }
        return denied.map { .permissionDenied($0) } ?? .notFound
    }
}
