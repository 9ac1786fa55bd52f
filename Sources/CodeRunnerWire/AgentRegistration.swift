// What coderunner-agent sends the controller about itself (`/api/agent/v1/...`, authenticated by the
// deployment's agent token), so the controller knows which instances to poll and what each one runs.

/// `POST /api/agent/v1/register`: sent at start and again whenever the controller forgot the instance
/// (a heartbeat answered 404). Answered with `AgentRegistrationAccepted`.
public struct AgentRegistration: Codable, Sendable, Equatable {
    /// Stable for the agent's life: `--instance`, else generated at start.
    public var instanceId: String
    /// Base URL of the agent's HTTP endpoints (`/v1/status`, `/metrics`), or nil when they are off.
    public var metricsUrl: String?
    public var agentVersion: String
    public var hostname: String
    public var pid: Int32
    public var configVersion: Int64?
    /// The supervisor's state (`AgentStatus.state`), or `waiting_for_config` before the first config.
    public var state: String

    public init(instanceId: String, metricsUrl: String?, agentVersion: String, hostname: String, pid: Int32,
                configVersion: Int64?, state: String) {
        self.instanceId = instanceId; self.metricsUrl = metricsUrl; self.agentVersion = agentVersion
        self.hostname = hostname; self.pid = pid; self.configVersion = configVersion; self.state = state
    }
}

/// The controller's answer to a registration: how often to heartbeat.
public struct AgentRegistrationAccepted: Codable, Sendable, Equatable {
    public var instanceId: String
    public var heartbeatIntervalSeconds: Double

    public init(instanceId: String, heartbeatIntervalSeconds: Double) {
        self.instanceId = instanceId; self.heartbeatIntervalSeconds = heartbeatIntervalSeconds
    }
}

/// `POST /api/agent/v1/heartbeat`: the instance is alive, in this state, running this config version.
/// A heartbeat for an unknown instance is answered 404, and the agent registers again.
public struct AgentHeartbeat: Codable, Sendable, Equatable {
    public var instanceId: String
    public var state: String
    public var configVersion: Int64?
    public var configChecksum: String?

    public init(instanceId: String, state: String, configVersion: Int64?, configChecksum: String?) {
        self.instanceId = instanceId; self.state = state
        self.configVersion = configVersion; self.configChecksum = configChecksum
    }
}

/// `POST /api/agent/v1/reports`: what became of a config version on this instance. The controller
/// records `invalid` and `rolled_back` in the audit log and shows them in the deployment's status.
public struct ConfigReport: Codable, Sendable, Equatable {
    public enum Result: String, Codable, Sendable {
        case applied, unchanged, invalid
        case rolledBack = "rolled_back"
    }
    public var instanceId: String
    public var version: Int64
    public var checksum: String?
    public var result: Result
    /// Why, for `invalid` and `rolled_back`: names keys, never values.
    public var reason: String?

    public init(instanceId: String, version: Int64, checksum: String?, result: Result, reason: String?) {
        self.instanceId = instanceId; self.version = version; self.checksum = checksum
        self.result = result; self.reason = reason
    }
}
