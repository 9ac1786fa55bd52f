// Hot reload: the agent pulls its deployment's config from the controller's blocking query and restarts the
// app with it, safely. The rules live in `ReloadStateMachine`; this type carries out what they decide.
//
// Threads (created in Agent.run, after the Supervisor, so they inherit its signal mask):
// - the poll thread (`PollLoop`) holds one long poll open at a time (blocking libcurl), offers new versions,
//   and backs off with full jitter when the controller fails;
// - the session thread (`SessionLoop`) registers the instance, heartbeats, sends reports and writes the
//   last-known-good cache.
// The supervisor's thread calls `childExited` (rollback) and `tick` (probation). The state is one Mutex.
public import CodeRunnerWire
import ChildProcess
import Glibc
public import Supervision
import Synchronization
import CSystemShims

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
    /// The longest wait between two attempts to reach the controller (consul-template's retry max_backoff).
    public var retryMax: Duration
    /// --config-file: where the config is rendered as well, before every start and every signal.
    public var configFile: ConfigFileSettings?

    public init(controller: String, tokenFile: String, stateDirectory: String, caFile: String? = nil,
                inherit: InheritEnvironment = .all, splay: Duration = .zero, rollbackWindow: Duration = defaultRollbackWindow,
                startWithoutConfig: Bool = false, longPollWait: Duration = defaultLongPollWait,
                retryMax: Duration = ConfigRules.backoffCap, configFile: ConfigFileSettings? = nil) {
        self.controller = controller; self.tokenFile = tokenFile; self.stateDirectory = stateDirectory; self.caFile = caFile
        self.inherit = inherit; self.splay = splay; self.rollbackWindow = rollbackWindow
        self.startWithoutConfig = startWithoutConfig; self.longPollWait = longPollWait; self.retryMax = retryMax
        self.configFile = configFile
    }

    public var usesTLS: Bool { controller.lowercased().hasPrefix("https://") }
}

public final class ConfigReloader: Sendable, MetricFamilyProvider {
    /// The clocks, randomness, sleep and log line the reloader's threads use; injected so that a test can run
    /// the reloader on a virtual clock.
    public struct Environment: Sendable {
        public var unixNow: @Sendable () -> Double
        public var monotonicNow: @Sendable () -> Duration
        public var random: @Sendable () -> Double
        public var sleep: @Sendable (Duration) -> Void
        public var log: @Sendable (String) -> Void

        public init(unixNow: @escaping @Sendable () -> Double = { Now.unix() },
                    monotonicNow: @escaping @Sendable () -> Duration = { Now.monotonic() },
                    random: @escaping @Sendable () -> Double = { Double.random(in: 0..<1) },
                    sleep: @escaping @Sendable (Duration) -> Void = { Now.sleep($0) },
                    log: @escaping @Sendable (String) -> Void = { AgentLog.write($0) }) {
            self.unixNow = unixNow; self.monotonicNow = monotonicNow; self.random = random; self.sleep = sleep; self.log = log
        }
    }

    public let configuration: ReloadConfiguration
    public let instanceId: String
    /// Whether `instanceId` was given (--instance), not made up at start: only then does the agent name itself on the
    /// config query and take its turn in a rollout. The controller learns an instance is ready from its poll of the
    /// agent's /v1/status; an agent it may not poll (its address refused, no metrics listener) would never be ready.
    public let namedByOperator: Bool
    let restarter: any AppRestarter
    let store: LastKnownGood
    let env: Environment
    let machine: Mutex<ReloadStateMachine>
    /// Wakes the session thread (reports to send, a cache to write, news to heartbeat).
    let sessionWake: Int32

