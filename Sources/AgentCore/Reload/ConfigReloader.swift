// Hot reload: the agent pulls its deployment's config from the controller's blocking query and restarts the
// app with it, safely.
//
// Threads (created in Agent.run, after the Supervisor, so they inherit its signal mask):
// - the poll thread holds one long poll open at a time (blocking libcurl), applies new versions, and backs
//   off with full jitter when the controller fails;
// - the session thread registers the instance, heartbeats, sends reports and writes the last-known-good cache.
// The supervisor's thread calls `childExited` (rollback) and `tick` (probation). State is one Mutex.
import CodeRunnerWire
import Glibc
import Supervision
import Synchronization
import CShims

/// The hot-reload options (`--controller` and friends), validated.
public struct ReloadConfiguration: Sendable, Equatable {
    public static let defaultRollbackWindow: Duration = .seconds(10)
    /// The blocking query's wait (Consul's default is 5 min; 30 s keeps idle connections fresh through NATs).
    public static let defaultLongPollWait: Duration = .seconds(30)
    public static let defaultHeartbeatInterval: Duration = .seconds(10)

    public var controller: String
    public var tokenFile: String
    public var stateDirectory: String
    public var caFile: String?
    public var inherit: InheritEnvironment
    /// Upper bound of the random delay before applying a new version (spreads a fleet's restarts).
    public var splay: Duration
    public var rollbackWindow: Duration
    public var startWithoutConfig: Bool
    public var longPollWait: Duration

    public init(controller: String, tokenFile: String, stateDirectory: String, caFile: String? = nil,
                inherit: InheritEnvironment = .all, splay: Duration = .zero, rollbackWindow: Duration = defaultRollbackWindow,
                startWithoutConfig: Bool = false, longPollWait: Duration = defaultLongPollWait) {
        self.controller = controller; self.tokenFile = tokenFile; self.stateDirectory = stateDirectory; self.caFile = caFile
        self.inherit = inherit; self.splay = splay; self.rollbackWindow = rollbackWindow
        self.startWithoutConfig = startWithoutConfig; self.longPollWait = longPollWait
    }

    public var usesTLS: Bool { controller.lowercased().hasPrefix("https://") }
}


public final class ConfigReloader: Sendable, MetricFamilyProvider {
    /// Injected clocks, randomness and sleep, so that tests of the rules need no wall clock.
    public struct Environment: Sendable {
        public var unixNow: @Sendable () -> Double
        public var random: @Sendable () -> Double
        public var sleep: @Sendable (Duration) -> Void
        public var log: @Sendable (String) -> Void

        public init(unixNow: @escaping @Sendable () -> Double = ConfigReloader.wallClock,
                    random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
                    sleep: @escaping @Sendable (Duration) -> Void = ConfigReloader.sleep,
                    log: @escaping @Sendable (String) -> Void = ConfigReloader.log) {
            self.unixNow = unixNow; self.random = random; self.sleep = sleep; self.log = log
        }
    }

    struct Running: Sendable {
        var config: AgentConfig
        var hash: UInt64
        var source: String
    }

    struct Probation: Sendable {
        var generation: UInt64
        var config: AgentConfig
        var receivedAt: Double
        var measured = false
    }

    struct State: Sendable {
        var running: Running?
        var lastKnownGood: AgentConfig?
        var probation: Probation?
        var lastResult: ConfigReport.Result?
        var lastResultVersion: Int64?
        var lastReason: String?
        var counts: [ConfigReport.Result: Int] = [:]
        var lastDuration: Double?
        var controllerUp = false
        var controllerErrors = 0
        var outbox: [ConfigReport] = []
        var lastKnownGoodToSave: AgentConfig?
        /// The supervisor state seen by the last tick: a change is heartbeated at once.
        var lastSupervisorState: SupervisorState?
    }

    public let configuration: ReloadConfiguration
    public let instanceId: String
    let supervisor: Supervisor
    let base: [String: String]
    let store: LastKnownGood
    let env: Environment
    let state = Mutex(State())
    /// Wakes the session thread (reports to send, a cache to write).
    let sessionWake: Int32

