import ChildProcess
import Glibc
public import Sandbox
public import Supervision

/// Why the agent could not set itself up.
public enum AgentStartError: Error, CustomStringConvertible {
    case supervisor(SupervisorError)
    case sandbox(String)

    public var description: String {
        switch self {
        case .supervisor(let e): e.description
        case .sandbox(let reason): "cannot build the sandbox: \(reason)"
        }
    }
}

/// The agent: a supervisor around the user's app, its sampler and its HTTP endpoints, composed once here.
///
/// Create it first thing on the main thread: `init` creates the `Supervisor`, which blocks the signals it handles
/// in the calling thread, and every thread created afterwards (the HTTP server's) inherits that mask.
public final class Agent: Sendable {
    public static let version = "0.1.0"

    public let configuration: AgentConfiguration
    public let supervisor: Supervisor
    /// Present with --controller: pulls the config and restarts the app with it.
    public let reloader: ConfigReloader?
    /// Present under systemd's Type=notify (NOTIFY_SOCKET set).
    let notifier: SystemdNotifier?
    /// Present with --sandbox: the app's namespaces, cgroups and filter.
    public let sandbox: Sandbox?

    /// - Parameter environment: the agent's own environment, passed unchanged to the child (with --controller,
    ///   filtered by --inherit-env, and the app waits for its config).
    public init(configuration: AgentConfiguration, environment: [String: String]) throws(AgentStartError) {
        self.configuration = configuration
        notifier = SystemdNotifier(environment: environment)
        // systemd's variables are the agent's, not the app's: an app that found NOTIFY_SOCKET would talk for the unit.
        var environment = SystemdNotifier.removingNotifyVariables(environment)
        var reloadConfiguration = configuration.reload
        if let box = configuration.sandbox {
            var readOnlyPaths = box.readOnlyPaths
            if let file = reloadConfiguration?.configFile {
                do {
                    let visible = try Self.placeConfigFile(file, in: box)
                    reloadConfiguration?.configFile = visible.settings
                    if let directory = visible.bind { readOnlyPaths.append(directory) }
                } catch {
                    throw .sandbox(error.description)
                }
            }
            do {
                sandbox = try Sandbox(spec: SandboxSpec(
                    uid: box.uid, gid: box.gid, appDirectory: box.appDirectory, readOnlyPaths: readOnlyPaths,
                    hostname: box.hostname,
                    limits: ResourceLimits(cpuCores: box.cpuCores, memoryBytes: box.memoryBytes, pids: box.pids)),
                    name: box.cgroupName)
            } catch {
                throw .sandbox(error.description)
            }
            // A sandboxed app sees the platform's variables and its config, never the agent's own environment.
            environment = Self.platformEnvironment(configuration)
        } else {
            sandbox = nil
        }
        var initial = environment
        if let reload = reloadConfiguration {
            initial = ConfigRules.environment(base: environment, inherit: reload.inherit, variables: [:])
        }
        do {
            supervisor = try Supervisor(
                configuration: SupervisorConfiguration(
                    command: configuration.command, environment: initial,
                    restartPolicy: configuration.restartPolicy, gracePeriod: configuration.gracePeriod,
                    stopSignal: configuration.stopSignal, backoff: configuration.backoff,
                    logRingLines: configuration.logRingLines, logRingBytes: configuration.logRingBytes,
                    waitForEnvironment: reloadConfiguration != nil),
                containment: sandbox)
        } catch {
            sandbox?.destroy()
            throw .supervisor(error)
        }
        let supervisor = supervisor
        reloader = reloadConfiguration.map { reload in
            ConfigReloader(configuration: reload, restarter: supervisor, baseEnvironment: environment,
                           instanceId: configuration.instance ?? Agent.generatedInstanceId(),
                           namedByOperator: configuration.instance != nil)
        }
    }

