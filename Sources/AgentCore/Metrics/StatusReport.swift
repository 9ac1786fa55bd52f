// /v1/status and /v1/logs documents from the supervisor's values. Pure.
public import CodeRunnerWire
public import ProcSampling
public import Supervision

public enum StatusReport {
    public static func status(snapshot: SupervisorSnapshot, sample: ProcessTreeSample?, agent: AgentUsage,
                              identity: AgentIdentity) -> AgentStatus {
        var app = AppUsage()
        if let s = sample {
            app = AppUsage(
                cpuSecondsTotal: s.cpuSecondsTotal, cpuCores: s.cpuCores, cpuUtilizationPercent: s.cpuUtilizationPercent,
                cpuLimitCores: s.allocation.cpuCores, memoryRssBytes: s.memoryRSSBytes,
                memoryUtilizationPercent: s.memoryUtilizationPercent, memoryLimitBytes: s.allocation.memoryBytes,
                processes: s.processes, threads: s.threads, openFds: s.openFds, ioReadBytesTotal: s.ioReadBytesTotal,
                ioWriteBytesTotal: s.ioWriteBytesTotal, tcpConnections: s.tcpConnections,
                cpuDemandCores: s.cpuDemandCores, cpuDemandPercent: s.cpuDemandPercent)
        }
        return AgentStatus(
            state: snapshot.state.rawValue, pid: snapshot.pid, restarts: snapshot.restarts,
            lastExit: snapshot.lastExit.map(exit), startedAt: snapshot.startedAt, nextRestartAt: snapshot.nextRestartAt,
            deployment: identity.deployment, instance: identity.instance, version: identity.version,
            sampledAt: sample?.time.wallSeconds, app: app, agent: agent)
    }

    public static func exit(_ status: ExitStatus) -> AgentExit {
        switch status {
        case .exited(let code): AgentExit(code: code, shellCode: status.shellCode)
        case .signaled(let signal): AgentExit(signal: signal, shellCode: status.shellCode)
        }
    }

    public static func logs(_ page: LogPage) -> AgentLogs {
        AgentLogs(lines: page.lines.map { AgentLogLine(sequence: $0.sequence, timestamp: $0.timestamp, stream: $0.stream.rawValue, text: $0.text) },
                  lastSequence: page.lastSequence, oldestSequence: page.oldestSequence)
    }
}
