// A variable's reloadAction as the API and the store spell it: `reloadAction` (restart, signal or none) and, for
// signal, `reloadSignal` (SIGHUP, SIGUSR1 or SIGUSR2). The agent gets the combined wire form (`VariableReload`).
public import CodeRunnerWire

extension VariableReload {
    /// "restart", "signal" or "none".
    public var action: String {
        switch self {
        case .restart: "restart"
        case .signal: "signal"
        case .none: "none"
        }
    }

    /// The signal's name, for `signal`; nil otherwise.
    public var signalName: String? {
        if case .signal(let s) = self { s.rawValue } else { nil }
    }

    /// The reload an API input asks for: the fields given, the existing variable's where absent (a new variable
    /// restarts). A signal without a name is SIGHUP, or the signal the variable already had.
    static func from(action: String?, signal: String?, existing: VariableReload?, field: String) throws(ControlPlaneError) -> VariableReload {
        let current = existing ?? .restart
        let chosenAction = action ?? (signal != nil ? "signal" : current.action)
        switch chosenAction {
        case "restart", "none":
            if signal != nil {
                throw .validation(field: field + "reloadSignal", reason: "is only for reloadAction signal")
            }
            return chosenAction == "none" ? .none : .restart
        case "signal":
            let name = signal ?? current.signalName ?? ReloadSignal.hup.rawValue
            guard let parsed = ReloadSignal(rawValue: name) else {
                throw .validation(field: field + "reloadSignal", reason: "must be SIGHUP, SIGUSR1 or SIGUSR2")
            }
            return .signal(parsed)
        default:
            throw .validation(field: field + "reloadAction", reason: "must be restart, signal or none")
        }
    }
}
