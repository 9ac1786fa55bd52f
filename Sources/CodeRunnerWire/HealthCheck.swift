// The health check of a rollout (issue 15), as the agent receives it in its config and reports it in its status.
// The controller holds the rollout plan; the agent only runs the check against its own app, inside the app's view,
// and says what it saw. Readiness itself (the child ran `readySeconds` on the new version, and the check passed) is
// the controller's decision.

/// What the agent checks: exactly one of `http` (a GET of this path on the app's port must answer 2xx) and `command`
/// (this argv, run in the app's sandbox, must exit 0), each within `timeoutMs`.
public struct AgentHealthCheck: Codable, Sendable, Equatable {
    public var http: String?
    public var command: [String]?
    public var timeoutMs: Int

    public init(http: String? = nil, command: [String]? = nil, timeoutMs: Int) {
        self.http = http
        self.command = command
        self.timeoutMs = timeoutMs
    }
}

/// The outcome of the latest check of the running child.
public struct AgentHealthReport: Codable, Sendable, Equatable {
    /// The config version the checked child runs (`AgentConfigStatus.version` when it started).
    public var version: Int64?
    /// The checked child's start (`AgentStatus.startedAt`): a report about an earlier child does not count.
    public var childStartedAt: Double
    public var ok: Bool
    /// Why it failed, in words a user can act on ("GET /healthz answered 503", "timed out after 1000 ms",
    /// "exited with status 2"); absent when it passed.
    public var reason: String?
    /// Unix seconds.
    public var checkedAt: Double

    public init(version: Int64?, childStartedAt: Double, ok: Bool, reason: String? = nil, checkedAt: Double) {
        self.version = version
        self.childStartedAt = childStartedAt
        self.ok = ok
        self.reason = reason
        self.checkedAt = checkedAt
    }
}
