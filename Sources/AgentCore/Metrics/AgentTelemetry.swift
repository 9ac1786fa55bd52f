// The agent's sampling and HTTP half, started by `Agent.run`: the sampler runs on the supervisor's tick,
// the HTTP server on libmicrohttpd's thread, and `AgentObservations` joins them.
import Glibc
public import ProcSampling
public import Supervision

/// Owns the sampler and the HTTP server for one agent run. Not Sendable: `tick` runs on the
/// supervisor's thread only (the sampler keeps per-process state between samples).
public final class AgentTelemetry {
    public let observations: AgentObservations
    /// The bound metrics address (with the chosen port), nil when --metrics-listen is off.
    public var metricsAddress: HTTPListenAddress? { server?.address }
    private let sampler: ProcessTreeSampler
    private let agentPID = getpid()
    private var server: HTTPServer?

    /// Reads the token file, binds --metrics-listen and starts serving. Call it after the Supervisor
    /// exists: the server's thread inherits the signal mask the supervisor set.
    public init(configuration: AgentConfiguration, supervisor: Supervisor, appCgroups: CgroupDirectories? = nil) throws(HTTPServerError) {
        sampler = ProcessTreeSampler(configuration: SamplerConfiguration(
            cpuLimitCores: configuration.cpuLimit, memoryLimitBytes: configuration.memoryLimit, appCgroups: appCgroups))
        observations = AgentObservations(
            identity: AgentIdentity(deployment: configuration.deployment, instance: configuration.instance, version: Agent.version),
            snapshot: { supervisor.snapshot }, logs: supervisor.logs)
        if let listen = configuration.metricsListen {
            let token = try configuration.metricsTokenFile.map { path throws(HTTPServerError) in try BearerToken.load(path: path) }
            let server = try HTTPServer(listen: listen,
                                        router: HTTPRouter(observations: observations, token: token))
            self.server = server
            AgentLog.write("serving metrics on http://\(server.address)/metrics")
        }
    }

    /// One sample of the app: every process descending from the agent (the child, its tree, and
    /// orphans re-parented to the agent as subreaper or PID 1), the agent itself excluded.
    public func tick() {
        observations.publish(sampler.sample(root: agentPID, includeRoot: false))
    }

    public func stop() {
        server?.stop()
        server = nil
    }
}
