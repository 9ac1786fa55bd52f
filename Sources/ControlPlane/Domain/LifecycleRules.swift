// The deployment lifecycle's rules, pure: what stop, start and destroy do from each state, how many instances a
// start asks for, and when a deployment has a URL. DeploymentLifecycle carries them out.

/// What the owner last asked of a deployment (the `stopped_at` and `destroyed_at` columns).
public enum LifecycleState: String, Sendable, Equatable {
    /// Runs as its policies, overrides and agents make it.
    case active
    /// Stopped by its owner: nothing runs it until the owner starts it.
    case stopped
    /// A tombstone: tokens revoked, nothing starts it again.
    case destroyed
}

public enum LifecycleAction: String, Sendable, CaseIterable {
    case stop, start, destroy
}

public enum LifecycleOutcome: Sendable, Equatable {
    /// The state changes: written and audited.
    case change
    /// Already so: the call answers 200 and records nothing.
    case unchanged
    /// 409 with this reason.
    case conflict(String)
}

public enum LifecycleRules {
    /// The 409 for anything asked of a tombstone but its own deletion.
    public static let destroyedReason = "the deployment is destroyed; nothing can start or change it"
    /// The 409 for an override of a stopped deployment.
    public static let stoppedReason = "the deployment is stopped; start it first (POST /api/deployments/{id}/start)"
    /// The 409 for starting (or scaling above 0) a deployment without a command under the local executor.
    public static let noCommandReason = "the deployment has no command, so the local executor has nothing to run; create it with a command"

    /// `running` is how many instances run now: a start of an active deployment that runs none launches it
    /// (the "deploy" of a new deployment); one that runs some has nothing to do.
    public static func outcome(_ action: LifecycleAction, from state: LifecycleState, running: Int) -> LifecycleOutcome {
        switch (action, state) {
        case (.destroy, .destroyed): .unchanged
        case (_, .destroyed): .conflict(destroyedReason)
        case (.destroy, _): .change
        case (.stop, .stopped): .unchanged
        case (.stop, .active): .change
        case (.start, .stopped): .change
        case (.start, .active): running > 0 ? .unchanged : .change
        }
    }

    /// A start brings the deployment to the most any enabled policy keeps at least (the scaler takes over from
    /// there), or to one instance without a policy; never above the controller's cap.
    public static func startCount(enabledPolicyMinimums: [Int], instanceCap: Int) -> Int {
        min(max(enabledPolicyMinimums.max() ?? 1, 1), instanceCap)
    }

    /// Where the app answers: the deployment's PORT on the host the local executor's apps listen on, but only
    /// while one of its instances runs there. nil for a stopped or destroyed deployment, one with no running
    /// local instance or no usable PORT, and for executors that run instances elsewhere (`host` nil).
    public static func url(status: DeploymentStatus, localInstances: Int, port: String?, host: String?) -> String? {
        guard status == .running, localInstances > 0, let host, let port, let n = Int(port), (1...65535).contains(n),
              String(n) == port else { return nil }
        let bracketed = host.contains(":") && !host.hasPrefix("[") ? "[\(host)]" : host
        return "http://\(bracketed):\(n)"
    }
}
