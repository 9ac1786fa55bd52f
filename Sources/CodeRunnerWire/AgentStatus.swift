// What coderunner-agent answers at `GET /v1/status` and `GET /v1/logs`; the controller's scaler polls
// and decodes these. Field names are camelCase; times are Unix seconds; absent values are omitted.

/// A snapshot of the supervisor and the latest sample of the app's process tree.
public struct AgentStatus: Codable, Sendable, Equatable {
    /// The supervisor's state: `starting`, `running`, `backoff`, `stopping` or `exited`.
    public var state: String
    /// The current child's pid, while one runs.
    public var pid: Int32?
    /// Children started after the first one.
    public var restarts: Int
    /// How the previous child ended.
    public var lastExit: AgentExit?
    /// When the current child started.
    public var startedAt: Double?
    /// When the next restart is due, while in backoff.
    public var nextRestartAt: Double?
    public var deployment: String?
    public var instance: String?
    /// The agent's version (`coderunner-agent --version`).
    public var version: String?
    /// When `app` was sampled; nil before the first sample.
    public var sampledAt: Double?
    public var app: AppUsage
    public var agent: AgentUsage
    /// The config the app runs with (keys, never values), when the agent pulls it from a controller.
    public var config: AgentConfigStatus?
    /// The latest health check of the current child, when the config sets one (`AgentConfig.healthCheck`).
    public var health: AgentHealthReport?

    public init(state: String, pid: Int32? = nil, restarts: Int = 0, lastExit: AgentExit? = nil, startedAt: Double? = nil,
                nextRestartAt: Double? = nil, deployment: String? = nil, instance: String? = nil, version: String? = nil,
                sampledAt: Double? = nil, app: AppUsage, agent: AgentUsage, config: AgentConfigStatus? = nil,
                health: AgentHealthReport? = nil) {
        self.config = config
        self.health = health
        self.state = state; self.pid = pid; self.restarts = restarts; self.lastExit = lastExit
        self.startedAt = startedAt; self.nextRestartAt = nextRestartAt
        self.deployment = deployment; self.instance = instance; self.version = version
        self.sampledAt = sampledAt; self.app = app; self.agent = agent
    }
}

/// The hot-reload part of /v1/status. Keys and versions only: values (secrets) never leave the app's environment.
public struct AgentConfigStatus: Codable, Sendable, Equatable {
    /// The version the app runs with; nil before the first config.
    public var version: Int64?
    public var checksum: String?
    public var keys: [String]
    /// `controller` or `cache` (the last-known-good file); nil before the first config.
    public var source: String?
    /// `applied`, `unchanged`, `invalid` or `rolled_back`, for `lastReloadVersion`.
    public var lastReloadResult: String?
    public var lastReloadVersion: Int64?
    /// Why, for `invalid` and `rolled_back` (names keys, never values).
    public var lastReloadReason: String?
    public var controllerUp: Bool
    public var lastKnownGoodVersion: Int64?

    public init(version: Int64?, checksum: String?, keys: [String], source: String?, lastReloadResult: String?,
                lastReloadVersion: Int64?, lastReloadReason: String?, controllerUp: Bool, lastKnownGoodVersion: Int64?) {
        self.version = version; self.checksum = checksum; self.keys = keys; self.source = source
        self.lastReloadResult = lastReloadResult; self.lastReloadVersion = lastReloadVersion
        self.lastReloadReason = lastReloadReason; self.controllerUp = controllerUp; self.lastKnownGoodVersion = lastKnownGoodVersion
    }
}

/// How a child ended: `code` when it exited, `signal` when a signal ended it. `shellCode` is what a
/// shell reports (the code, or 128+signal), which the agent itself exits with.
public struct AgentExit: Codable, Sendable, Equatable {
    public var code: Int32?
    public var signal: Int32?
    public var shellCode: Int32
    public init(code: Int32? = nil, signal: Int32? = nil, shellCode: Int32) {
        self.code = code; self.signal = signal; self.shellCode = shellCode
    }
}

/// The app's whole process tree. Counters (`...Total`) never go backwards over the agent's life.
public struct AppUsage: Codable, Sendable, Equatable {
    public var cpuSecondsTotal: Double
    /// Cores in use over the last sample interval.
    public var cpuCores: Double
    /// `cpuCores` as a percentage of `cpuLimitCores`.
    public var cpuUtilizationPercent: Double
    /// The CPU allocation: the cgroup quota, else --cpu-limit, else the online CPUs.
    public var cpuLimitCores: Double
    public var memoryRssBytes: UInt64
    /// `memoryRssBytes` as a percentage of `memoryLimitBytes`.
    public var memoryUtilizationPercent: Double
    /// The memory allocation: the cgroup limit, else --memory-limit, else MemTotal.
    public var memoryLimitBytes: UInt64
    public var processes: Int
    public var threads: Int
    public var openFds: Int
    public var ioReadBytesTotal: UInt64
    public var ioWriteBytesTotal: UInt64
    /// ESTABLISHED TCP connections to the app's listening sockets: its concurrency.
    public var tcpConnections: Int
    /// Cores the app's threads wanted over the last interval: `cpuCores` plus the time they waited while runnable
    /// (for the quota's next period, or for a CPU). Unlike utilisation it keeps rising past the limit. Absent from
    /// agents older than the field.
    public var cpuDemandCores: Double?
    /// `cpuDemandCores` as a percentage of `cpuLimitCores`: 200 when the app wants twice its limit.
    public var cpuDemandPercent: Double?

