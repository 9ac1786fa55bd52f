// The default executor: agents as child processes of the controller, one per instance, each serving its
// metrics on its own loopback port. It is also an InstanceSource: the scaler polls the agents it started.
// Every agent is written down (AgentRecords.swift) from its spawn to its exit: a controller killed without
// stopping them leaves them running (its apps stay up), and the next run adopts them (`adopt`) or stops them.
import ChildProcess
import Foundation
public import Logging

/// Issues the per-instance agent tokens (DeploymentService, in the controller).
public protocol AgentCredentialIssuer: Sendable {
    func issueInstanceToken(deploymentId: String, instanceId: String) async throws -> String
    func revokeInstanceToken(_ token: String) async throws
    /// The executor stopped the instance (or saw it exit): it stops counting now, not when its heartbeats go stale.
    func instanceStopped(deploymentId: String, instanceId: String) async throws
    /// The executor took over an agent a previous run started, with the token that run issued it: it stays valid.
    func instanceAdopted(token: String, deploymentId: String, instanceId: String) async
}

/// An agent a previous run of the controller left running, taken over by this one.
public struct AdoptedAgent: Sendable, Equatable {
    public var deploymentId: String
    public var instanceId: String
    public var pid: Int32
    /// Its controller token (nil when it pulls no config): the previous run's leftovers are revoked, not this.
    public var token: String?
}