    public init(configuration: ReloadConfiguration, restarter: any AppRestarter, baseEnvironment: [String: String],
                instanceId: String, namedByOperator: Bool = false, environment: Environment = Environment()) {
        self.configuration = configuration
        self.restarter = restarter
        self.instanceId = instanceId
        self.namedByOperator = namedByOperator
        self.store = LastKnownGood(directory: configuration.stateDirectory)
        self.env = environment
        machine = Mutex(ReloadStateMachine(settings: ReloadStateMachine.Settings(
            instanceId: instanceId, base: baseEnvironment, inherit: configuration.inherit, splay: configuration.splay,
            rollbackWindow: configuration.rollbackWindow, startWithoutConfig: configuration.startWithoutConfig,
            platform: configuration.configFile.map { [ConfigFileSettings.environmentName: $0.appPath] } ?? [:])))
        sessionWake = cr_eventfd()
    }

    deinit { close(sessionWake) }

    // MARK: Events (any thread)

    /// Offers a config version: applies it, skips it, or rejects it. Returns what happened.
    @discardableResult
    public func offer(_ config: AgentConfig, fromCache: Bool = false, splay: Bool = false) -> ConfigReport.Result {
        let now = env.unixNow(), random = env.random()
        switch machine.withLock({ $0.offer(config, fromCache: fromCache, splay: splay, now: now, random: random) }) {
        case .rejected(let reason, let fallback):
            env.log("config version \(config.version) (checksum \(config.checksum.prefix(12))) rejected: \(reason); the app keeps running")
            wakeSession()
            if let fallback {
                env.log("starting from the last-known-good config version \(fallback.version) instead")
                offer(fallback, fromCache: true)
            }
            return .invalid
        case .unchanged:
            env.log("config version \(config.version) leaves the environment unchanged; no restart")
            wakeSession()
            return .unchanged
        case .apply(let apply):
            if apply.delay > .zero { env.sleep(apply.delay) }
            let keys = config.variables.keys.sorted().joined(separator: ", ")
            env.log("applying config version \(config.version) (checksum \(config.checksum.prefix(12)), keys: \(keys))\(fromCache ? " from the last-known-good cache" : "")")
            writeConfigFile(config.variables)
            // Under the lock, so that the child's exit cannot be judged before its generation is on probation.
            machine.withLock { m in m.restarted(apply, generation: restarter.restart(environment: apply.environment)) }
            // The controller's instance list shows the new version now, not at the next heartbeat.
            wakeSession()
            return .applied
        case .reload(let reload):
            let keys = config.variables.keys.sorted().joined(separator: ", ")
            // The file first: the signal tells the app to read it.
            writeConfigFile(config.variables)
            machine.withLock { m in
                restarter.reload(environment: reload.environment, signals: reload.signal.map { [$0.number] } ?? [])
                m.reloaded(reload)
            }
            if let signal = reload.signal {
                env.log("config version \(config.version) (checksum \(config.checksum.prefix(12)), keys: \(keys)) needs no restart: sent \(signal.rawValue) to the app")
            } else {
                env.log("config version \(config.version) (checksum \(config.checksum.prefix(12)), keys: \(keys)) needs no restart: the app gets it at its next start")
            }
            wakeSession()
            return .applied
        }
    }

    /// Renders the config to --config-file, when set. A failure is logged (the environment still carries the
    /// values); it never stops a start.
    func writeConfigFile(_ variables: [String: String]) {
        guard let settings = configuration.configFile else { return }
        do {
            try ConfigFile.write(variables, to: settings)
        } catch {
            env.log("error: \(error.description)")
        }
    }

    /// The supervisor's thread, when a child ends: a failed version on probation is rolled back.
    public func childExited(_ exit: ChildExit) {
        guard let rollback = machine.withLock({ $0.childExited(exit) }) else { return }
        env.log("config version \(rollback.failed.version) failed: the app \(exit.status) within the rollback window; rolling back to version \(rollback.good.version)")
        writeConfigFile(rollback.good.variables)
        restarter.restart(environment: rollback.environment)
        wakeSession()
    }

    /// The supervisor's tick: measures the reload's duration and, once the new child has run for the whole
    /// rollback window, makes its version the last known good.
    public func tick() {
        let snapshot = restarter.snapshot
        let now = env.unixNow()
        if machine.withLock({ $0.tick(snapshot, now: now) }) { wakeSession() }
    }

