// What `GET /api/agent/v1/config` answers inside the envelope's `data`.

/// A deployment's decrypted configuration at one version.
public struct AgentConfig: Codable, Sendable, Equatable {
    public var deploymentId: String
    /// Grows on every change to the environment's variables and on every reload; use it as `?index=`.
    public var version: Int64
    /// Lowercase hex SHA-256 of `AgentConfig.canonicalEncoding(variables)`.
    public var checksum: String
    public var variables: [String: String]
    /// Keys the app declares required, sorted.
    public var required: [String]
    /// The version of the latest explicit reload (`POST /api/config/deployments/:id/reload`), absent when there
    /// was none. An agent restarts the app when it changes even if the environment is identical; otherwise it
    /// skips versions that leave the environment unchanged.
    public var reloadVersion: Int64?
    /// How the app takes a change of each key (`VariableReload`); keys left out, and an absent map, restart it.
    public var reloadActions: [String: VariableReload]?
    /// The check the deployment's rollout strategy sets, which the agent runs against each new child and reports in
    /// `AgentStatus.health`; absent when there is none.
    public var healthCheck: AgentHealthCheck?

    public init(deploymentId: String, version: Int64, checksum: String, variables: [String: String], required: [String],
                reloadVersion: Int64? = nil, reloadActions: [String: VariableReload]? = nil,
                healthCheck: AgentHealthCheck? = nil) {
        self.deploymentId = deploymentId
        self.version = version
        self.checksum = checksum
        self.variables = variables
        self.required = required
        self.reloadVersion = reloadVersion
        self.reloadActions = reloadActions
        self.healthCheck = healthCheck
    }

    /// The bytes the checksum covers: for each key in ascending UTF-8 byte order,
    /// `<key byte count>:<key><value byte count>:<value>`. Length prefixes make the encoding
    /// unambiguous whatever the values contain (newlines, `=`, colons).
    public static func canonicalEncoding(_ variables: [String: String]) -> [UInt8] {
        var out: [UInt8] = []
        let keys = variables.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        for key in keys {
            let value = variables[key] ?? ""
            out += Array("\(key.utf8.count):".utf8) + Array(key.utf8)
            out += Array("\(value.utf8.count):".utf8) + Array(value.utf8)
        }
        return out
    }
}
