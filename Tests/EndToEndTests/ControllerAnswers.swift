// The parts of the controller's answers the end-to-end tests read, decoded from its envelope
// (`HTTP.Answer.data`). The controller's own types live in ControlPlane, which these tests do not link: they
// talk to the real binary over HTTP, as a user would.

struct Identified: Codable, Sendable { var id: String }

struct LoginAnswer: Codable, Sendable { var token: String }

struct CreatedDeployment: Codable, Sendable { var id: String; var agentToken: String }

struct ReloadAnswer: Codable, Sendable { var version: Int64 }

struct AuditAnswer: Codable, Sendable { var action: String }

struct ScalingStatusAnswer: Codable, Sendable { var currentInstances: Int }

struct InstanceAnswer: Codable, Sendable {
    /// The last report that was not routine (`invalid` or `rolled_back`).
    struct Report: Codable, Sendable { var version: Int64; var result: String; var reason: String? }

    var state: String
    var configVersion: Int64?
    var stale: Bool
    var lastReport: Report?
}

struct ScalingEventsAnswer: Codable, Sendable {
    struct Event: Codable, Sendable {
        var eventType: String
        var success: Bool
        /// From how many instances to how many.
        var instancesBefore: Int, instancesAfter: Int
        /// The CPU figure the decision saw; `errorMessage` says why a failed event failed.
        var cpuUsage: Double?, errorMessage: String?
    }

    var events: [Event]
}
