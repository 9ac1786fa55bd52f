// What the HTTP endpoints read: the supervisor's snapshot, the latest sample (published by the
// sampling tick), the log ring and any extra metric families. Thread-safe: the tick publishes on the
// supervisor's thread, the HTTP server reads on its own.
public import CodeRunnerWire
public import ProcSampling
public import Supervision
import Synchronization

public final class AgentObservations: Sendable {
    public let identity: AgentIdentity
    private let snapshotProvider: @Sendable () -> SupervisorSnapshot
    /// Internal: the HTTP server arms its wake-up for held `/v1/logs?wait=` requests.
    let logRing: LogRing?
    private let latest = Mutex<ProcessTreeSample?>(nil)
    private let providers = Mutex<[any MetricFamilyProvider]>([])
    private let selfUsage: @Sendable () -> AgentUsage
    private let configStatus = Mutex<ConfigStatusProvider?>(nil)
    private let healthReport = Mutex<HealthReportProvider?>(nil)

    private final class HealthReportProvider: Sendable {
        let body: @Sendable () -> AgentHealthReport?
        init(_ body: @escaping @Sendable () -> AgentHealthReport?) { self.body = body }
    }

    /// The provider in a class: a closure kept directly in a Mutex gains a reabstraction thunk each time
    /// `withLock { $0 }` reads it (Swift 6.3), so each /v1/status would walk a longer chain than the one before.
    private final class ConfigStatusProvider: Sendable {
        let body: @Sendable () -> AgentConfigStatus
        init(_ body: @escaping @Sendable () -> AgentConfigStatus) { self.body = body }
    }

    /// - Parameters:
    ///   - snapshot: the supervisor's current snapshot (`{ supervisor.snapshot }`).
    ///   - logs: the supervisor's log ring; nil serves an empty log.
    ///   - selfUsage: the agent's own figures; /proc/self by default.
    public init(identity: AgentIdentity, snapshot: @escaping @Sendable () -> SupervisorSnapshot, logs: LogRing?,
                selfUsage: @escaping @Sendable () -> AgentUsage = SelfMetrics.read) {
        self.identity = identity
        self.snapshotProvider = snapshot
        self.logRing = logs
        self.selfUsage = selfUsage
    }

    /// Publishes the sampler's newest figures.
    public func publish(_ sample: ProcessTreeSample) { latest.withLock { $0 = sample } }

    public var latestSample: ProcessTreeSample? { latest.withLock { $0 } }

    /// Adds families from another module (config reload counters, controller reachability).
    public func register(_ provider: any MetricFamilyProvider) { providers.withLock { $0.append(provider) } }

    /// The whole /metrics body.
    public func metricsText() -> String {
        var families = AgentMetrics.appFamilies(snapshot: snapshotProvider(), sample: latestSample, version: identity.version)
        families += SelfMetrics.families(selfUsage())
        for provider in providers.withLock({ $0 }) { families += provider.metricFamilies() }
        return PrometheusText.render(families, commonLabels: identity.labels)
    }

    /// Adds the hot-reload section to /v1/status (ConfigReloader).
    public func setConfigStatus(_ provider: @escaping @Sendable () -> AgentConfigStatus) {
        let boxed = ConfigStatusProvider(provider)
        configStatus.withLock { $0 = boxed }
    }

    /// Adds the health check's latest outcome to /v1/status (HealthChecker).
    public func setHealthReport(_ provider: @escaping @Sendable () -> AgentHealthReport?) {
        let boxed = HealthReportProvider(provider)
        healthReport.withLock { $0 = boxed }
    }

    public func status() -> AgentStatus {
        var status = StatusReport.status(snapshot: snapshotProvider(), sample: latestSample, agent: selfUsage(), identity: identity)
        status.config = configStatus.withLock { $0 }?.body()
        status.health = healthReport.withLock { $0 }?.body()
        return status
    }

    public func logs(after sequence: UInt64, limit: Int) -> AgentLogs {
        logs(LogQuery(start: .after(sequence), limit: limit))
    }

    /// The lines `query` asks for now (its `wait` is the HTTP server's business), with the ring's bounds read
    /// in the same look, so `lastSequence` is never behind the lines.
    public func logs(_ query: LogQuery) -> AgentLogs {
        guard let logRing else { return AgentLogs(lines: [], lastSequence: 0, oldestSequence: 1) }
        switch query.start {
        case .after(let sequence): return StatusReport.logs(logRing.page(after: sequence, limit: query.limit))
        case .tail(let count): return StatusReport.logs(logRing.tail(count))
        }
    }
}
