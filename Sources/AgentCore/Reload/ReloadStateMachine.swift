// The hot-reload rules as a value: events go in (a config offered, a child's exit, the supervisor's tick, the
// controller's answers), decisions come out. No I/O, no clock, no randomness: the caller passes `now` and a
// uniform random number, and carries out what comes back (restart the app, sleep the splay, wake the session
// thread). `ConfigReloader` is that caller; the tests drive this type alone, on a virtual clock.
public import CodeRunnerWire
public import Supervision

public struct ReloadStateMachine: Sendable {
    /// The rules' fixed inputs, from the agent's options.
    public struct Settings: Sendable, Equatable {
        public var instanceId: String
        /// The agent's own environment, which the app inherits under the config's variables (per `inherit`).
        public var base: [String: String]
        public var inherit: InheritEnvironment
        /// Upper bound of the random delay before applying a new version (spreads a fleet's restarts).
        public var splay: Duration
        /// A new version whose app fails within this window is rolled back; one that outlives it becomes the
        /// last known good.
        public var rollbackWindow: Duration
        public var startWithoutConfig: Bool

        public init(instanceId: String, base: [String: String], inherit: InheritEnvironment = .all, splay: Duration = .zero,
                    rollbackWindow: Duration = ReloadConfiguration.defaultRollbackWindow, startWithoutConfig: Bool = false) {
            self.instanceId = instanceId; self.base = base; self.inherit = inherit; self.splay = splay
            self.rollbackWindow = rollbackWindow; self.startWithoutConfig = startWithoutConfig
        }
    }

    /// Reports kept for the controller while it cannot take them; the oldest go first.
    public static let outboxLimit = 100

    /// The config the app runs with.
    public struct Running: Sendable, Equatable {
        public var config: AgentConfig
        /// `ConfigRules.hash` of the app's environment.
        public var hash: UInt64
        /// "controller" or "cache".
        public var source: String
    }

    /// A newly applied version that has not yet run for the whole rollback window.
    public struct Probation: Sendable, Equatable {
        /// The supervisor's generation of the environment (`AppRestarter.restart` returns it).
        public var generation: UInt64
        public var config: AgentConfig
        /// Unix seconds the version arrived (the start of the reload's measured duration).
        public var receivedAt: Double
        public var measured = false
    }

    /// What to do with an offered version.
    public enum Offer: Sendable, Equatable {
        /// Invalid: the app keeps running as it is. `fallback` is the last-known-good config to start instead,
        /// when no app runs yet and the rejected version came from the controller.
        case rejected(reason: String, fallback: AgentConfig?)
        /// The environment is identical and no reload was asked for: no restart.
        case unchanged
        /// Wait `apply.delay` (the splay), restart the app with `apply.environment`, then call `restarted`.
        case apply(Apply)
    }

    /// A restart to carry out.
    public struct Apply: Sendable, Equatable {
        /// What runs once the app has restarted (`restarted` records it).
        public var running: Running
        public var environment: [String: String]
        /// Unix seconds the version arrived.
        public var receivedAt: Double
        /// The splay: zero for the first config, else up to `Settings.splay`.
        public var delay: Duration

        public var config: AgentConfig { running.config }
        /// A config from the last-known-good cache, which needs no probation.
        public var fromCache: Bool { running.source == "cache" }
    }

    /// A failed version to replace by the last known good.
    public struct Rollback: Sendable, Equatable {
        public var environment: [String: String]
        public var failed: AgentConfig
        public var good: AgentConfig
        public var reason: String
    }

    /// What to do when the controller cannot give the first config.
    public enum Boot: Sendable, Equatable {
        /// Offer the last-known-good config, as from the cache.
        case fromCache(AgentConfig)
        /// Start the app with no config variables (--start-without-config).
        case withoutConfig(environment: [String: String])
        /// Keep waiting, and say so.
        case waitForConfig
        /// An app already runs: nothing to do.
        case none
    }

