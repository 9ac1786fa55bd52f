// The pure rules of hot reload: which names the app inherits from the agent, validation, the environment
// hash, the controller backoff and the decision for a new version. No I/O, no clock: tests feed values.
public import CodeRunnerWire
import Supervision

/// `--inherit-env`: which of the agent's own variables the app gets under the config's.
public enum InheritEnvironment: Sendable, Equatable {
    case all
    case names(Set<String>)

    /// "all", "none", or a comma-separated list of names.
    public static func parse(_ text: String) throws(ValueError) -> InheritEnvironment {
        let t = text.trimmingWhitespace
        if t.lowercased() == "all" { return .all }
        if t.lowercased() == "none" || t.isEmpty { return .names([]) }
        var names = Set<String>()
        for part in t.split(separator: ",") {
            let name = String(part).trimmingWhitespace
            guard ConfigRules.isValidName(name) else {
                throw ValueError("must be all, none or a comma-separated list of variable names ('\(name)' is not a name)")
            }
            names.insert(name)
        }
        return .names(names)
    }

    public func filter(_ environment: [String: String]) -> [String: String] {
        switch self {
        case .all: environment
        case .names(let names): environment.filter { names.contains($0.key) }
        }
    }
}

public enum ConfigRules {
    /// Variables of the agent itself that never reach the app, whatever --inherit-env says: they configure
    /// the agent (and one of them could point at the controller token's file).
    public static func isAgentVariable(_ name: String) -> Bool { name.hasPrefix("CODERUNNER_") }

    static func isValidName(_ name: String) -> Bool {
        guard let first = name.utf8.first, !(first >= 0x30 && first <= 0x39) else { return false }
        return name.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x41 && $0 <= 0x5A) || ($0 >= 0x61 && $0 <= 0x7A) || $0 == 0x5F }
    }

    /// Why the config cannot be applied, naming keys and never values; nil when it can.
    public static func problem(with config: AgentConfig) -> String? {
        let missing = config.required.filter { (config.variables[$0] ?? "").isEmpty }.sorted()
        let withNUL = config.variables.filter { $0.key.utf8.contains(0) || $0.value.utf8.contains(0) }.keys.sorted()
        let badNames = config.variables.keys.filter { !isValidName($0) }.sorted()
        var reasons: [String] = []
        if !missing.isEmpty { reasons.append("missing required keys: \(missing.joined(separator: ", "))") }
        if !withNUL.isEmpty { reasons.append("values with a NUL byte: \(withNUL.joined(separator: ", "))") }
        if !badNames.isEmpty { reasons.append("keys that are not environment names: \(badNames.count)") }
        return reasons.isEmpty ? nil : reasons.joined(separator: "; ")
    }

    /// The app's environment: the agent's own (filtered, agent variables removed), the config's on top, and on top
    /// of all what the agent itself tells the app (`platform`: CODERUNNER_CONFIG_FILE).
    public static func environment(base: [String: String], inherit: InheritEnvironment, variables: [String: String],
                                   platform: [String: String] = [:]) -> [String: String] {
        var env = inherit.filter(base).filter { !isAgentVariable($0.key) }
        for (key, value) in variables { env[key] = value }
        for (key, value) in platform { env[key] = value }
        return env
    }

    /// FNV-1a (64-bit) over `AgentConfig.canonicalEncoding`: detects an identical environment cheaply. It is
    /// not a security measure (the agent compares its own environments), so a fast hash suffices.
    public static func hash(_ environment: [String: String]) -> UInt64 {
        var h: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in AgentConfig.canonicalEncoding(environment) {
            h ^= UInt64(byte)
            h = h &* 0x100_0000_01b3
        }
        return h
    }

    /// The longest wait between two attempts to reach the controller.
    public static let backoffCap: Duration = .seconds(30)

    /// Full-jitter exponential backoff (AWS Architecture Blog, "Exponential Backoff and Jitter"): a uniform
    /// delay between 0 and min(cap, base * 2^attempt). `unit` is a uniform random number in [0, 1).
    public static func backoff(attempt: Int, base: Duration = .milliseconds(250), cap: Duration = backoffCap, unit: Double) -> Duration {
        let ceiling = min(cap, base * (1 << min(attempt, 20)))
        let floor: Duration = .milliseconds(10)  // never a zero delay: a failing controller must not be hammered
        return max(floor, ceiling * min(max(unit, 0), 1))
    }
}

/// What to do with a config version the controller (or the cache) offers.
public enum ReloadDecision: Equatable, Sendable {
    /// Restart the app with this environment.
    case apply(environment: [String: String], hash: UInt64)
    /// Nothing to do: the environment is identical and no reload was asked for.
    case unchanged
    /// Keep the app as it is and report the reason.
    case invalid(reason: String)

    /// - Parameters:
    ///   - currentHash: the hash of the environment the app runs with (nil when no app runs yet).
    ///   - currentReload: the reload version the running environment answered (a newer one forces a restart).
    public static func decide(_ config: AgentConfig, base: [String: String], inherit: InheritEnvironment,
                              platform: [String: String] = [:], currentHash: UInt64?, currentReload: Int64?) -> ReloadDecision {
        if let reason = ConfigRules.problem(with: config) { return .invalid(reason: reason) }
        let env = ConfigRules.environment(base: base, inherit: inherit, variables: config.variables, platform: platform)
        let hash = ConfigRules.hash(env)
        let reloadAsked = (config.reloadVersion ?? 0) > (currentReload ?? 0)
        if hash == currentHash && !reloadAsked { return .unchanged }
        return .apply(environment: env, hash: hash)
    }
}
