// When the session thread heartbeats and how long it then sleeps. Pure: `now` is the caller's monotonic time.
public import CodeRunnerWire
import Supervision

public struct HeartbeatSchedule: Sendable, Equatable {
    /// While the controller last heard one of these states (a restart in progress), the session thread looks
    /// again this soon, so that the controller hears "running" when the new app is up, not a heartbeat later.
    public static let restartFollowUp: Duration = .milliseconds(50)

    /// The controller's heartbeat interval (it says so when the agent registers).
    public private(set) var interval: Duration
    /// When the next periodic heartbeat is due.
    public private(set) var next: Duration
    /// The last heartbeat (or registration) the controller took.
    public private(set) var lastSent: AgentHeartbeat?

    public init(interval: Duration = ReloadConfiguration.defaultHeartbeatInterval, now: Duration) {
        self.interval = interval
        next = now
    }

    /// The controller registered the instance with `beat`'s figures and asked for this interval.
    public mutating func registered(_ beat: AgentHeartbeat, interval: Duration, now: Duration) {
        self.interval = interval
        lastSent = beat
        next = now + interval
    }

    /// Due when the state or the version changed since the controller last heard (an applied config, a
    /// restart), or when the interval has passed.
    public func isDue(_ beat: AgentHeartbeat, now: Duration) -> Bool {
        beat.state != lastSent?.state || beat.configVersion != lastSent?.configVersion || now >= next
    }

    public mutating func sent(_ beat: AgentHeartbeat, now: Duration) {
        lastSent = beat
        next = now + interval
    }

    /// A heartbeat failed: the next periodic one waits a whole interval.
    public mutating func failed(now: Duration) { next = now + interval }

    /// How long the session thread sleeps after a round that did not fail (a wake-up cuts it short).
    public func wait(now: Duration, registered: Bool) -> Duration {
        guard registered else { return .zero }
        var wait = max(.zero, next - now)
        if let state = lastSent?.state,
           state == SupervisorState.stopping.rawValue || state == SupervisorState.starting.rawValue {
            wait = min(wait, Self.restartFollowUp)
        }
        return wait
    }
}
