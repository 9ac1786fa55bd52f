// The values the supervisor shares with the rest of the agent (metrics, status, the log endpoint).
// They are plain Sendable values, so readers on other threads never touch supervisor internals.

/// Which of the child's output streams a log line came from.
public enum LogStream: String, Sendable, Codable {
    case stdout, stderr
}

/// The supervisor's lifecycle, as shown in /v1/status and the metrics.
public enum SupervisorState: String, Sendable, Codable {
    /// Spawning a child (also while restarting with a new environment).
    case starting
    /// A child is running.
    case running
    /// The child exited and the restart policy waits before the next attempt.
    case backoff
    /// The stop signal was sent; waiting for the child (and its group) to go, up to the grace period.
    case stopping
    /// The child is gone for good; the agent is about to exit.
    case exited
    /// No child yet: the agent waits for its first configuration (`SupervisorConfiguration.waitForEnvironment`).
    case waitingForConfig = "waiting_for_config"
}

/// How a child ended, for `Supervisor.onChildExit`.
public struct ChildExit: Sendable, Equatable {
    public var status: ExitStatus
    /// The generation of the environment it ran with (`Supervisor.restart` returns it).
    public var generation: UInt64
    /// From its start to its exit, on the monotonic clock.
    public var ranFor: Duration

    public init(status: ExitStatus, generation: UInt64, ranFor: Duration) {
        self.status = status; self.generation = generation; self.ranFor = ranFor
    }
}

/// How a child ended.
public enum ExitStatus: Sendable, Equatable, Codable {
    case exited(Int32)
    case signaled(Int32)

    /// The status as a shell reports it: the exit code, or 128+N when signal N ended the process.
    public var shellCode: Int32 {
        switch self {
        case .exited(let code): code
        case .signaled(let signal): 128 + signal
        }
    }

    /// Whether the restart policy `on-failure` treats this as a failure (anything but exit 0).
    public var isSuccess: Bool { self == .exited(0) }
}

/// A consistent view of the supervisor, taken under its lock.
public struct SupervisorSnapshot: Sendable, Equatable {
    public var state: SupervisorState
    /// The current child's pid, while one runs.
    public var pid: Int32?
    /// Unix seconds when the current child started.
    public var startedAt: Double?
    /// Children started after the first one (crash restarts and environment restarts).
    public var restarts: Int
    /// How the previous child ended.
    public var lastExit: ExitStatus?
    /// Unix seconds of the next restart attempt, while in backoff.
    public var nextRestartAt: Double?
    /// The environment generation of the current (or last) child; 0 for the initial environment.
    public var generation: UInt64 = 0

    public init(
        state: SupervisorState, pid: Int32? = nil, startedAt: Double? = nil, restarts: Int = 0,
        lastExit: ExitStatus? = nil, nextRestartAt: Double? = nil
    ) {
        self.state = state
        self.pid = pid
        self.startedAt = startedAt
        self.restarts = restarts
        self.lastExit = lastExit
        self.nextRestartAt = nextRestartAt
    }
}
