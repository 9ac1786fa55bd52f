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
        if let box = configuration.sandbox {
            do {
                sandbox = try Sandbox(spec: SandboxSpec(
                    uid: box.uid, gid: box.gid, appDirectory: box.appDirectory, readOnlyPaths: box.readOnlyPaths,
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
        if let reload = configuration.reload {
            initial = ConfigRules.environment(base: environment, inherit: reload.inherit, variables: [:])
        }
        do {
            supervisor = try Supervisor(
                configuration: SupervisorConfiguration(
                    command: configuration.command, environment: initial,
                    restartPolicy: configuration.restartPolicy, gracePeriod: configuration.gracePeriod,
                    stopSignal: configuration.stopSignal, backoff: configuration.backoff,
                    logRingLines: configuration.logRingLines, logRingBytes: configuration.logRingBytes,
                    waitForEnvironment: configuration.reload != nil),
                containment: sandbox)
        } catch {
            sandbox?.destroy()
            throw .supervisor(error)
        }
        let supervisor = supervisor
        reloader = configuration.reload.map { reload in
            ConfigReloader(configuration: reload, restarter: supervisor, baseEnvironment: environment,
                           instanceId: configuration.instance ?? Agent.generatedInstanceId())
        }
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
        if let reloader {
            telemetry.observations.register(reloader)
            telemetry.observations.setConfigStatus { reloader.status }
            supervisor.onChildExit { reloader.childExited($0) }
            reloader.start(metricsURL: telemetry.metricsAddress.map { "http://\($0)" })
        }
        var systemd = notifier.map(SystemdStateReporter.init)
        let supervisor = supervisor
        let interval = systemd?.tickInterval(sampleInterval: configuration.sampleInterval) ?? configuration.sampleInterval
        let code = supervisor.run(tickInterval: interval) {
            telemetry.tick()
            reloader?.tick()
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