    public init(configuration: ReloadConfiguration, supervisor: Supervisor, baseEnvironment: [String: String],
                instanceId: String, environment: Environment = Environment()) {
        self.configuration = configuration
        self.supervisor = supervisor
        self.base = baseEnvironment
        self.instanceId = instanceId
        self.store = LastKnownGood(directory: configuration.stateDirectory)
        self.env = environment
        sessionWake = cr_eventfd()
    }

    // MARK: Decisions (any thread)

    /// Offers a config version: applies it, skips it, or rejects it. Returns what happened.
    @discardableResult
    public func offer(_ config: AgentConfig, fromCache: Bool = false, splay: Bool = false) -> ConfigReport.Result {
        let receivedAt = env.unixNow()
        let (current, reload) = state.withLock { s in (s.running?.hash, s.running?.config.reloadVersion) }
        let decision = ReloadDecision.decide(config, base: base, inherit: configuration.inherit, currentHash: current,
                                             currentReload: reload)
        switch decision {
        case .invalid(let reason):
            env.log("config version \(config.version) (checksum \(config.checksum.prefix(12))) rejected: \(reason); the app keeps running")
            let fallback = state.withLock { s -> AgentConfig? in
                record(&s, .invalid, config, reason: reason)
                return s.running == nil ? s.lastKnownGood : nil
            }
            wakeSession()
            if let fallback, !fromCache {
                env.log("starting from the last-known-good config version \(fallback.version) instead")
                offer(fallback, fromCache: true)
            }
            return .invalid
        case .unchanged:
            env.log("config version \(config.version) leaves the environment unchanged; no restart")
            state.withLock { s in
                record(&s, .unchanged, config, reason: nil)
                s.running?.config = config
                // Same environment, newer version: it inherits the running version's standing.
                if s.probation != nil {
                    s.probation?.config = config
                } else if s.lastKnownGood != nil, !fromCache {
                    s.lastKnownGood = config
                    s.lastKnownGoodToSave = config
                }
            }
            wakeSession()
            return .unchanged
        case .apply(let environment, let hash):
            if splay, configuration.splay > .zero {
                env.sleep(configuration.splay * env.random())
            }
            let keys = config.variables.keys.sorted().joined(separator: ", ")
            env.log("applying config version \(config.version) (checksum \(config.checksum.prefix(12)), keys: \(keys))\(fromCache ? " from the last-known-good cache" : "")")
            state.withLock { s in
                let generation = supervisor.restart(environment: environment)
                s.running = Running(config: config, hash: hash, source: fromCache ? "cache" : "controller")
                // A cached config already proved itself; a new one must survive the rollback window.
                s.probation = fromCache ? nil : Probation(generation: generation, config: config, receivedAt: receivedAt)
                if fromCache { s.lastKnownGood = config }
                s.lastResult = .applied
                s.lastResultVersion = config.version
                s.lastReason = nil
                s.counts[.applied, default: 0] += 1
            }
            // The controller's instance list shows the new version now, not at the next heartbeat.
            wakeSession()
            return .applied
        }
    }

    private func record(_ s: inout State, _ result: ConfigReport.Result, _ config: AgentConfig, reason: String?) {
        s.counts[result, default: 0] += 1
        s.lastResult = result
        s.lastResultVersion = config.version
        s.lastReason = reason
        s.outbox.append(ConfigReport(instanceId: instanceId, version: config.version, checksum: config.checksum,
                                     result: result, reason: reason))
        if s.outbox.count > 100 { s.outbox.removeFirst(s.outbox.count - 100) }
    }

