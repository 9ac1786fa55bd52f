// public: the API names pid_t.
// Swift 6.3 warns that this import is unused; it is wrong: made internal, the declarations fail to compile.
public import Glibc

/// Every rule of the supervisor, without I/O: when a child starts, which signal reaches its group and when, when
/// SIGKILL follows, how long a restart waits, and the agent's exit code.
///
/// The `Supervisor` feeds it events (a signal, a command, a spawn's outcome, a reaped child, an emptied group)
/// with the monotonic time, performs the actions it returns in order, and calls `advance(now:)` before each wait,
/// sleeping at most until `nextDeadline(now:)`. Nothing here reads a clock or touches a process, so tests drive it
/// on a virtual clock.
///
/// The life of one child: `.spawn` → `spawned` → (running) → `childExited` → its group is stopped and must empty
/// (`groupEmptied`) → the restart policy decides: start again after a backoff, or exit with the child's status.
/// "The group" is the child's process group, or every process of its sandbox (see `ChildContainment`).
public struct SupervisorStateMachine {
    /// What happened, for `handle(_:now:)`.
    public enum Event: Equatable, Sendable {
        /// A signal arrived on the signalfd.
        case signal(Int32, from: SignalSource)
        /// `Supervisor.restart(environment:)`.
        case restartRequested(environment: [String: String], generation: UInt64)
        /// `Supervisor.reload(environment:signals:)`: the running child gets `signals` and keeps running; the
        /// next start, whenever it comes, uses `environment`.
        case reloadRequested(environment: [String: String], generation: UInt64, signals: [Int32])
        /// `Supervisor.requestStop()`.
        case stopRequested
        /// The `.spawn` action started the child.
        case spawned(pid: pid_t)
        /// The `.spawn` action could not start it: the code a shell would exit with (126, 127) and why.
        case spawnFailed(exitCode: Int32, message: String)
        /// The child was reaped with this status.
        case childExited(ExitStatus)
        /// No process is left in the child's group (or sandbox); only reported once the child was reaped.
        case groupEmptied
    }

    /// What the supervisor must do, in order.
    public enum Action: Equatable, Sendable {
        /// Reap every exited process, and report the child's exit as `childExited`.
        case reap
        /// Start the command with this environment, and report `spawned` or `spawnFailed`.
        case spawn(environment: [String: String], generation: UInt64)
        /// Send the signal to the child's group (in a sandbox: to every process but its launcher).
        case signalGroup(Int32)
        /// SIGKILL to the whole group, the sandbox's launcher included.
        case killGroup
        /// One line on the agent's stderr.
        case log(String)
        /// Tell the exit observer (`Supervisor.onChildExit`), then hand over any commands it made.
        case notifyExit(ChildExit)
        /// The group is gone: relay and close what its output pipes still hold, take the terminal back.
        case releaseGroup
        /// The agent is done: exit with this code.
        case exit(Int32)
    }

    /// How often the supervisor checks whether a child's group is empty once the child is gone: the other
    /// members are not our children and exit without telling us.
    public static let groupPollInterval: Duration = .milliseconds(20)

    public let configuration: SupervisorConfiguration
    /// Whether the child is a sandbox's launcher (bubblewrap), which reports an app killed by signal N as 128+N.
    public let contained: Bool

    /// The state `Supervisor.snapshot` shows.
    public private(set) var state: SupervisorState
    /// The running child, until reaped.
    public private(set) var child: pid_t?
    /// The process group of the current or last child, until it is empty.
    public private(set) var group: pid_t?
    /// Children started after the first one.
    public private(set) var restarts = 0
    /// How the last child ended.
    public private(set) var lastExit: ExitStatus?
    /// The environment generation of the current (or last) child.
    public private(set) var generation: UInt64 = 0
    /// When the running child started (monotonic).
    public private(set) var childStartedAt: Duration = .zero
    /// When the next child may start; nil when none is due (waiting for config, running, exiting).
    public private(set) var nextStartAt: Duration?

