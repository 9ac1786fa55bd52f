// The agent's own process figures (process_* metrics), read from /proc/self.
import Glibc
public import CodeRunnerWire
import ProcSampling

public enum SelfMetrics {
    /// Boot time (btime of /proc/stat): start times in /proc are ticks after boot.
    static let bootTimeSeconds: UInt64 = ProcFileReader().string("/proc/stat").flatMap(ProcParse.bootTime) ?? 0
    static let constants = SystemConstants.current()

    /// Reads /proc/self. Safe from any thread: each call uses its own small reader.
    public static func read() -> AgentUsage {
        let reader = ProcFileReader(initialCapacity: 2048)
        var usage = AgentUsage()
        if let stat = reader.procStat(0) {
            let tick = Double(constants.clockTicksPerSecond)
            usage.cpuSecondsTotal = Double(stat.utime + stat.stime) / tick
            usage.residentMemoryBytes = reader.residentBytes(0, pageSize: constants.pageSize, fallbackPages: stat.rssPages)
            usage.virtualMemoryBytes = stat.vsize
            usage.startTimeSeconds = Double(bootTimeSeconds) + Double(stat.startTime) / tick
        }
        usage.openFds = reader.openFileCount(0) ?? 0
        var limit = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &limit) == 0 {
            usage.maxFds = limit.rlim_cur > UInt(Int.max) ? Int.max : Int(limit.rlim_cur)
        }
        return usage
    }

    /// The process_* families Prometheus client libraries export, with the same names and meanings.
    public static func families(_ usage: AgentUsage) -> [MetricFamily] {
        [
            .single("process_cpu_seconds_total", "Total user and system CPU time spent by the agent in seconds.", .counter, usage.cpuSecondsTotal),
            .single("process_resident_memory_bytes", "Resident memory size of the agent in bytes.", .gauge, Double(usage.residentMemoryBytes)),
            .single("process_virtual_memory_bytes", "Virtual memory size of the agent in bytes.", .gauge, Double(usage.virtualMemoryBytes)),
            .single("process_start_time_seconds", "Start time of the agent since unix epoch in seconds.", .gauge, usage.startTimeSeconds),
            .single("process_open_fds", "Number of open file descriptors of the agent.", .gauge, Double(usage.openFds)),
            .single("process_max_fds", "Maximum number of open file descriptors of the agent.", .gauge, Double(usage.maxFds)),
        ]
    }
}
