// The reloader's view of the supervisor: a protocol, so that the reload rules can be driven by a test's
// restarter as well as by the real Supervisor.
public import Supervision

/// What the reloader needs of the supervisor: restart the app with an environment, and its current state.
public protocol AppRestarter: Sendable {
    /// Restarts the app with `environment` (asynchronously); returns the environment's generation, which the
    /// started child reports in `snapshot.generation` and in `ChildExit`.
    @discardableResult
    func restart(environment: [String: String]) -> UInt64
    var snapshot: SupervisorSnapshot { get }
}

extension Supervisor: AppRestarter {}