    public init(cpuSecondsTotal: Double = 0, cpuCores: Double = 0, cpuUtilizationPercent: Double = 0, cpuLimitCores: Double = 0,
                memoryRssBytes: UInt64 = 0, memoryUtilizationPercent: Double = 0, memoryLimitBytes: UInt64 = 0,
                processes: Int = 0, threads: Int = 0, openFds: Int = 0, ioReadBytesTotal: UInt64 = 0,
                ioWriteBytesTotal: UInt64 = 0, tcpConnections: Int = 0, cpuDemandCores: Double? = nil,
                cpuDemandPercent: Double? = nil) {
        self.cpuSecondsTotal = cpuSecondsTotal; self.cpuCores = cpuCores; self.cpuUtilizationPercent = cpuUtilizationPercent
        self.cpuLimitCores = cpuLimitCores; self.memoryRssBytes = memoryRssBytes
        self.memoryUtilizationPercent = memoryUtilizationPercent; self.memoryLimitBytes = memoryLimitBytes
        self.processes = processes; self.threads = threads; self.openFds = openFds
        self.ioReadBytesTotal = ioReadBytesTotal; self.ioWriteBytesTotal = ioWriteBytesTotal; self.tcpConnections = tcpConnections
        self.cpuDemandCores = cpuDemandCores; self.cpuDemandPercent = cpuDemandPercent
    }
}

/// The agent's own process.
public struct AgentUsage: Codable, Sendable, Equatable {
    public var cpuSecondsTotal: Double
    public var residentMemoryBytes: UInt64
    public var virtualMemoryBytes: UInt64
    public var startTimeSeconds: Double
    public var openFds: Int
    public var maxFds: Int

    public init(cpuSecondsTotal: Double = 0, residentMemoryBytes: UInt64 = 0, virtualMemoryBytes: UInt64 = 0,
                startTimeSeconds: Double = 0, openFds: Int = 0, maxFds: Int = 0) {
        self.cpuSecondsTotal = cpuSecondsTotal; self.residentMemoryBytes = residentMemoryBytes
        self.virtualMemoryBytes = virtualMemoryBytes; self.startTimeSeconds = startTimeSeconds
        self.openFds = openFds; self.maxFds = maxFds
    }
}

/// `GET /v1/logs`: the app's output lines, oldest first.
/// - `after=SEQ&limit=N` (default 0 and 100, limit 1...1000): up to N lines after SEQ;
/// - `tail=N` (1...1000; not with `after` or `limit`): the newest N lines held;
/// - `wait=DURATION` (`500ms`, `30s`, `2.5s`, or plain seconds; at most 60 s): when no line after SEQ is held,
///   the agent holds the request until one is appended (answering at once) or the wait ends (answering no lines).
/// To follow the log, ask again with `after=` the last line's sequence, or `lastSequence` when no line came.
/// `oldestSequence - after - 1`, when positive, is how many lines the ring dropped before they were read.
public struct AgentLogs: Codable, Sendable, Equatable {
    public var lines: [AgentLogLine]
    /// The newest sequence the agent has assigned (0 before any output).
    public var lastSequence: UInt64
    /// The oldest sequence the ring still holds (`lastSequence + 1` while it holds none).
    public var oldestSequence: UInt64
    /// `oldestSequence` defaults to the first line's sequence (`lastSequence + 1` without lines): the ring held
    /// at least these lines.
    public init(lines: [AgentLogLine], lastSequence: UInt64, oldestSequence: UInt64? = nil) {
        self.lines = lines; self.lastSequence = lastSequence
        self.oldestSequence = oldestSequence ?? lines.first?.sequence ?? lastSequence + 1
    }
}

public struct AgentLogLine: Codable, Sendable, Equatable {
    public var sequence: UInt64
    public var timestamp: Double
    /// `stdout` or `stderr`.
    public var stream: String
    public var text: String
    public init(sequence: UInt64, timestamp: Double, stream: String, text: String) {
        self.sequence = sequence; self.timestamp = timestamp; self.stream = stream; self.text = text
    }
}
