// What one account may run on the controller's host, pure: how many deployments it may hold and how many
// instances its deployments may run together. The host's CPU, memory and pids are shared by every tenant, and the
// per-deployment cap alone lets one account start that many instances in each of as many deployments as it likes.

public struct AccountLimits: Sendable, Equatable {
    /// Deployments one account may hold (not counting tombstones): with the instance cap below, enough for a
    /// project's three environments several times over, and small enough that a page of them stays cheap to show.
    public static let defaultMaxDeployments = 20
    /// Instances running or starting across one account's deployments: two deployments at the default
    /// per-deployment cap (20). At the default limits of 1 core and 512 MiB each, 40 instances ask for 20 GiB:
    /// one account can fill a small host, so an operator with many tenants lowers it.
    public static let defaultMaxInstances = 40

    public var maxDeployments: Int
    public var maxInstances: Int

    public init(maxDeployments: Int = defaultMaxDeployments, maxInstances: Int = defaultMaxInstances) {
        self.maxDeployments = maxDeployments
        self.maxInstances = maxInstances
    }

    /// The 409 of a create past `--max-deployments-per-user`.
    public static func deploymentLimitReason(_ cap: Int) -> String {
        "account deployment limit (\(cap)) reached: this account holds \(cap == 1 ? "1 deployment" : "\(cap) deployments"); delete one first"
    }

    /// The 409 of a start or override past `--max-instances-per-user`, and the scaler's cannotAct reason.
    public static func instanceLimitReason(_ cap: Int, asked: Int, left: Int) -> String {
        "account instance limit (\(cap)) reached: this needs \(instances(asked)) and the account has \(left) left; stop or scale down another deployment first"
    }

    static func instances(_ n: Int) -> String { n == 1 ? "1 instance" : "\(n) instances" }

    /// How much of a scale-up the account's instance limit lets through.
    public enum Admission: Sendable, Equatable {
        /// All of it: the deployment goes to this count.
        case granted(Int)
        /// Part of it (a scaler decision only): the deployment goes to this count, above its current one.
        case clamped(Int)
        /// Nothing: `left` instances are left to the account (what its other deployments do not run).
        case refused(left: Int)
    }

    /// A deployment running `current` instances asks for `requested` (more than `current`), while the account's
    /// other deployments run or start `others`. An owner's explicit request (start, override) is all or nothing
    /// (`exact`); the scaler's decision gets what is left, if that is still a scale-up.
    public static func admit(requested: Int, current: Int, others: Int, cap: Int, exact: Bool) -> Admission {
        let left = max(cap - others, 0)
        if requested <= left { return .granted(requested) }
        if !exact, left > current { return .clamped(left) }
        return .refused(left: left)
    }
}
