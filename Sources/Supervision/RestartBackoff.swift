/// When the supervisor starts a new child after one exits on its own.
public enum RestartPolicy: String, Sendable, Codable, CaseIterable {
    /// Restart after every exit, clean or not.
    case always
    /// Restart only after a failure: a non-zero exit code, a signal, or a command that cannot be executed.
    case onFailure = "on-failure"
    /// Never restart; the agent exits with the child's status.
    case never

    /// Whether a child that ended with `status` is started again.
    public func restarts(after status: ExitStatus) -> Bool {
        switch self {
        case .always: true
        case .onFailure: !status.isSuccess
        case .never: false
        }
    }
}

/// How the random part of a backoff delay is drawn (AWS Architecture Blog, "Exponential Backoff and Jitter").
public enum BackoffJitter: String, Sendable, Codable, CaseIterable {
    /// Uniform in [0, ceiling]: spreads restarts the most, but a delay may be near zero.
    case full
    /// Uniform in [ceiling/2, ceiling]: always waits at least half, so a crash loop never spins.
    case equal
}

/// The shape of the restart backoff. Defaults: 1 s doubling to a 5 min cap, reset after 10 min of running.
public struct BackoffPolicy: Sendable, Equatable {
    public static let defaultInitial: Duration = .seconds(1)
    public static let defaultMaximum: Duration = .seconds(300)
    public static let defaultResetAfter: Duration = .seconds(600)
    public static let defaultJitter: BackoffJitter = .equal

    /// The ceiling of the first delay.
    public var initial: Duration
    /// The largest ceiling; doubling stops here.
    public var maximum: Duration
    /// A child that ran at least this long ends a crash loop: the next delay starts from `initial` again.
    public var resetAfter: Duration
    public var jitter: BackoffJitter

    public init(
        initial: Duration = defaultInitial, maximum: Duration = defaultMaximum,
        resetAfter: Duration = defaultResetAfter, jitter: BackoffJitter = defaultJitter
    ) {
        self.initial = initial
        self.maximum = maximum
        self.resetAfter = resetAfter
        self.jitter = jitter
    }

    /// The ceiling before jitter for the n-th consecutive quick exit (n >= 1): initial * 2^(n-1), capped.
    public func ceiling(attempt: Int) -> Duration {
        precondition(attempt >= 1, "attempts count from 1")
        var ceiling = initial
        var n = 1
        // Doubling by steps stays exact and stops at the cap, so a large attempt number cannot overflow.
        while n < attempt && ceiling < maximum {
            ceiling = ceiling * 2
            n += 1
        }
        return min(ceiling, maximum)
    }

    /// The delay for a ceiling and a uniform random fraction in [0, 1].
    public func delay(ceiling: Duration, fraction: Double) -> Duration {
        let f = min(max(fraction, 0), 1)
        switch jitter {
        case .full: return ceiling * f
        case .equal: return ceiling / 2 + (ceiling / 2) * f
        }
    }
}

/// The restart backoff's state: how many quick exits in a row, and when the next start may happen.
/// Pure: the caller passes the times (any monotonic clock, as Durations from its origin) and the random source,
/// so tests drive it with a manual clock and a fixed generator.
public struct RestartBackoff: Sendable, Equatable {
    public let policy: BackoffPolicy
    /// Consecutive exits of children that ran less than `policy.resetAfter`.
    public private(set) var consecutiveQuickExits = 0

    public init(policy: BackoffPolicy) {
        self.policy = policy
    }

    /// Records that a child started at `startedAt` ended at `exitedAt`, and returns when the next may start.
    public mutating func childExited(
        startedAt: Duration, exitedAt: Duration, using random: inout some RandomNumberGenerator
    ) -> Duration {
        if exitedAt - startedAt >= policy.resetAfter {
            consecutiveQuickExits = 0
        }
        consecutiveQuickExits += 1
        let ceiling = policy.ceiling(attempt: consecutiveQuickExits)
        return exitedAt + policy.delay(ceiling: ceiling, fraction: Self.fraction(random.next()))
    }

    /// Forgets the crash loop: a deliberate restart (a new environment) starts from `initial` again.
    public mutating func reset() {
        consecutiveQuickExits = 0
    }

    /// A uniform fraction in [0, 1] from 64 random bits (the top 53, as many as a Double holds).
    static func fraction(_ bits: UInt64) -> Double {
        Double(bits >> 11) / Double((1 as UInt64) << 53 - 1)
    }
}