    public let settings: Settings
    public private(set) var running: Running?
    public private(set) var lastKnownGood: AgentConfig?
    public private(set) var probation: Probation?
    public private(set) var lastResult: ConfigReport.Result?
    public private(set) var lastResultVersion: Int64?
    public private(set) var lastReason: String?
    public private(set) var counts: [ConfigReport.Result: Int] = [:]
    /// From receiving the last applied version to its app starting, in seconds.
    public private(set) var lastDuration: Double?
    public private(set) var controllerUp = false
    public private(set) var controllerErrors = 0
    /// Reports for the controller, oldest first.
    public private(set) var outbox: [ConfigReport] = []
    /// A version that became the last known good since the cache was last written.
    public private(set) var lastKnownGoodToSave: AgentConfig?
    /// The supervisor state seen by the last tick: a change is heartbeated at once.
    private var lastSupervisorState: SupervisorState?

    public init(settings: Settings) { self.settings = settings }

    // MARK: Events

    /// The cache held `config` at start: it proved itself before, so it may be rolled back to.
    public mutating func cacheLoaded(_ config: AgentConfig) { lastKnownGood = config }

    /// A config version from the controller (or, `fromCache`, from the last-known-good cache). `splay` asks for
    /// the random delay (every version after the first); `random` is uniform in [0, 1).
    public mutating func offer(_ config: AgentConfig, fromCache: Bool = false, splay: Bool = false, now: Double,
                               random: Double) -> Offer {
        let decision = ReloadDecision.decide(config, base: settings.base, inherit: settings.inherit, currentHash: running?.hash,
                                             currentReload: running?.config.reloadVersion)
        switch decision {
        case .invalid(let reason):
            record(.invalid, config, reason: reason)
            // Nothing runs yet: the cache is better than waiting. A cached config that is itself invalid is not
            // tried again (that would loop).
            let fallback = running == nil && !fromCache ? lastKnownGood : nil
            return .rejected(reason: reason, fallback: fallback)
        case .unchanged:
            record(.unchanged, config, reason: nil)
            running?.config = config
            // Same environment, newer version: it inherits the running version's standing.
            if probation != nil {
                probation?.config = config
            } else if lastKnownGood != nil, !fromCache {
                lastKnownGood = config
                lastKnownGoodToSave = config
            }
            return .unchanged
        case .apply(let environment, let hash):
            let delay = splay && settings.splay > .zero ? settings.splay * min(max(random, 0), 1) : .zero
            return .apply(Apply(running: Running(config: config, hash: hash, source: fromCache ? "cache" : "controller"),
                                environment: environment, receivedAt: now, delay: delay))
        }
    }

    /// The app was asked to restart for `apply`; `generation` is what the restarter returned.
    public mutating func restarted(_ apply: Apply, generation: UInt64) {
        running = apply.running
        // A cached config already proved itself; a new one must survive the rollback window.
        probation = apply.fromCache ? nil : Probation(generation: generation, config: apply.config, receivedAt: apply.receivedAt)
        if apply.fromCache { lastKnownGood = apply.config }
        lastResult = .applied
        lastResultVersion = apply.config.version
        lastReason = nil
        counts[.applied, default: 0] += 1
    }

    /// A child ended. A child of the version on probation that failed within the rollback window is replaced
    /// by the last known good, unless that is the same config (then there is nothing better to go back to).
    public mutating func childExited(_ exit: ChildExit) -> Rollback? {
        guard let p = probation, p.generation == exit.generation, !exit.status.isSuccess,
              exit.ranFor < settings.rollbackWindow else { return nil }
        probation = nil
        guard let good = lastKnownGood, good.checksum != p.config.checksum || good.reloadVersion != p.config.reloadVersion else {
            return nil
        }
        let environment = ConfigRules.environment(base: settings.base, inherit: settings.inherit, variables: good.variables)
        let reason = "the app \(exit.status) \(exit.ranFor.seconds) s after starting with this version (rollback window \(settings.rollbackWindow.seconds) s)"
        record(.rolledBack, p.config, reason: reason)
        running = Running(config: good, hash: ConfigRules.hash(environment), source: "cache")
        return Rollback(environment: environment, failed: p.config, good: good, reason: reason)
    }

