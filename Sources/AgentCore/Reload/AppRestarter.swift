// The reloader's view of the supervisor: a protocol, so that the reload rules can be driven by a test's
// restarter as well as by the real Supervisor.
public import Supervision

/// What the reloader needs of the supervisor: restart or signal the app with an environment, and its current state.
public protocol AppRestarter: Sendable {
    /// Restarts the app with `environment` (asynchronously); returns the environment's generation, which the
    /// started child reports in `snapshot.generation` and in `ChildExit`.
    @discardableResult
    func restart(environment: [String: String]) -> UInt64
    /// Sends `signals` to the running app without restarting it, and gives its next start `environment`; returns
    /// the environment's generation (`Supervisor.reload`).
    @discardableResult
    func reload(environment: [String: String], signals: [Int32]) -> UInt64
    var snapshot: SupervisorSnapshot { get }
}

extension Supervisor: AppRestarter {}