public actor LocalExecutor: ScalingExecutor, InstanceSource {
    /// How each instance's sandbox is set up (coderunner-agent --sandbox; docs/sandbox.md).
    public struct SandboxSettings: Sendable, Equatable {
        /// Off only for development on a machine where nobody else deploys: apps then run as the controller's user.
        public var enabled = true
        /// Instances run as uids from `uidBase` up, one per deployment with running instances, never reused while
        /// one runs. One per deployment rather than per instance: instances share their port with SO_REUSEPORT, which
        /// the kernel allows only between sockets of the same uid (and they are the same tenant's same code).
        /// 900000 is above the accounts Debian creates (below 60000) and systemd's DynamicUser= range
        /// (61184-65519); a host that hands out subordinate uids (/etc/subuid) must keep this range out of them.
        public var uidBase: UInt32 = SandboxSettings.defaultUIDBase
        public var uidCount: UInt32 = 100_000
        /// Host paths every app may read (where the operator keeps apps' code), besides /usr and the basics of /etc.
        public var readOnlyPaths: [String] = []
        /// Limits of a deployment that sets none.
        public var defaultCPULimit = 1.0
        public var defaultMemoryLimit: UInt64 = 512 << 20
        public var defaultPidsLimit = 256

        public static let defaultUIDBase: UInt32 = 900_000
        public init() {}
    }

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
        public var sandbox: SandboxSettings
        /// On a cluster, this node's name: instance ids are `local-N:NODE`, so that two nodes' agents never share one.
        public var instanceTag: String?
        /// The address each agent serves its status and metrics on (port chosen by the kernel). Loopback by default; on
        /// a cluster of several hosts, an address of this host the other controllers reach (the bearer guards it).
        public var listenHost = "127.0.0.1"
        /// On a cluster, each agent's bearer token for its /v1 and /metrics, derived from the master key, so that the
        /// leader (another node, maybe) can poll it; nil: a random one that only this controller knows.
        public var metricsBearer: (@Sendable (_ deploymentId: String, _ instanceId: String) -> String)?

        public init(agentBinary: String?, logDirectory: String, credentials: (any AgentCredentialIssuer)? = nil,
                    sandbox: SandboxSettings = SandboxSettings()) {
            self.agentBinary = agentBinary
            self.logDirectory = logDirectory
            self.credentials = credentials
            self.sandbox = sandbox
        }
    }

    struct Agent {
        var deploymentId: String
        var instanceId: String
        var pid: Int32
        var exit: AsyncExit
        var statusURL: String
        /// The agent's own controller token and the 0600 file that hands it over; revoked when it stops.
        var token: String?
        var tokenFile: String?
        /// The token the agent's HTTP endpoints require (its 0600 file is removed when it stops): without it,
        /// one tenant's app could read another's /v1/logs over loopback.
        var metricsToken: String
        var metricsTokenFile: String
        /// The sandbox's uid (returned to the pool when it stops) and its /app on the host (removed then).
        var uid: UInt32?
        var appDirectory: String?
        /// With `pid`, names the process in the records.
        var startTime: UInt64 = 0
        /// For an agent adopted from a previous run: not our child, so signalled through its pidfd.
        var handle: ProcessHandle?

        var record: AgentRecord {
            AgentRecord(deploymentId: deploymentId, instanceId: instanceId, pid: pid, startTime: startTime, statusURL: statusURL,
                        tokenFile: tokenFile, metricsTokenFile: metricsTokenFile, uid: uid, appDirectory: appDirectory)
        }

        /// kill(2) for our child (waitpid holds its pid until we reap it); the pidfd for an adopted one.
        func send(_ signal: Int32) {
            if let handle { handle.signal(signal) } else { kill(pid, signal) }
        }
    }

    public let configuration: Configuration
    /// This node's name in its agents' instance ids, on a cluster.
    public nonisolated var instanceTag: String? { configuration.instanceTag }
    let logger: Logger
    private var agents: [String: [Agent]] = [:]
    /// Agents spawned that have not reported their address yet, by "deployment/instance": recorded too.
    private var starting: [String: AgentRecord] = [:]
    private let records: AgentRecordFile
    private var sequence: [String: Int] = [:]
    /// Sandbox uid of each deployment with agents running or starting, and how many hold it.
    private var deploymentUIDs: [String: (uid: UInt32, holders: Int)] = [:]
    /// The controller's own base URL, once its listener is bound.
    private var controllerURL: String?

    /// A deployment's instances share its port (SO_REUSEPORT). When one stops, Linux resets the connections its
    /// listener had queued (the kernel's accepted them, the app not yet), however well the app drains: between the
    /// app's last accept and its close the kernel keeps handing that listener its share of new connections. With
    /// net.ipv4.tcp_migrate_req (Linux 5.14) at 1, a closing listener's queue moves to another listener of the same
    /// port instead, and a rolling restart loses no connection. The sandboxes share the host's network namespace,
    /// where this is set; a listener with no peer on its port is reset as before. Best effort: the log says when it
    /// cannot be set (not root, an older kernel).
    static func migrateQueuedConnections(path: String = "/proc/sys/net/ipv4/tcp_migrate_req", logger: Logger) {
        let current = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
        if current == "1" { return }
        let fd = open(path, O_WRONLY | O_CLOEXEC)
        let written = fd >= 0 && write(fd, "1\n", 2) == 2
        let reason = written ? "" : String(cString: strerror(errno))
        if fd >= 0 { close(fd) }
        if written {
            logger.notice("net.ipv4.tcp_migrate_req set to 1: connections queued on a stopping instance's listener move to another instance")
        } else {
            logger.warning("a stopping instance's queued connections are reset: cannot set net.ipv4.tcp_migrate_req to 1",
                           metadata: ["error": "\(current == nil ? "no such setting (Linux before 5.14)" : reason)"])
        }
    }

    public init(configuration: Configuration, logger: Logger) {
        self.configuration = configuration
        self.logger = logger
        records = AgentRecordFile(path: (configuration.logDirectory as NSString).appendingPathComponent("agents.json"))
    }

    /// Writes every agent running or starting to the records; called after each change, before anything suspends.
    private func saveRecords() {
        let list = agents.values.flatMap { $0.map(\.record) } + starting.values
        do {
            try FileManager.default.createDirectory(atPath: configuration.logDirectory, withIntermediateDirectories: true)
            try records.save(list.sorted { ($0.deploymentId, $0.instanceId) < ($1.deploymentId, $1.instanceId) })
        } catch {
            logger.error("cannot record the running agents: a crash now would leave them to the next run unknown",
                         metadata: ["error": "\(error)"])
        }
    }

    /// Agents started from now on pull their config from `url` (the controller's own listener).
    public func connect(controllerURL url: String) {
        controllerURL = url
    }

    /// The agent binary next to this executable (how the package installs them), if there is one.
    /// `local-N`, or `local-N:NODE` on a cluster (an instance id is `[A-Za-z0-9._:-]`).
    static func instanceId(_ n: Int, tag: String?) -> String { "local-\(n)" + (tag.map { ":\($0)" } ?? "") }

    /// Whether `instanceId` has the form of a cluster node's local agent (`local-N:NODE`), whichever the node.
    static func isTaggedInstance(_ instanceId: String) -> Bool {
        guard instanceId.hasPrefix("local-"), let colon = instanceId.firstIndex(of: ":") else { return false }
        return Int(instanceId[instanceId.index(instanceId.startIndex, offsetBy: 6)..<colon]) != nil && colon < instanceId.index(before: instanceId.endIndex)
    }

    /// N when `instanceId` names an agent of a local executor tagged `tag` (nil: untagged), else nil.
    static func sequence(of instanceId: String, tag: String?) -> Int? {
        guard instanceId.hasPrefix("local-") else { return nil }
        var rest = Substring(instanceId.dropFirst("local-".count))
        if let tag {
            guard rest.hasSuffix(":" + tag) else { return nil }
            rest = rest.dropLast(tag.utf8.count + 1)
        }
        return Int(rest)
    }

    public static func agentNextToExecutable() -> String? {
        let me = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        let candidate = me.deletingLastPathComponent().appendingPathComponent("coderunner-agent").path
        return FileManager.default.isExecutableFile(atPath: candidate) ? candidate : nil
    }

    public func pollTargets() async -> [PollTarget] {
        await reap()
        return agents.flatMap { deployment, list in
            list.map { PollTarget(deploymentId: deployment, instanceId: $0.instanceId, statusURL: $0.statusURL, bearerToken: $0.metricsToken) }
        }
    }

    public func runningInstances(deploymentId: String) async -> Int? {
        await reap()
        return agents[deploymentId]?.count ?? 0
    }

    /// How many agents run for each deployment that has any.
    public func runningDeployments() async -> [String: Int] {
        await reap()
        return agents.compactMapValues { $0.isEmpty ? nil : $0.count }
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
                let agent = try await start(target, command: command)
                agents[id, default: []].append(agent)
                starting[id + "/" + agent.instanceId] = nil
                saveRecords()
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
            for v in victims { removeFiles(of: v) }
            saveRecords()
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
        for a in all { removeFiles(of: a) }
        saveRecords()
        for a in all { await forget(a) }
    }

    // MARK: After a crash

    /// Takes over the agents a previous run of the controller left running (it was killed before it could stop
    /// them), before this run starts any: each one still running and ready is adopted as it is (its app keeps
    /// serving, its uid and instance number stay taken, its exit is watched through a pidfd and it is polled
    /// again); one that cannot be adopted (it was still starting, its token files are gone) is stopped. What is
    /// left of those that are gone (token files, /app) is removed. Returns the adopted agents.
    @discardableResult
    public func adopt() async -> [AdoptedAgent] {
        let previous: [AgentRecord]
        do { previous = try records.load() } catch {
            logger.error("cannot read the agents a previous run recorded: none is adopted", metadata: ["file": "\(records.path)", "error": "\(error)"])
            return []
        }
        guard !previous.isEmpty else { return [] }
        var adopted: [AdoptedAgent] = []
        var toStop: [(Agent, String)] = []
        var gone: [Agent] = []
        for r in previous.sorted(by: { ($0.deploymentId, $0.sequence ?? 0) < ($1.deploymentId, $1.sequence ?? 0) }) {
            // New instance ids stay above every recorded one, adopted or not: an id is never used twice.
            if let n = r.sequence { sequence[r.deploymentId] = max(sequence[r.deploymentId] ?? 0, n) }
            // The pidfd first, /proc second: if the pid was reused in between, the start time tells, and the
            // pidfd then names the other process, which is never signalled.
            let handle = ProcessHandle(pid: r.pid)
            let observed = handle == nil ? nil : ObservedProcess.read(pid: r.pid)
            let filesPresent = (r.tokenFile.map { FileManager.default.fileExists(atPath: $0) } ?? true)
                && FileManager.default.fileExists(atPath: r.metricsTokenFile)
            var verdict = r.verdict(process: observed, tokenFilesPresent: filesPresent)
            let metricsToken = Self.readToken(r.metricsTokenFile)
            let token = r.tokenFile.flatMap(Self.readToken)
            if verdict == .adopt && (metricsToken == nil || (r.tokenFile != nil && token == nil)) {
                verdict = .stop("its token files cannot be read")
            }
            let exit = AsyncExit()
            var agent = Agent(deploymentId: r.deploymentId, instanceId: r.instanceId, pid: r.pid, exit: exit, statusURL: r.statusURL,
                              token: nil, tokenFile: r.tokenFile, metricsToken: metricsToken ?? "", metricsTokenFile: r.metricsTokenFile,
                              uid: nil, appDirectory: r.appDirectory)
            agent.startTime = r.startTime
            agent.handle = handle
            switch verdict {
            case .gone:
                exit.finish(-1)
                gone.append(agent)
            case .stop(let why):
                if handle?.onExit({ exit.finish(-1) }) != true { exit.finish(-1) }
                toStop.append((agent, why))
            case .adopt:
                guard handle!.onExit({ exit.finish(-1) }) else {
                    toStop.append((agent, "no thread to watch its exit"))
                    continue
                }
                agent.token = token
                if let uid = r.uid {
                    let held = deploymentUIDs[r.deploymentId]
                    deploymentUIDs[r.deploymentId] = (held?.uid ?? uid, (held?.holders ?? 0) + 1)
                    agent.uid = uid
                }
                agents[r.deploymentId, default: []].append(agent)
                adopted.append(AdoptedAgent(deploymentId: r.deploymentId, instanceId: r.instanceId, pid: r.pid, token: token))
            }
        }
        // The adopted first (and those to stop, until they are stopped: a crash now finds them again).
        do { try records.save(agents.values.flatMap { $0.map(\.record) } + toStop.map { $0.0.record }) } catch {
            logger.error("cannot record the adopted agents", metadata: ["error": "\(error)"])
        }
        for agent in adopted {
            if let token = agent.token {
                await configuration.credentials?.instanceAdopted(token: token, deploymentId: agent.deploymentId, instanceId: agent.instanceId)
            }
        }
        for (agent, why) in toStop {
            logger.warning("stopping an agent a previous run left running", metadata: [
                "deployment": "\(agent.deploymentId)", "instance": "\(agent.instanceId)", "pid": "\(agent.pid)", "reason": "\(why)"])
        }
        let grace = configuration.stopGrace
        await withTaskGroup(of: Void.self) { group in
            for (agent, _) in toStop { group.addTask { await Self.stop(agent, grace: grace) } }
        }
        // Their uids were never taken by this run (uid nil): removing their files frees nothing twice. Their
        // tokens go with the previous run's leftovers.
        for agent in toStop.map({ $0.0 }) + gone { removeFiles(of: agent) }
        saveRecords()
        for agent in toStop.map({ $0.0 }) + gone { await forget(agent) }
        logger.notice("agents a previous run left running", metadata: [
            "adopted": "\(adopted.count)", "stopped": "\(toStop.count)", "gone": "\(gone.count)"])
        return adopted
    }

    private static func readToken(_ path: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { return nil }
        let token = text.trimmingCharacters(in: .whitespacesAndNewlines)
        return token.isEmpty ? nil : token
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
        for agent in exited { removeFiles(of: agent) }
        if !exited.isEmpty { saveRecords() }
        for agent in exited { await forget(agent) }
    }

    /// After an agent exited, before anything that suspends: its token files and its sandbox's /app go, its uid is
    /// freed. Done for every stopped agent first, so none waits on another's database writes in `forget`.
    private func removeFiles(of agent: Agent) {
        if let file = agent.tokenFile { unlink(file) }
        unlink(agent.metricsTokenFile)
        if let dir = agent.appDirectory { try? FileManager.default.removeItem(atPath: dir) }  // unlinks symlinks, never follows them
        if agent.uid != nil { releaseUID(of: agent.deploymentId) }
    }

    /// After `removeFiles`: its token is revoked and the registry told it stopped.
    private func forget(_ agent: Agent) async {
        guard let credentials = configuration.credentials else { return }
        if let token = agent.token {
            do { try await credentials.revokeInstanceToken(token) } catch {
                logger.error("cannot revoke a stopped agent's token", metadata: ["instance": "\(agent.instanceId)", "error": "\(error)"])
            }
        }
        do { try await credentials.instanceStopped(deploymentId: agent.deploymentId, instanceId: agent.instanceId) } catch {
            logger.error("cannot record a stopped agent", metadata: ["instance": "\(agent.instanceId)", "error": "\(error)"])
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

    /// The deployment's sandbox uid: the one its running instances have, else the lowest free one.
    private func acquireUID(for deploymentId: String) throws -> UInt32 {
        if let held = deploymentUIDs[deploymentId] {
            deploymentUIDs[deploymentId] = (held.uid, held.holders + 1)
            return held.uid
        }
        let s = configuration.sandbox
        let taken = Set(deploymentUIDs.values.map(\.uid))
        for i in 0..<s.uidCount where !taken.contains(s.uidBase + i) {
            deploymentUIDs[deploymentId] = (s.uidBase + i, 1)
            return s.uidBase + i
        }
        throw ExecutorError.agentStart("all \(s.uidCount) sandbox uids from \(s.uidBase) are in use")
    }

    private func releaseUID(of deploymentId: String) {
        guard let held = deploymentUIDs[deploymentId] else { return }
        deploymentUIDs[deploymentId] = held.holders > 1 ? (held.uid, held.holders - 1) : nil
    }

    /// A fresh random token (256 bits, hex).
    static func randomToken() -> String {
        var generator = SystemRandomNumberGenerator()
        return (0..<4).map { _ in String(format: "%016llx", generator.next() as UInt64) }.joined()
    }

    private func start(_ target: ScalingTarget, command: String) async throws -> Agent {
        let deploymentId = target.deploymentId
        let sandbox = configuration.sandbox
        if sandbox.enabled && geteuid() != 0 {
            throw ExecutorError.agentStart("the local executor runs every instance in a sandbox, which needs the controller to run as root; run it as root, or use --executor exec or webhook")
        }
        let n = (sequence[deploymentId] ?? 0) + 1
        sequence[deploymentId] = n
        let instanceId = Self.instanceId(n, tag: configuration.instanceTag)
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
        let base = (configuration.logDirectory as NSString).appendingPathComponent("\(deploymentId)-\(instanceId)")
        let metricsToken = configuration.metricsBearer?(deploymentId, instanceId) ?? Self.randomToken()
        try Self.writeTokenFile(metricsToken, to: base + ".bearer")
        let listen = configuration.listenHost.contains(":") ? "[\(configuration.listenHost)]:0" : "\(configuration.listenHost):0"
        var arguments = ["run", "--metrics-listen", listen, "--deployment", deploymentId, "--instance", instanceId,
                         "--metrics-token-file", base + ".bearer"]
        var uid: UInt32?
        var appDirectory: String?
        if sandbox.enabled {
            do { uid = try acquireUID(for: deploymentId) } catch {
                unlink(base + ".bearer")
                throw error
            }
            appDirectory = base + ".app"
            arguments += ["--sandbox", "--sandbox-uid", "\(uid!)", "--sandbox-dir", appDirectory!,
                          "--cpu-limit", "\(target.cpuLimit ?? sandbox.defaultCPULimit)",
                          "--memory-limit", "\(target.memoryLimit.map(UInt64.init) ?? sandbox.defaultMemoryLimit)",
                          "--pids-limit", "\(target.pidsLimit ?? sandbox.defaultPidsLimit)"]
            if !sandbox.readOnlyPaths.isEmpty { arguments += ["--sandbox-read-only", sandbox.readOnlyPaths.joined(separator: ",")] }
        }
        var token: String?
        var tokenFile: String?
        // Until the agent is known, a failure below must give back what was taken.
        func release() {
            unlink(base + ".bearer")
            if uid != nil { releaseUID(of: deploymentId) }
        }
        if let url = controllerURL, let credentials = configuration.credentials {
            let issued: String
            do { issued = try await credentials.issueInstanceToken(deploymentId: deploymentId, instanceId: instanceId) } catch {
                release()
                throw error
            }
            do { try Self.writeTokenFile(issued, to: base + ".token") } catch {
                try? await credentials.revokeInstanceToken(issued)
                release()
                throw error
            }
            token = issued
            tokenFile = base + ".token"
            // The app's environment is its config and the platform's variables only (--inherit-env none).
            arguments += ["--controller", url, "--token-file", base + ".token", "--state-dir", base + ".state", "--inherit-env", "none"]
            // The config rendered to a file as well, for an app that reloads on a signal (a variable's reloadAction):
            // in the sandbox's /app, else beside the agent's log.
            arguments += ["--config-file", appDirectory.map { $0 + "/config.env" } ?? base + ".config.env"]
        }
        arguments += ["--", "/bin/sh", "-c", command]
        let pid: pid_t
        do {
            // The agent gets a clean environment: never the controller's (CODERUNNER_MASTER_KEY may be in it).
            pid = try ChildProcess.spawn(binary, arguments, environment: Self.agentEnvironment, stdin: devNull, stdout: log, stderr: log)
        } catch {
            if let tokenFile { unlink(tokenFile) }
            if let token { try? await configuration.credentials?.revokeInstanceToken(token) }
            release()
            throw ExecutorError.agentStart("\(error)")
        }
        // Read before the exit is watched: until it is reaped the pid cannot be another process.
        let startTime = ObservedProcess.read(pid: pid)?.startTime ?? 0
        let exit = AsyncExit()
        ChildProcess.onExit(of: pid) { exit.finish($0) }
        var agent = Agent(deploymentId: deploymentId, instanceId: instanceId, pid: pid, exit: exit, statusURL: "", token: token, tokenFile: tokenFile,
                          metricsToken: metricsToken, metricsTokenFile: base + ".bearer", uid: uid, appDirectory: appDirectory)
        agent.startTime = startTime
        let key = deploymentId + "/" + instanceId
        starting[key] = agent.record
        saveRecords()
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
        starting[key] = nil
        saveRecords()
        await forget(agent)
        let tail = ((try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "").suffix(400)
        throw ExecutorError.agentStart("no metrics address within \(configuration.startTimeout) (log \(logPath): \(tail))")
    }

    /// What every agent starts with: a PATH, nothing of the controller's own environment.
    static let agentEnvironment = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]

    static func metricsURL(in log: String) -> String? {
        guard let range = log.range(of: "serving metrics on ") else { return nil }
        let rest = log[range.upperBound...]
        let url = rest.prefix { !$0.isWhitespace }
        return url.hasSuffix("/metrics") ? String(url) : nil
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL and wait for the exit.
    static func stop(_ agent: Agent, grace: Duration) async {
        guard agent.exit.value == nil else { return }
        agent.send(SIGTERM)
        // Poll rather than race a waiter against a timer: an uncancellable wait would hold a task group open.
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: grace)
        while agent.exit.value == nil && clock.now < deadline {
            try? await Task.sleep(for: .milliseconds(20))
        }
        if agent.exit.value == nil {
            agent.send(SIGKILL)
            _ = await agent.exit.wait()
        }
    }
}