    /// The environment of the current (or last) child.
    public private(set) var environment: [String: String]
    private var pendingEnvironment: [String: String]?
    private var pendingGeneration: UInt64 = 0
    /// The environment for the next start that needs no restart now (a reload by signal, or a change deferred to
    /// the next start); a restart request supersedes it.
    private var deferredEnvironment: [String: String]?
    private var deferredGeneration: UInt64 = 0
    private var backoff: RestartBackoff
    private var random: AnyRandom
    /// When the group gets SIGKILL; set once the stop signal reached it, cleared when it is empty.
    private var killDeadline: Duration?
    private var killed = false
    /// Once set, no more children start; the agent exits when the group is empty.
    private var exiting = false
    private var started = false
    /// A child ended and what follows is not decided yet: `advance` decides, after the exit observer had its say.
    private var exitedAt: Duration?
    private var finished = false

    /// The machine at `now`, before the first child: due at once, or waiting for its first environment.
    public init(
        configuration: SupervisorConfiguration, contained: Bool, now: Duration,
        random: any RandomNumberGenerator = SystemRandomNumberGenerator()
    ) {
        self.configuration = configuration
        self.contained = contained
        self.random = AnyRandom(base: random)
        environment = configuration.environment
        backoff = RestartBackoff(policy: configuration.backoff)
        if configuration.waitForEnvironment {
            state = .waitingForConfig
        } else {
            state = .starting
            nextStartAt = now
        }
    }

    // MARK: Events

    public mutating func handle(_ event: Event, now: Duration) -> [Action] {
        var actions: [Action] = []
        switch event {
        case .signal(let signal, let source):
            if signal == SIGCHLD {
                actions.append(.reap)
            } else if signal == SIGPIPE && !source.isAnotherProcess {
                // The agent's own write to a closed pipe or socket: the writer already got EPIPE, and the app has
                // nothing to do with it. A SIGPIPE another process sent is forwarded like any other signal (as
                // tini and dumb-init do).
            } else if Signals.stopRequests.contains(signal) || signal == configuration.stopSignal {
                exiting = true
                if child == nil && group == nil && lastExit == nil { lastExit = .signaled(signal) }
                beginStop(with: signal, now: now, into: &actions)
            } else if group != nil {
                actions.append(.signalGroup(signal))
            }

        case .stopRequested:
            // The stop signal goes out once per child: a second request while it is stopping changes nothing
            // (a shell's trap would run again on a second signal).
            guard !exiting else { break }
            exiting = true
            if killDeadline == nil { beginStop(with: configuration.stopSignal, now: now, into: &actions) }

        case .restartRequested(let newEnvironment, let newGeneration):
            guard !exiting else { break }
            // Requests coalesce: the latest environment wins, and the child is stopped only once.
            pendingEnvironment = newEnvironment
            pendingGeneration = newGeneration
            deferredEnvironment = nil
            if child != nil {
                if killDeadline == nil { beginStop(with: configuration.stopSignal, now: now, into: &actions) }
            } else {
                nextStartAt = now  // in backoff, or clearing a dead child's group: skip the wait
            }

        case .reloadRequested(let newEnvironment, let newGeneration, let signals):
            guard !exiting else { break }
            if pendingEnvironment != nil {
                // A restart is on its way: it starts the child with the newer environment instead, and a child
                // that has not started yet needs no signal.
                pendingEnvironment = newEnvironment
                pendingGeneration = newGeneration
                break
            }
            deferredEnvironment = newEnvironment
            deferredGeneration = newGeneration
            // Only a child that runs and is not being stopped is signalled: a stopping one is on its way out, and
            // the next one starts with the new environment anyway.
            if child != nil, killDeadline == nil, state == .running {
                for signal in signals { actions.append(.signalGroup(signal)) }
            }

        case .spawned(let pid):
            child = pid
            group = pid
            childStartedAt = now
            state = .running

        case .spawnFailed(let exitCode, let message):
            actions.append(.log(message))
            childStartedAt = now
            childEnded(.exited(exitCode), now: now, into: &actions)

        case .childExited(var status):
            guard child != nil else { break }
            // bubblewrap, the sandbox's launcher, reports an app that signal N ended as exit code 128+N.
            if contained, case .exited(let code) = status, code > 128, code < 128 + 65 { status = .signaled(code - 128) }
            childEnded(status, now: now, into: &actions)

        case .groupEmptied:
            guard child == nil, group != nil else { break }
            group = nil
            killDeadline = nil
            killed = false
            actions.append(.releaseGroup)
        }
        return actions
    }

    // MARK: Time