    /// Where a sandboxed app finds --config-file: a path inside its /app directory as /app/..., else the file's
    /// directory bound read-only at the same path (`bind`). The file is the app's uid's (mode 0600), so that
    /// directory must let that uid through; the agent creates it (0711) when it is missing.
    static func placeConfigFile(_ file: ConfigFileSettings, in box: SandboxConfiguration) throws(ConfigFileError) -> (settings: ConfigFileSettings, bind: String?) {
        var settings = file
        settings.owner = (box.uid, box.gid)
        let slash = file.path.lastIndex(of: "/")!
        let directory = slash == file.path.startIndex ? "/" : String(file.path[..<slash])
        let appDirectory = box.appDirectory.hasSuffix("/") ? String(box.appDirectory.dropLast()) : box.appDirectory
        if directory == appDirectory || directory.hasPrefix(appDirectory + "/") {
            settings.appPath = SandboxSpec.appMountPoint + file.path.dropFirst(appDirectory.count)
            guard directory == appDirectory else {
                throw ConfigFileError("--config-file \(file.path): inside the app's directory it must be directly in \(appDirectory)")
            }
            return (settings, nil)
        }
        guard directory != "/" else { throw ConfigFileError("--config-file \(file.path): its directory would be the whole root") }
        if mkdir(directory, 0o711) != 0 && errno != EEXIST {
            throw ConfigFileError("cannot create \(directory) for --config-file: \(String(cString: strerror(errno)))")
        }
        var st = stat()
        guard stat(directory, &st) == 0, (st.st_mode & S_IFMT) == S_IFDIR else {
            throw ConfigFileError("--config-file \(file.path): \(directory) is not a directory")
        }
        guard st.st_mode & 0o001 != 0 || st.st_uid == box.uid else {
            throw ConfigFileError("the sandboxed app (uid \(box.uid)) cannot reach \(directory), the directory of --config-file: allow it through (chmod o+x) or choose another directory")
        }
        return (settings, directory)
    }

    /// What a sandboxed app's environment starts from: PATH, and the deployment's and the instance's ids.
    /// (HOME is the sandbox's /app; the config's variables, PORT among them, come on top.)
    static func platformEnvironment(_ configuration: AgentConfiguration) -> [String: String] {
        var env = ["PATH": "/usr/local/bin:/usr/bin:/bin"]
        if let d = configuration.deployment { env["CODERUNNER_DEPLOYMENT_ID"] = d }
        if let i = configuration.instance { env["CODERUNNER_INSTANCE_ID"] = i }
        return env
    }

    /// `<hostname>-<pid>-<random>`, restricted to the characters the controller accepts in an instance id.
    static func generatedInstanceId() -> String {
        let host = hostName().map { c -> Character in
            c.isASCII && (c.isLetter || c.isNumber || c == "-" || c == ".") ? c : "-"
        }
        let suffix = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        return String(String(host).prefix(64)) + "-\(getpid())-\(suffix)"
    }

    /// Runs until the child is done for good; returns the exit code for the agent (the child's status).
    public func run() -> Int32 {
        // The sampler and the HTTP server (Metrics/AgentTelemetry.swift); created here, after the Supervisor, so the
        // server's thread inherits the signal mask. A port in use or a bad token file ends the agent before any child.
        let telemetry: AgentTelemetry
        do {
            telemetry = try AgentTelemetry(configuration: configuration, supervisor: supervisor,
                                           appCgroups: sandbox?.cgroups.plan.samplerDirectories)
        } catch {
            sandbox?.destroy()
            AgentLog.write(error.description)
            return 71  // EX_OSERR
        }
        defer { telemetry.stop() }
        if let storm = configuration.testRestartStorm { startRestartStorm(count: storm) }
        // The rollout's health check: set by the controller's config, so only with one.
        let supervisor = supervisor
        let health = reloader.map { reloader in HealthChecker(supervisor: supervisor, subject: { reloader.healthSubject }) }
        if let reloader, let health {
            telemetry.observations.register(reloader)
            telemetry.observations.setConfigStatus { reloader.status }
            telemetry.observations.setHealthReport { health.report }
            supervisor.onChildExit { reloader.childExited($0) }
            reloader.start(metricsURL: telemetry.metricsAddress.map { "http://\($0)" })
        }
        var systemd = notifier.map(SystemdStateReporter.init)
        let interval = systemd?.tickInterval(sampleInterval: configuration.sampleInterval) ?? configuration.sampleInterval
        let code = supervisor.run(tickInterval: interval) {
            telemetry.tick()
            reloader?.tick()
            health?.tick()
            systemd?.tick(supervisor.snapshot)
        }
        sandbox?.destroy()
        return code
    }

    /// Test hook (hidden option --test-restart-storm N): once the first child runs, two threads together request
    /// N restarts at random short intervals, each with CODERUNNER_TEST_GENERATION set to "a1", "b1", "a2", ...
    /// It lets the tests check, against real processes, that restarts requested from other threads are
    /// serialized: two children never run at once.
    private func startRestartStorm(count: Int) {
        let supervisor = supervisor
        let base = supervisor.configuration.environment
        for (name, share) in [("a", (count + 1) / 2), ("b", count / 2)] where share > 0 {
            DetachedThread.start {
                var random = SystemRandomNumberGenerator()
                for _ in 0..<500 where supervisor.snapshot.state != .running { usleep(10_000) }
                for i in 1...share {
                    var env = base
                    env["CODERUNNER_TEST_GENERATION"] = "\(name)\(i)"
                    supervisor.restart(environment: env)
                    usleep(UInt32.random(in: 1_000...60_000, using: &random))
                }
            }
        }
    }
}