    /// The supervisor's tick: measures the reload's duration once the new app runs and, once it has run for the
    /// whole rollback window, makes its version the last known good (to be cached and reported). Returns true
    /// when the session thread should act now: the supervisor's state changed, the new app came up, or a
    /// version was committed.
    public mutating func tick(_ snapshot: SupervisorSnapshot, now: Double) -> Bool {
        var changed = lastSupervisorState != snapshot.state
        lastSupervisorState = snapshot.state
        guard var p = probation, snapshot.generation == p.generation, snapshot.state == .running,
              let started = snapshot.startedAt else { return changed }
        if !p.measured {
            lastDuration = max(0, started - p.receivedAt)
            p.measured = true
            probation = p
            // The new version's app is up, perhaps between two ticks that both saw `running`: say so.
            changed = true
        }
        guard now - started >= settings.rollbackWindow.seconds else { return changed }
        probation = nil
        lastKnownGood = p.config
        lastKnownGoodToSave = p.config
        append(ConfigReport(instanceId: settings.instanceId, version: p.config.version, checksum: p.config.checksum,
                            result: .applied, reason: nil))
        return true
    }

    /// The controller did not give the first config.
    public func bootWithoutController(supervisorState: SupervisorState) -> Boot {
        if running == nil, let cached = lastKnownGood { return .fromCache(cached) }
        guard supervisorState == .waitingForConfig else { return .none }
        if settings.startWithoutConfig {
            guard running == nil else { return .none }
            return .withoutConfig(environment: ConfigRules.environment(base: settings.base, inherit: settings.inherit, variables: [:]))
        }
        return .waitForConfig
    }

    public mutating func controllerAnswered() { controllerUp = true }

    public mutating func controllerFailed() {
        controllerUp = false
        controllerErrors += 1
    }

    /// The reports to send and the config to cache, handed over once.
    public mutating func takeOutbox() -> (reports: [ConfigReport], cache: AgentConfig?) {
        defer { outbox.removeAll(); lastKnownGoodToSave = nil }
        return (outbox, lastKnownGoodToSave)
    }

    /// Reports the controller did not take, put back before any newer ones.
    public mutating func requeue(_ reports: [ConfigReport]) {
        outbox.insert(contentsOf: reports, at: 0)
        trimOutbox()
    }

    // MARK: Observations

    /// What the controller hears: the supervisor's state and the version the app runs with.
    public func heartbeat(state: SupervisorState) -> AgentHeartbeat {
        AgentHeartbeat(instanceId: settings.instanceId, state: state.rawValue, configVersion: running?.config.version,
                       configChecksum: running?.config.checksum)
    }

    /// What /v1/status shows about the config: keys and versions, never values.
    public var status: AgentConfigStatus {
        AgentConfigStatus(
            version: running?.config.version, checksum: running?.config.checksum,
            keys: running?.config.variables.keys.sorted() ?? [], source: running?.source,
            lastReloadResult: lastResult?.rawValue, lastReloadVersion: lastResultVersion, lastReloadReason: lastReason,
            controllerUp: controllerUp, lastKnownGoodVersion: lastKnownGood?.version)
    }

    public func metricFamilies() -> [MetricFamily] {
        let results: [ConfigReport.Result] = [.applied, .unchanged, .invalid, .rolledBack]
        return [
            .single("coderunner_config_version", "The config version the app runs with (absent before the first config).",
                    .gauge, running.map { Double($0.config.version) }),
            MetricFamily(name: "coderunner_config_reloads_total", help: "Config versions handled, by result.", type: .counter,
                         samples: results.map { MetricSample(labels: [MetricLabel("result", $0.rawValue)], value: Double(counts[$0] ?? 0)) }),
            .single("coderunner_config_last_reload_duration_seconds",
                    "From receiving the last applied version to its app process starting.", .gauge, lastDuration),
            .single("coderunner_controller_up", "1 when the last request to the controller succeeded, else 0.", .gauge,
                    controllerUp ? 1 : 0),
            .single("coderunner_controller_errors_total", "Failed requests to the controller.", .counter, Double(controllerErrors)),
        ]
    }

    // MARK: Private

    private mutating func record(_ result: ConfigReport.Result, _ config: AgentConfig, reason: String?) {
        counts[result, default: 0] += 1
        lastResult = result
        lastResultVersion = config.version
        lastReason = reason
        append(ConfigReport(instanceId: settings.instanceId, version: config.version, checksum: config.checksum,
                            result: result, reason: reason))
    }

    private mutating func append(_ report: ConfigReport) {
        outbox.append(report)
        trimOutbox()
    }

    private mutating func trimOutbox() {
        if outbox.count > Self.outboxLimit { outbox.removeFirst(outbox.count - Self.outboxLimit) }
    }
}