    /// The supervisor's thread, when a child ends: a child of a version on probation that failed within the
    /// rollback window is replaced by the last-known-good environment.
    public func childExited(_ exit: ChildExit) {
        let rollback = state.withLock { s -> (environment: [String: String], failed: AgentConfig, good: AgentConfig)? in
            guard let p = s.probation, p.generation == exit.generation, !exit.status.isSuccess,
                  exit.ranFor < configuration.rollbackWindow else { return nil }
            s.probation = nil
            guard let good = s.lastKnownGood, good.checksum != p.config.checksum || good.reloadVersion != p.config.reloadVersion else {
                return nil
            }
            let environment = ConfigRules.environment(base: base, inherit: configuration.inherit, variables: good.variables)
            let reason = "the app \(exit.status) \(exit.ranFor.seconds) s after starting with this version (rollback window \(configuration.rollbackWindow.seconds) s)"
            record(&s, .rolledBack, p.config, reason: reason)
            s.running = Running(config: good, hash: ConfigRules.hash(environment), source: "cache")
            return (environment, p.config, good)
        }
        guard let rollback else { return }
        env.log("config version \(rollback.failed.version) failed: the app \(exit.status) within the rollback window; rolling back to version \(rollback.good.version)")
        supervisor.restart(environment: rollback.environment)
        wakeSession()
    }

    /// The supervisor's tick: measures the reload's duration and, once the new child has run for the whole
    /// rollback window, makes its version the last known good.
    public func tick() {
        let snapshot = supervisor.snapshot
        let now = env.unixNow()
        let committed = state.withLock { s -> Bool in
            var changed = s.lastSupervisorState != snapshot.state
            s.lastSupervisorState = snapshot.state
            guard var p = s.probation, snapshot.generation == p.generation, snapshot.state == .running,
                  let started = snapshot.startedAt else { return changed }
            if !p.measured {
                s.lastDuration = max(0, started - p.receivedAt)
                p.measured = true
                s.probation = p
                // The new version's app is up, perhaps between two ticks that both saw `running`: say so.
                changed = true
            }
            guard now - started >= configuration.rollbackWindow.seconds else { return changed }
            s.probation = nil
            s.lastKnownGood = p.config
            s.lastKnownGoodToSave = p.config
            s.outbox.append(ConfigReport(instanceId: instanceId, version: p.config.version, checksum: p.config.checksum,
                                         result: .applied, reason: nil))
            return true
        }
        if committed { wakeSession() }
    }

    // MARK: Threads

    /// Loads the cache and starts the poll and session threads.
    public func start(metricsURL: String?) {
        do {
            try store.prepare()
            if let cached = try store.load() {
                state.withLock { $0.lastKnownGood = cached }
                env.log("last-known-good config version \(cached.version) found in \(store.path)")
            }
        } catch {
            env.log("warning: \(error.description)")
        }
        let token: String
        do {
            token = try TokenFile.read(path: configuration.tokenFile) { env.log("warning: \($0)") }
        } catch {
            env.log("cannot read the controller token: \(error.description); running without the controller")
            bootWithoutController()
            return
        }
        CurlGlobal.initialize(tls: configuration.usesTLS)
        supervisor.onChildExit { [self] exit in childExited(exit) }
        let poll = PollLoop(reloader: self, token: token)
        let session = SessionLoop(reloader: self, token: token, metricsURL: metricsURL)
        spawnThread { poll.run() }
        spawnThread { session.run() }
    }

    /// No controller answer: the cache, else an empty start when allowed, else wait (and say so).
    func bootWithoutController() {
        let cached = state.withLock { s in s.running == nil ? s.lastKnownGood : nil }
        if let cached {
            env.log("the controller is unreachable: starting the app from the last-known-good config version \(cached.version)")
            offer(cached, fromCache: true)
        } else if configuration.startWithoutConfig {
            let running = state.withLock { $0.running != nil }
            if !running, supervisor.snapshot.state == .waitingForConfig {
                env.log("no config yet and no cache: starting the app without one (--start-without-config)")
                let environment = ConfigRules.environment(base: base, inherit: configuration.inherit, variables: [:])
                supervisor.restart(environment: environment)
            }
        } else if supervisor.snapshot.state == .waitingForConfig {
            env.log("waiting for config: the controller is unreachable and \(store.path) holds no last-known-good config")
        }
    }