    /// Fires the timers that are due (SIGKILL after the grace period), decides what follows a child's exit, stops
    /// what is left of a dead child's group, and starts the next child or exits when that is due.
    public mutating func advance(now: Duration) -> [Action] {
        guard !finished else { return [] }
        var actions: [Action] = []
        if let deadline = killDeadline, !killed, now >= deadline {
            killed = true
            actions.append(.log("the grace period (\(Self.format(configuration.gracePeriod)) s) is over: sending SIGKILL to the child's process group"))
            actions.append(.killGroup)
        }
        if let exitedAt {
            self.exitedAt = nil
            decideAfterExit(exitedAt: exitedAt, into: &actions)
        }
        if child == nil, group != nil, killDeadline == nil {
            // The child is gone but part of its group lives on: stop it like the child.
            actions.append(.signalGroup(configuration.stopSignal))
            killDeadline = now + configuration.gracePeriod
        }
        guard child == nil, group == nil else { return actions }
        if exiting {
            finished = true
            state = .exited
            nextStartAt = nil
            actions.append(.exit(lastExit?.shellCode ?? 0))
            return actions
        }
        guard let due = nextStartAt else { return actions }
        if now < due {
            state = .backoff
            return actions
        }
        nextStartAt = nil
        if let pending = pendingEnvironment {
            // A deliberate restart is not a crash: the backoff starts over.
            environment = pending
            generation = pendingGeneration
            pendingEnvironment = nil
            backoff.reset()
        } else if let deferred = deferredEnvironment {
            // Not a deliberate restart (a crash, or the restart policy): the backoff goes on as it was.
            environment = deferred
            generation = deferredGeneration
            deferredEnvironment = nil
        }
        if started { restarts += 1 }
        started = true
        state = .starting
        actions.append(.spawn(environment: environment, generation: generation))
        return actions
    }

    /// When `advance` next has something to do, if nothing else happens first; nil: only an event can change
    /// anything.
    public func nextDeadline(now: Duration) -> Duration? {
        if finished { return nil }
        if exitedAt != nil { return now }
        var nearest: Duration?
        func consider(_ deadline: Duration?) {
            guard let deadline else { return }
            nearest = nearest.map { min($0, deadline) } ?? deadline
        }
        if !killed { consider(killDeadline) }
        if child == nil && group == nil && !exiting { consider(nextStartAt) }
        if child == nil && group != nil { consider(now + Self.groupPollInterval) }
        return nearest
    }

    /// Whether the child is gone and its group must be checked for emptiness (`groupEmptied`).
    public var awaitsEmptyGroup: Bool { child == nil && group != nil }

    // MARK: Rules

    /// Sends `signal` to the child's group and starts the grace period, which is counted from the first stop.
    private mutating func beginStop(with signal: Int32, now: Duration, into actions: inout [Action]) {
        guard child != nil || group != nil else { return }
        actions.append(.signalGroup(signal))
        if killDeadline == nil { killDeadline = now + configuration.gracePeriod }
        state = .stopping
    }

    private mutating func childEnded(_ status: ExitStatus, now: Duration, into actions: inout [Action]) {
        child = nil
        lastExit = status
        exitedAt = now
        actions.append(.notifyExit(ChildExit(status: status, generation: generation, ranFor: now - childStartedAt)))
    }

    /// What follows an exit, once the observer had its say: a restart it asked for (a rollback) beats a crash
    /// backoff; otherwise the restart policy decides between a backoff and the agent's exit.
    private mutating func decideAfterExit(exitedAt: Duration, into actions: inout [Action]) {
        if !exiting, let status = lastExit {
            if pendingEnvironment != nil {
                nextStartAt = exitedAt
            } else if configuration.restartPolicy.restarts(after: status) {
                let due = backoff.childExited(startedAt: childStartedAt, exitedAt: exitedAt, using: &random)
                nextStartAt = due
                actions.append(.log("the child \(status); restarting in \(Self.format(due - exitedAt)) s (restart policy \(configuration.restartPolicy.rawValue))"))
            } else {
                exiting = true
            }
        }
        if group != nil { state = .stopping }
    }

    /// The injected generator as a concrete type (`inout some` cannot take an existential).
    private struct AnyRandom: RandomNumberGenerator {
        var base: any RandomNumberGenerator
        mutating func next() -> UInt64 { base.next() }
    }

    /// Seconds with one decimal: "1.5".
    static func format(_ d: Duration) -> String {
        let tenths = Int((d.seconds * 10).rounded())
        return "\(tenths / 10).\(tenths % 10)"
    }
}
