// When the agent checks its app's health (issue 15's rollout): each new child, and each new config version the
// running child takes without a restart, is checked until one check passes. Pure: the caller passes `now` and what
// it sees, and carries out the check this returns. Never more than one check at a time.
public import CodeRunnerWire

public struct HealthCheckRules: Sendable {
    /// The first check waits this long after the child's start (an app needs a moment to listen), then a failed one
    /// is repeated every `interval` until one passes.
    public static let initialDelay: Double = 0.5
    public static let interval: Double = 1

    /// What is checked: one child at one config version.
    public struct Target: Sendable, Equatable {
        /// The child's start (`AgentStatus.startedAt`), which names it.
        public var childStartedAt: Double
        public var version: Int64?
        public init(childStartedAt: Double, version: Int64?) { self.childStartedAt = childStartedAt; self.version = version }
    }

    public private(set) var target: Target?
    public private(set) var passed = false
    /// A check is under way (for `target`).
    public private(set) var running = false
    public private(set) var nextAt: Double?
    /// The latest outcome for the current target; nil before its first check, and while no check is set.
    public private(set) var report: AgentHealthReport?

    public init() {}

    /// The state at `now`: `child` is the running child (nil while none runs), `check` the one the config sets.
    /// Returns the target to check now, or nil.
    public mutating func tick(now: Double, child: Target?, check: AgentHealthCheck?) -> Target? {
        guard check != nil else {
            target = nil; report = nil; passed = false; nextAt = nil
            return nil
        }
        guard let child else { return nil }
        if child != target {
            target = child
            passed = false
            report = nil
            nextAt = child.childStartedAt + Self.initialDelay
        }
        guard !running, !passed, let due = nextAt, now >= due else { return nil }
        running = true
        return child
    }

    /// A check of `checked` ended at `now`. An outcome for a child or version that is no longer current is dropped:
    /// it says nothing about the current one.
    public mutating func finished(_ checked: Target, ok: Bool, reason: String?, now: Double) {
        running = false
        guard checked == target else { return }
        report = AgentHealthReport(version: checked.version, childStartedAt: checked.childStartedAt, ok: ok,
                                   reason: ok ? nil : reason, checkedAt: now)
        passed = ok
        nextAt = ok ? nil : now + Self.interval
    }
}
