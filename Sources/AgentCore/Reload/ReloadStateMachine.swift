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
        /// Variables the agent itself gives the app on top of the config's (CODERUNNER_CONFIG_FILE).
        public var platform: [String: String]

        public init(instanceId: String, base: [String: String], inherit: InheritEnvironment = .all, splay: Duration = .zero,
                    rollbackWindow: Duration = ReloadConfiguration.defaultRollbackWindow, startWithoutConfig: Bool = false,
                    platform: [String: String] = [:]) {
            self.instanceId = instanceId; self.base = base; self.inherit = inherit; self.splay = splay
            self.rollbackWindow = rollbackWindow; self.startWithoutConfig = startWithoutConfig; self.platform = platform
        }

        /// The app's environment for `variables`.
        func environment(_ variables: [String: String]) -> [String: String] {
            ConfigRules.environment(base: base, inherit: inherit, variables: variables, platform: platform)
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
        /// No changed key asks for a restart: signal the running app (or not), make `environment` the one its next
        /// start uses, then call `reloaded`.
        case reload(Reload)
    }

    /// A change the app takes without a restart (`VariableReload`).
    public struct Reload: Sendable, Equatable {
        public var running: Running
        public var environment: [String: String]
        /// The strongest signal the changed keys ask for; nil when they all wait for the next start.
        public var signal: ReloadSignal?
        /// Unix seconds the version arrived.
        public var receivedAt: Double

        public var config: AgentConfig { running.config }
        /// What /v1/status says happened: "signalled SIGHUP" or "deferred".
        public var result: String { signal.map { "signalled \($0.rawValue)" } ?? "deferred" }
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
    /// What /v1/status shows as `lastReloadResult`: the result's name, or what a reload without restart did.
    public private(set) var lastResultText: String?
    public private(set) var counts: [ConfigReport.Result: Int] = [:]
    /// Versions taken without a restart: by the signal sent ("SIGHUP", ...), or "deferred" to the next start.
    public private(set) var reloadsWithoutRestart: [String: Int] = [:]
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
        let decision = ReloadDecision.decide(config, base: settings.base, inherit: settings.inherit,
                                             platform: settings.platform, currentHash: running?.hash,
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
            if let current = running, (config.reloadVersion ?? 0) <= (current.config.reloadVersion ?? 0) {
                // The keys that changed decide: a restart if one asks for it, else a signal, else nothing now. A key
                // the new config no longer has keeps the action it had.
                let actions = (current.config.reloadActions ?? [:]).merging(config.reloadActions ?? [:]) { $1 }
                let changed = VariableReload.changedKeys(current.config.variables, config.variables)
                let next = Running(config: config, hash: hash, source: fromCache ? "cache" : "controller")
                switch VariableReload.effect(of: changed, actions: actions) {
                case .restart: break
                case .signal(let signal):
                    return .reload(Reload(running: next, environment: environment, signal: signal, receivedAt: now))
                case .none:
                    return .reload(Reload(running: next, environment: environment, signal: nil, receivedAt: now))
                }
            }
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
        lastResultText = ConfigReport.Result.applied.rawValue
        lastResultVersion = apply.config.version
        lastReason = nil
        counts[.applied, default: 0] += 1
    }

    /// The app was signalled (or its next start was given the new environment) for `reload`. The version needs no
    /// rollback window of its own: what could fail at a start has not changed. It takes the running version's
    /// standing: on probation with it, else the last known good at once (and reported as applied).
    public mutating func reloaded(_ reload: Reload) {
        running = reload.running
        lastResult = .applied
        lastResultText = reload.result
        lastResultVersion = reload.config.version
        lastReason = nil
        reloadsWithoutRestart[reload.signal?.rawValue ?? "deferred", default: 0] += 1
        if probation != nil {
            probation?.config = reload.config
        } else {
            lastKnownGood = reload.config
            lastKnownGoodToSave = reload.config
            append(ConfigReport(instanceId: settings.instanceId, version: reload.config.version,
                                checksum: reload.config.checksum, result: .applied, reason: nil))
        }
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
        let environment = settings.environment(good.variables)
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
            return .withoutConfig(environment: settings.environment([:]))
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
            lastReloadResult: lastResultText, lastReloadVersion: lastResultVersion, lastReloadReason: lastReason,
            controllerUp: controllerUp, lastKnownGoodVersion: lastKnownGood?.version)
    }

    /// The running config's health check and version, and the PORT its app gets.
    public var healthSubject: HealthChecker.Subject {
        guard let running else { return HealthChecker.Subject(check: nil, version: nil, port: nil) }
        return HealthChecker.Subject(check: running.config.healthCheck, version: running.config.version,
                                     port: settings.environment(running.config.variables)["PORT"])
    }

    public func metricFamilies() -> [MetricFamily] {
        let results: [ConfigReport.Result] = [.applied, .unchanged, .invalid, .rolledBack]
        return [
            .single("coderunner_config_version", "The config version the app runs with (absent before the first config).",
                    .gauge, running.map { Double($0.config.version) }),
            MetricFamily(name: "coderunner_config_reloads_total", help: "Config versions handled, by result.", type: .counter,
                         samples: results.map { MetricSample(labels: [MetricLabel("result", $0.rawValue)], value: Double(counts[$0] ?? 0)) }),
            MetricFamily(name: "coderunner_config_reloads_without_restart_total",
                         help: "Config versions the app took without a restart, by the signal sent (deferred: at its next start).",
                         type: .counter,
                         samples: (ReloadSignal.allCases.map(\.rawValue) + ["deferred"]).map {
                             MetricSample(labels: [MetricLabel("action", $0)], value: Double(reloadsWithoutRestart[$0] ?? 0))
                         }),
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
        lastResultText = result.rawValue
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
