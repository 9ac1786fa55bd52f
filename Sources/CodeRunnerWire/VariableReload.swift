// How the app takes a change of one variable: the `reloadAction` a user sets on it, as `AgentConfig.reloadActions`
// carries it (keys left out restart the app, today's behaviour).

public enum VariableReload: Sendable, Equatable, Hashable {
    /// Restart the app with the new environment.
    case restart
    /// Keep the app running and send it this signal; it re-reads the config file (`--config-file`).
    case signal(ReloadSignal)
    /// Nothing now: the value reaches the app at its next start.
    case none
}

/// The signals a variable may ask for: those daemons conventionally re-read their configuration on. Termination
/// signals are not among them: they would stop the app without the supervisor's knowing it was a reload.
public enum ReloadSignal: String, Sendable, Codable, CaseIterable, Comparable {
    case hup = "SIGHUP"
    case usr1 = "SIGUSR1"
    case usr2 = "SIGUSR2"

    /// Signal numbers on Linux (the same on every architecture it runs on: signal(7)).
    public var number: Int32 {
        switch self {
        case .hup: 1
        case .usr1: 10
        case .usr2: 12
        }
    }

    /// When changed variables ask for several signals, one is sent: the strongest. SIGHUP is the conventional
    /// "reload your whole configuration" and wins; SIGUSR2 comes before SIGUSR1 (which daemons mostly use to reopen
    /// logs). See docs/rollout.md.
    static let strength: [ReloadSignal] = [.usr1, .usr2, .hup]
    public static func < (a: ReloadSignal, b: ReloadSignal) -> Bool {
        strength.firstIndex(of: a)! < strength.firstIndex(of: b)!
    }
}

extension VariableReload: Codable {
    /// "restart", "none", or the signal's name ("SIGHUP").
    public var wireValue: String {
        switch self {
        case .restart: "restart"
        case .none: "none"
        case .signal(let s): s.rawValue
        }
    }

    public init?(wireValue: String) {
        switch wireValue {
        case "restart": self = .restart
        case "none": self = .none
        default:
            guard let signal = ReloadSignal(rawValue: wireValue) else { return nil }
            self = .signal(signal)
        }
    }

    public init(from decoder: any Decoder) throws {
        let text = try decoder.singleValueContainer().decode(String.self)
        guard let value = VariableReload(wireValue: text) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath,
                                                    debugDescription: "expected restart, none, SIGHUP, SIGUSR1 or SIGUSR2, got '\(text)'"))
        }
        self = value
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(wireValue)
    }

    /// What a change of the keys in `changed` asks of the app: a restart if any of them asks for one (a key without
    /// an action asks for one), else the strongest signal asked for, else nothing.
    public static func effect(of changed: some Sequence<String>, actions: [String: VariableReload]) -> VariableReload {
        var strongest: ReloadSignal?
        var any = false
        for key in changed {
            any = true
            switch actions[key] ?? .restart {
            case .restart: return .restart
            case .signal(let s): strongest = max(strongest ?? s, s)
            case .none: break
            }
        }
        guard any else { return .none }
        return strongest.map(VariableReload.signal) ?? .none
    }

    /// The keys whose value differs between two configs, added and removed ones included.
    public static func changedKeys(_ old: [String: String], _ new: [String: String]) -> Set<String> {
        var keys = Set<String>()
        for (key, value) in new where old[key] != value { keys.insert(key) }
        for key in old.keys where new[key] == nil { keys.insert(key) }
        return keys
    }
}
