// The agent's metric families and status document, built from plain values: the supervisor's
// snapshot, the latest sample of the app's tree and the agent's own figures. Pure.
import CodeRunnerWire
public import ProcSampling
public import Supervision

/// Who this agent is: the labels on every metric and the fields of /v1/status.
public struct AgentIdentity: Sendable, Equatable {
    public var deployment: String?
    public var instance: String?
    public var version: String

    public init(deployment: String? = nil, instance: String? = nil, version: String) {
        self.deployment = deployment; self.instance = instance; self.version = version
    }

    /// `deployment` and `instance`, when known.
    public var labels: [MetricLabel] {
        var labels: [MetricLabel] = []
        if let deployment, !deployment.isEmpty { labels.append(MetricLabel("deployment", deployment)) }
        if let instance, !instance.isEmpty { labels.append(MetricLabel("instance", instance)) }
        return labels
    }
}

public enum AgentMetrics {
    /// The coderunner_app_* families and the agent's info metric.
    public static func appFamilies(snapshot: SupervisorSnapshot, sample: ProcessTreeSample?, version: String) -> [MetricFamily] {
        let up = snapshot.state == .running && snapshot.pid != nil
        let s = sample
        return [
            MetricFamily(name: "coderunner_agent_info", help: "The agent's version; always 1.", type: .gauge,
                         samples: [MetricSample(labels: [MetricLabel("version", version)], value: 1)]),
            .single("coderunner_app_up", "1 while the app's process runs, else 0.", .gauge, up ? 1 : 0),
            .single("coderunner_app_restarts_total", "Times the agent started the app again after the first start.",
                    .counter, Double(snapshot.restarts)),
            .single("coderunner_app_start_time_seconds", "Unix time the current (or last) app process started.",
                    .gauge, snapshot.startedAt),
            .single("coderunner_app_last_exit_code", "Exit status of the previous app process as a shell reports it (128+N for signal N).",
                    .gauge, snapshot.lastExit.map { Double($0.shellCode) }),
            .single("coderunner_app_cpu_seconds_total", "CPU seconds (user+system) used by the app's whole process tree, exited processes included.",
                    .counter, s?.cpuSecondsTotal ?? 0),
            .single("coderunner_app_cpu_cores", "Cores the app's process tree used over the last sample interval.",
                    .gauge, s?.cpuCores ?? 0),
            .single("coderunner_app_cpu_utilization_percent", "The app's CPU use as a percentage of its allocation (cgroup quota, else --cpu-limit, else online CPUs).",
                    .gauge, s?.cpuUtilizationPercent ?? 0),
            .single("coderunner_app_cpu_limit_cores", "The app's CPU allocation in cores.", .gauge, s?.allocation.cpuCores),
            .single("coderunner_app_cpu_demand_cores", "Cores the app's threads wanted over the last sample interval: the cores used plus the time they waited while runnable (for the CPU quota's next period or for a CPU). Keeps rising past the allocation.",
                    .gauge, s?.cpuDemandCores ?? 0),
            .single("coderunner_app_cpu_demand_percent", "The app's CPU demand as a percentage of its allocation (200: twice its CPU limit wanted).",
                    .gauge, s?.cpuDemandPercent ?? 0),
            .single("coderunner_app_memory_rss_bytes", "Resident memory of the app's whole process tree in bytes.",
                    .gauge, s.map { Double($0.memoryRSSBytes) } ?? 0),
            .single("coderunner_app_memory_utilization_percent", "The app's resident memory as a percentage of its limit (cgroup limit, else --memory-limit, else MemTotal).",
                    .gauge, s?.memoryUtilizationPercent ?? 0),
            .single("coderunner_app_memory_limit_bytes", "The app's memory allocation in bytes.", .gauge, s.map { Double($0.allocation.memoryBytes) }),
            .single("coderunner_app_processes", "Processes in the app's tree.", .gauge, Double(s?.processes ?? 0)),
            .single("coderunner_app_threads", "Threads in the app's tree.", .gauge, Double(s?.threads ?? 0)),
            .single("coderunner_app_open_fds", "Open file descriptors in the app's tree.", .gauge, Double(s?.openFds ?? 0)),
            .single("coderunner_app_io_read_bytes_total", "Bytes the app's tree read from storage (/proc/PID/io read_bytes).",
                    .counter, Double(s?.ioReadBytesTotal ?? 0)),
            .single("coderunner_app_io_write_bytes_total", "Bytes the app's tree wrote to storage (/proc/PID/io write_bytes).",
                    .counter, Double(s?.ioWriteBytesTotal ?? 0)),
            .single("coderunner_app_tcp_connections", "Established TCP connections to the app's listening sockets (its concurrency).",
                    .gauge, Double(s?.tcpConnections ?? 0)),
        ]
    }
}