    // MARK: Threads

    /// Loads the cache and starts the poll and session threads.
    public func start(metricsURL: String?) {
        do {
            try store.prepare()
            if let cached = try store.load() {
                machine.withLock { $0.cacheLoaded(cached) }
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
        let poll = PollLoop(reloader: self, token: token)
        let session = SessionLoop(reloader: self, token: token, metricsURL: metricsURL)
        DetachedThread.start { poll.run() }
        DetachedThread.start { session.run() }
    }

    /// No controller answer: the cache, else an empty start when allowed, else wait (and say so).
    func bootWithoutController() {
        let state = restarter.snapshot.state
        switch machine.withLock({ $0.bootWithoutController(supervisorState: state) }) {
        case .fromCache(let cached):
            env.log("the controller is unreachable: starting the app from the last-known-good config version \(cached.version)")
            offer(cached, fromCache: true)
        case .withoutConfig(let environment):
            env.log("no config yet and no cache: starting the app without one (--start-without-config)")
            writeConfigFile([:])
            restarter.restart(environment: environment)
        case .waitForConfig:
            env.log("waiting for config: the controller is unreachable and \(store.path) holds no last-known-good config")
        case .none:
            break
        }
    }

    /// A client for the controller, retried until one can be made: without it the agent would silently stop
    /// polling, registering and heartbeating. `onFirstFailure` runs once, after the first failure is logged.
    func makeClient(token: String, for purpose: String, onFirstFailure: () -> Void = {}) -> ControllerClient {
        Self.retrying("the controller client for \(purpose)", environment: env, cap: configuration.retryMax, onFirstFailure: onFirstFailure) { () throws(CurlError) in
            try ControllerClient(controller: configuration.controller, token: token, options: CurlEasy.Options(caFile: configuration.caFile))
        }
    }

    /// Calls `make` until it succeeds, sleeping the controller backoff between attempts (full jitter, at most
    /// `cap`, never less than 10 ms: bounded, and never a spin). The first failure is logged
    /// as an error naming `what` and the cause; a later success says how many attempts it took.
    public static func retrying<T, E: Error & CustomStringConvertible>(
        _ what: String, environment env: Environment, cap: Duration = ConfigRules.backoffCap, onFirstFailure: () -> Void = {}, _ make: () throws(E) -> T
    ) -> T {
        var attempt = 0
        while true {
            do {
                let value = try make()
                if attempt > 0 { env.log("\(what) is set up after \(attempt + 1) attempts") }
                return value
            } catch {
                if attempt == 0 {
                    env.log("error: cannot set up \(what): \(error.description); retrying with backoff (up to \(cap.seconds) s apart)")
                    onFirstFailure()
                }
                env.sleep(ConfigRules.backoff(attempt: attempt, cap: cap, unit: env.random()))
                attempt += 1
            }
        }
    }

    func controllerAnswered() { machine.withLock { $0.controllerAnswered() } }

    func controllerFailed() { machine.withLock { $0.controllerFailed() } }

    func wakeSession() {
        var one: UInt64 = 1
        _ = write(sessionWake, &one, 8)
    }

    func takeOutbox() -> (reports: [ConfigReport], cache: AgentConfig?) { machine.withLock { $0.takeOutbox() } }

    func requeue(_ reports: [ConfigReport]) { machine.withLock { $0.requeue(reports) } }

    func heartbeat() -> AgentHeartbeat {
        let state = restarter.snapshot.state
        return machine.withLock { $0.heartbeat(state: state) }
    }

    // MARK: Observations

    /// What /v1/status shows about the config: keys and versions, never values.
    public var status: AgentConfigStatus { machine.withLock { $0.status } }

    /// What the health checker checks: the running config's check and version, and the app's PORT.
    public var healthSubject: HealthChecker.Subject { machine.withLock { $0.healthSubject } }

    public func metricFamilies() -> [MetricFamily] { machine.withLock { $0 }.metricFamilies() }
}