    func controllerAnswered() { state.withLock { $0.controllerUp = true } }

    func controllerFailed() {
        state.withLock { s in
            s.controllerUp = false
            s.controllerErrors += 1
        }
    }

    func wakeSession() {
        var one: UInt64 = 1
        _ = write(sessionWake, &one, 8)
    }

    func takeOutbox() -> (reports: [ConfigReport], cache: AgentConfig?) {
        state.withLock { s in
            defer { s.outbox.removeAll(); s.lastKnownGoodToSave = nil }
            return (s.outbox, s.lastKnownGoodToSave)
        }
    }

    func requeue(_ reports: [ConfigReport]) {
        state.withLock { s in
            s.outbox.insert(contentsOf: reports, at: 0)
            if s.outbox.count > 100 { s.outbox.removeFirst(s.outbox.count - 100) }
        }
    }

    func heartbeat() -> AgentHeartbeat {
        let running = state.withLock { $0.running }
        return AgentHeartbeat(instanceId: instanceId, state: supervisor.snapshot.state.rawValue,
                              configVersion: running?.config.version, configChecksum: running?.config.checksum)
    }

    // MARK: Observations

    /// What /v1/status shows about the config: keys and versions, never values.
    public var status: AgentConfigStatus {
        state.withLock { s in
            AgentConfigStatus(
                version: s.running?.config.version, checksum: s.running?.config.checksum,
                keys: s.running?.config.variables.keys.sorted() ?? [], source: s.running?.source,
                lastReloadResult: s.lastResult?.rawValue, lastReloadVersion: s.lastResultVersion, lastReloadReason: s.lastReason,
                controllerUp: s.controllerUp, lastKnownGoodVersion: s.lastKnownGood?.version)
        }
    }

    public func metricFamilies() -> [MetricFamily] {
        let s = state.withLock { $0 }
        let results: [ConfigReport.Result] = [.applied, .unchanged, .invalid, .rolledBack]
        return [
            .single("coderunner_config_version", "The config version the app runs with (absent before the first config).",
                    .gauge, s.running.map { Double($0.config.version) }),
            MetricFamily(name: "coderunner_config_reloads_total", help: "Config versions handled, by result.", type: .counter,
                         samples: results.map { MetricSample(labels: [MetricLabel("result", $0.rawValue)], value: Double(s.counts[$0] ?? 0)) }),
            .single("coderunner_config_last_reload_duration_seconds",
                    "From receiving the last applied version to its app process starting.", .gauge, s.lastDuration),
            .single("coderunner_controller_up", "1 when the last request to the controller succeeded, else 0.", .gauge,
                    s.controllerUp ? 1 : 0),
            .single("coderunner_controller_errors_total", "Failed requests to the controller.", .counter, Double(s.controllerErrors)),
        ]
    }

    // MARK: Helpers

    public static func wallClock() -> Double { Now.unix() }

    public static func sleep(_ d: Duration) { Now.sleep(d) }

    public static func log(_ text: String) { AgentLog.write(text) }
}

/// The poll thread: first fetch (boot), then blocking queries, forever.
struct PollLoop: Sendable {
    let reloader: ConfigReloader
    let token: String

    func run() {
        let r = reloader
        let client: ControllerClient
        do {
            client = try ControllerClient(controller: r.configuration.controller, token: token,
                                          options: CurlEasy.Options(caFile: r.configuration.caFile))
        } catch {
            r.env.log("cannot set up the controller client: \(error.description)")
            r.bootWithoutController()
            return
        }
        var index: Int64?
        var attempt = 0
        var booted = false
        while true {
            do {
                let config = try client.config(index: index, wait: r.configuration.longPollWait)
                if attempt > 0 { r.env.log("the controller answers again (config version \(config.version))") }
                r.controllerAnswered()
                attempt = 0
                if index == nil || config.version > index! {
                    r.offer(config, splay: booted)
                }
                booted = true
                index = config.version
            } catch {
                r.controllerFailed()
                if !booted {
                    booted = true
                    r.env.log("\(error.description)")
                    r.bootWithoutController()
                } else if attempt == 0 {
                    r.env.log("\(error.description); retrying with backoff (the app keeps running)")
                }
                if case .http(let status, _) = error, status == 401 {
                    r.env.log("the controller refused the agent token (401); check --token-file")
                }
                r.env.sleep(ConfigRules.backoff(attempt: attempt, unit: r.env.random()))
                attempt += 1
            }
        }
    }
}

