// The agent inside a real cgroup with a CPU quota and a memory limit: it must find them through
// /proc/self/cgroup and mountinfo (v1 on this machine's hybrid layout, v2 on a unified host) and use
// them as the allocation, and the quota must cap what it measures.
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

/// A cgroup (v1 cpu + memory pair, or one v2 group) made for one test and removed after it.
struct TestCgroup {
    let procsFiles: [String]
    let directories: [String]

    static let quotaCores = 0.5
    static let memoryLimit: UInt64 = 512 << 20

    /// Whether this machine lets the test make cgroups with these controllers.
    static var available: Bool {
        let fm = FileManager.default
        if fm.fileExists(atPath: "/sys/fs/cgroup/cpu/cpu.cfs_quota_us") {
            return fm.isWritableFile(atPath: "/sys/fs/cgroup/cpu") && fm.isWritableFile(atPath: "/sys/fs/cgroup/memory")
        }
        let controllers = (try? String(contentsOfFile: "/sys/fs/cgroup/cgroup.subtree_control", encoding: .utf8)) ?? ""
        return controllers.contains("cpu") && controllers.contains("memory") && fm.isWritableFile(atPath: "/sys/fs/cgroup")
    }

    init() throws {
        let name = "coderunner-test-\(UUID().uuidString.prefix(8))"
        func write(_ value: String, _ path: String) throws { try value.write(toFile: path, atomically: false, encoding: .utf8) }
        let fm = FileManager.default
        if fm.fileExists(atPath: "/sys/fs/cgroup/cpu/cpu.cfs_quota_us") {
            let cpu = "/sys/fs/cgroup/cpu/\(name)", memory = "/sys/fs/cgroup/memory/\(name)"
            try fm.createDirectory(atPath: cpu, withIntermediateDirectories: false)
            try fm.createDirectory(atPath: memory, withIntermediateDirectories: false)
            try write("100000", cpu + "/cpu.cfs_period_us")
            try write(String(Int(Self.quotaCores * 100_000)), cpu + "/cpu.cfs_quota_us")
            try write(String(Self.memoryLimit), memory + "/memory.limit_in_bytes")
            directories = [cpu, memory]
        } else {
            let group = "/sys/fs/cgroup/\(name)"
            try fm.createDirectory(atPath: group, withIntermediateDirectories: false)
            try write("\(Int(Self.quotaCores * 100_000)) 100000", group + "/cpu.max")
            try write(String(Self.memoryLimit), group + "/memory.max")
            directories = [group]
        }
        procsFiles = directories.map { $0 + "/cgroup.procs" }
    }

    /// A wrapper for `AgentProcess`: `sh` that moves itself into the cgroup, then execs its arguments.
    var wrapper: [String] {
        let moves = procsFiles.map { "echo $$ > \($0)" }.joined(separator: " && ")
        return ["/bin/sh", "-c", "\(moves) && exec \"$0\" \"$@\""]
    }

    /// Removes the groups once their processes are gone (bounded wait).
    func remove() {
        _ = TestSupport.waitUntil(timeout: .seconds(10)) {
            procsFiles.allSatisfy { ((try? String(contentsOfFile: $0, encoding: .utf8)) ?? "").isEmpty }
        }
        for dir in directories { rmdir(dir) }
    }
}

@Suite(.serialized, .enabled(if: TestCgroup.available, "needs writable cgroup cpu and memory controllers"))
struct AgentCgroupLimitTests {
    @Test func usesTheCgroupQuotaAndLimitAsTheAllocation() throws {
        let cgroup = try TestCgroup()
        defer { cgroup.remove() }
        let agent = try AgentProcess(options: ["--sample-interval", "0.25", "--cpu-limit", "1.5", "--memory-limit", "1G"],
                                     command: ["sh", "-c", "while :; do :; done"], metricsListen: "127.0.0.1:0",
                                     wrapper: cgroup.wrapper)
        try #require(agent.metricsAddress() != nil, "no port announced: \(agent.stderr)")

        // Warm up, then read the agent's view twice, 2 s apart.
        var status: AgentStatus?
        try #require(TestSupport.waitUntil(timeout: .seconds(10), interval: .milliseconds(100)) {
            status = try? agent.status()
            return (status?.app.cpuSecondsTotal ?? 0) > 0.2
        })
        let app = try #require(status?.app)
        // The cgroup wins over --cpu-limit 1.5 and --memory-limit 1G.
        #expect(app.cpuLimitCores == TestCgroup.quotaCores)
        #expect(app.memoryLimitBytes == TestCgroup.memoryLimit)
        #expect(abs(app.cpuUtilizationPercent - app.cpuCores / TestCgroup.quotaCores * 100) < 1e-6)
        #expect(abs(app.memoryUtilizationPercent - Double(app.memoryRssBytes) / Double(TestCgroup.memoryLimit) * 100) < 1e-6)

        // The quota caps the busy loop at 0.5 cores: over 2 s of samples, never above it (+3 pp: tick rounding).
        let first = try #require(status)
        usleep(2_000_000)
        let later = try agent.status()
        let window = try #require(later.sampledAt) - #require(first.sampledAt)
        try #require(window > 1.5)
        let cores = (later.app.cpuSecondsTotal - first.app.cpuSecondsTotal) / window
        #expect(cores <= TestCgroup.quotaCores + 0.03, "measured \(cores) cores under a 0.5-core quota")
        #expect(cores > 0.05)
        let metrics = agent.metrics()
        #expect(metrics.contains("coderunner_app_cpu_limit_cores 0.5\n"))
        #expect(metrics.contains("coderunner_app_memory_limit_bytes 536870912\n"))
        agent.stop()
    }
}
