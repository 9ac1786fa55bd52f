// The default executor: agents as child processes of the controller, one per instance, each serving its
// metrics on its own loopback port. It is also an InstanceSource: the scaler polls the agents it started.
import ChildProcess
import Foundation
import Logging

/// Issues the per-instance agent tokens (DeploymentService, in the controller).
public protocol AgentCredentialIssuer: Sendable {
    func issueInstanceToken(deploymentId: String, instanceId: String) async throws -> String
    func revokeInstanceToken(_ token: String) async throws
}

extension DeploymentService: AgentCredentialIssuer {}

public actor LocalExecutor: ScalingExecutor, InstanceSource {
    public struct Configuration: Sendable {
        /// The coderunner-agent binary.
        /// nil when none was found: scaling up then fails with an actionable message.
        public var agentBinary: String?
        /// Each agent's stderr goes to `<logDirectory>/<deployment>-<instance>.log`.
        public var logDirectory: String
        /// Mints and revokes each agent's own token; with the controller's URL (`connect(controllerURL:)`),
        /// agents pull their deployment's config, register and hot-reload. Without either they only supervise.
        public var credentials: (any AgentCredentialIssuer)?
        /// How long an agent may take to print its metrics address.
        public var startTimeout: Duration = .seconds(10)
        /// SIGTERM, then this long for the agent (and its app) to exit, then SIGKILL.
        public var stopGrace: Duration = .seconds(10)

        public init(agentBinary: String?, logDirectory: String, credentials: (any AgentCredentialIssuer)? = nil) {
            self.agentBinary = agentBinary
            self.logDirectory = logDirectory
            self.credentials = credentials
        }
    }

    struct Agent {
        var instanceId: String
        var pid: Int32
        var exit: AsyncExit
        var statusURL: String
        /// The agent's own controller token and the 0600 file that hands it over; revoked when it stops.
        var token: String?
        var tokenFile: String?
    }

    public let configuration: Configuration
    let logger: Logger
    private var agents: [String: [Agent]] = [:]
    private var sequence: [String: Int] = [:]
    /// The controller's own base URL, once its listener is bound.
    private var controllerURL: String?

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Agents started from now on pull their config from `url` (the controller's own listener).
    public func connect(controllerURL url: String) {
        controllerURL = url
    }

    /// The agent binary next to this executable (how the package installs them), if there is one.
    public static func agentNextToExecutable() -> String? {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidate = me.deletingLastPathComponent().appendingPathComponent("coderunner-agent").path
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
    }

    public func pollTargets() async -> [PollTarget] {
        await reap()
        return agents.flatMap { deployment, list in
            list.map { PollTarget(deploymentId: deployment, instanceId: $0.instanceId, statusURL: $0.statusURL) }
        }
    }

    public func runningInstances(deploymentId: String) async -> Int? {
        await reap()
        return agents[deploymentId]?.count ?? 0
    }

    /// Instance ids of a deployment's running agents, oldest first.
    public func instances(deploymentId: String) async -> [String] {
        await reap()
        return agents[deploymentId]?.map(\.instanceId) ?? []
    }

    public func scale(_ target: ScalingTarget, from: Int, to: Int) async throws -> Int {
        await reap()
        let id = target.deploymentId
        var running = agents[id]?.count ?? 0
        if to > running {
            guard let command = target.command, !command.isEmpty else { throw ExecutorError.noCommand(id) }
            while running < to {
                let agent = try await start(deploymentId: id, command: command)
                agents[id, default: []].append(agent)
                running += 1
            }
        } else if to < running {
            // The newest go first: the oldest have warm caches and established connections.
            let victims = Array(agents[id]!.suffix(running - to))
            agents[id]!.removeLast(running - to)
            let grace = configuration.stopGrace
            await withTaskGroup(of: Void.self) { group in
                for v in victims { group.addTask { await Self.stop(v, grace: grace) } }
            }
            for v in victims { await forget(v) }
        }
        return agents[id]?.count ?? 0
    }

    /// Stops every agent (controller shutdown): no orphan is left behind.
    public func shutdown() async {
        let all = agents.values.flatMap { $0 }
        agents = [:]
        let grace = configuration.stopGrace
        await withTaskGroup(of: Void.self) { group in
            for a in all { group.addTask { await Self.stop(a, grace: grace) } }
        }
        for a in all { await forget(a) }
    }

    /// Forgets agents that exited on their own; the next decision sees the lower count and replaces them.
    /// The bookkeeping happens before the first suspension, so a scaling that runs meanwhile (the actor is
    /// reentrant) never sees, or overwrites, a half-updated list.
    private func reap() async {
        var exited: [Agent] = []
        for (id, list) in agents {
            var alive: [Agent] = []
            for agent in list {
                if agent.exit.value == nil { alive.append(agent) } else { exited.append(agent) }
            }
            guard alive.count != list.count else { continue }
            logger.warning("agent exited", metadata: ["deployment": "\(id)", "exited": "\(list.count - alive.count)"])
            agents[id] = alive
        }
        for agent in exited { await forget(agent) }
    }

    /// After an agent exited: its token is revoked and its token file removed.
    private func forget(_ agent: Agent) async {
        if let file = agent.tokenFile { unlink(file) }
        guard let token = agent.token, let credentials = configuration.credentials else { return }
        do { try await credentials.revokeInstanceToken(token) } catch {
            logger.error("cannot revoke a stopped agent's token", metadata: ["instance": "\(agent.instanceId)", "error": "\(error)"])
        }
    }

    /// Writes `token` to a new file only the controller's user can read (O_EXCL: never through a planted link).
    static func writeTokenFile(_ token: String, to path: String) throws {
        unlink(path)
        let fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw ExecutorError.agentStart("cannot create \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        let bytes = Array(token.utf8)
        guard bytes.withUnsafeBytes({ write(fd, $0.baseAddress, $0.count) }) == bytes.count else {
            throw ExecutorError.agentStart("cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }

    private func start(deploymentId: String, command: String) async throws -> Agent {
        let n = (sequence[deploymentId] ?? 0) + 1
        sequence[deploymentId] = n
        let instanceId = "local-\(n)"
        try? FileManager.default.createDirectory(atPath: configuration.logDirectory, withIntermediateDirectories: true)
        let logPath = (configuration.logDirectory as NSString).appendingPathComponent("\(deploymentId)-\(instanceId).log")
        let log = open(logPath, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard log >= 0 else { throw ExecutorError.agentStart("cannot open \(logPath): \(String(cString: strerror(errno)))") }
        defer { close(log) }
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { close(devNull) }
        guard let binary = configuration.agentBinary else {
            throw ExecutorError.agentStart("no coderunner-agent binary next to the controller: pass --agent-binary PATH")
        }
        var arguments = ["run", "--metrics-listen", "127.0.0.1:0", "--deployment", deploymentId, "--instance", instanceId]
        var token: String?
        var tokenFile: String?
        if let url = controllerURL, let credentials = configuration.credentials {
            let base = (configuration.logDirectory as NSString).appendingPathComponent("\(deploymentId)-\(instanceId)")
            let issued = try await credentials.issueInstanceToken(deploymentId: deploymentId, instanceId: instanceId)
            do { try Self.writeTokenFile(issued, to: base + ".token") } catch {
                try? await credentials.revokeInstanceToken(issued)
                throw error
            }
            token = issued
            tokenFile = base + ".token"
            arguments += ["--controller", url, "--token-file", base + ".token", "--state-dir", base + ".state"]
        }
        arguments += ["--", "/bin/sh", "-c", command]
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(binary, arguments, stdin: devNull, stdout: log, stderr: log)
        } catch {
            if let tokenFile { unlink(tokenFile) }
            if let token { try? await configuration.credentials?.revokeInstanceToken(token) }
            throw ExecutorError.agentStart("\(error)")
        }
        let exit = AsyncExit()
        ChildProcess.onExit(of: pid) { exit.finish($0) }
        let agent = Agent(instanceId: instanceId, pid: pid, exit: exit, statusURL: "", token: token, tokenFile: tokenFile)
        // The agent prints "serving metrics on http://HOST:PORT/metrics" once its listener is bound.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: configuration.startTimeout)
        while clock.now < deadline {
            if let text = try? String(contentsOfFile: logPath, encoding: .utf8), let url = Self.metricsURL(in: text) {
                var ready = agent
                ready.statusURL = url.replacingOccurrences(of: "/metrics", with: "/v1/status")
                logger.info("agent started", metadata: ["deployment": "\(deploymentId)", "instance": "\(instanceId)",
                                                        "pid": "\(pid)", "status": "\(ready.statusURL)"])
                return ready
            }
            if exit.value != nil { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        await Self.stop(agent, grace: .seconds(1))
        await forget(agent)
        let tail = ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").suffix(400)
        throw ExecutorError.agentStart("no metrics address within \(configuration.startTimeout) (log \(logPath): \(tail))")
    }

    static func metricsURL(in log: String) -> String? {
        guard let range = log.range(of: "serving metrics on ") else { return nil }
        let rest = log[range.upperBound...]
        let url = rest.prefix { !$0.isWhitespace }
        return url.hasSuffix("/metrics") ? String(url) : nil
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL and wait for the exit.
    static func stop(_ agent: Agent, grace: Duration) async {
        let pid = agent.pid
        guard agent.exit.value == nil else { return }
        kill(pid, SIGTERM)
        // Poll rather than race a waiter against a timer: an uncancellable wait would hold a task group open.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: grace)
        while agent.exit.value == nil && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if agent.exit.value == nil {
            kill(pid, SIGKILL)
            _ = await agent.exit.wait()
        }
    }
}