/// The session thread: registration, heartbeats, reports and cache writes.
struct SessionLoop: Sendable {
    let reloader: ConfigReloader
    let token: String
    let metricsURL: String?

    func run() {
        let r = reloader
        guard let client = try? ControllerClient(controller: r.configuration.controller, token: token,
                                                 options: CurlEasy.Options(caFile: r.configuration.caFile)) else { return }
        var registered = false
        var interval = ReloadConfiguration.defaultHeartbeatInterval
        var attempt = 0
        var nextHeartbeat = Now.monotonic()
        var lastSent: AgentHeartbeat?
        let hostname = hostName()
        while true {
            let (reports, cache) = r.takeOutbox()
            if let cache {
                do { try r.store.save(cache) } catch { r.env.log("warning: cannot write the last-known-good cache: \(error.description)") }
            }
            var failed = false
            if !registered {
                let hb = r.heartbeat()
                do {
                    let accepted = try client.register(AgentRegistration(
                        instanceId: r.instanceId, metricsUrl: metricsURL, agentVersion: Agent.version, hostname: hostname,
                        pid: getpid(), configVersion: hb.configVersion, state: hb.state))
                    registered = true
                    lastSent = hb
                    interval = .milliseconds(Int64(max(0.1, accepted.heartbeatIntervalSeconds) * 1000))
                    nextHeartbeat = Now.monotonic() + interval
                } catch {
                    failed = true
                }
            }
            if registered, !reports.isEmpty {
                for (i, report) in reports.enumerated() {
                    do {
                        try client.report(report)
                    } catch {
                        if error.status == 404 { registered = false }
                        if error.status == nil || error.status == 404 { r.requeue(Array(reports[i...])) }
                        failed = true
                        break
                    }
                }
            } else if !reports.isEmpty {
                r.requeue(reports)
            }
            let beat = r.heartbeat()
            let news = beat.state != lastSent?.state || beat.configVersion != lastSent?.configVersion
            if registered, news || Now.monotonic() >= nextHeartbeat {
                do {
                    try client.heartbeat(beat)
                    lastSent = beat
                    nextHeartbeat = Now.monotonic() + interval
                } catch {
                    if error.status == 404 {
                        r.env.log("the controller forgot this instance; registering again")
                        registered = false
                        continue
                    }
                    failed = true
                    nextHeartbeat = Now.monotonic() + interval
                }
            }
            var wait: Duration
            if failed {
                r.controllerFailed()
                wait = ConfigRules.backoff(attempt: attempt, unit: r.env.random())
                attempt += 1
            } else {
                attempt = 0
                wait = max(.zero, nextHeartbeat - Now.monotonic())
                if !registered { wait = .zero }
                // The controller last heard "stopping" or "starting" (a restart): look again soon, so that it
                // hears "running" when the new app is up, not at the next heartbeat.
                if let sent = lastSent?.state, sent == SupervisorState.stopping.rawValue || sent == SupervisorState.starting.rawValue {
                    wait = min(wait, .milliseconds(50))
                }
            }
            var fds = [pollfd(fd: r.sessionWake, events: Int16(POLLIN), revents: 0)]
            let ms = wait.pollMilliseconds
            if poll(&fds, 1, ms) > 0 {
                var count: UInt64 = 0
                _ = read(r.sessionWake, &count, 8)
            }
        }
    }
}
