// CPU demand: the arithmetic and the run-delay ledger alone, then the sampler against a real CPU burner held to a
// CPU quota, where every worker is always runnable, so the true demand is the number of workers.
import Foundation
import Glibc
import Testing
import TestSupport
@testable import ProcSampling

struct CPUDemandArithmeticTests {
    @Test(arguments: [
        // used cores, run-delay growth (ns), interval (s), demand cores
        (0.5, UInt64(1_500_000_000), 2.0, 1.25),
        (0.5, UInt64(0), 1.0, 0.5),
        (0.0, UInt64(3_000_000_000), 1.0, 3.0),
        (0.25, UInt64(250_000_000), 0.5, 0.75),
        (0.5, UInt64(1_000_000_000), 0.0, 0.0),  // no interval yet: the first sample
    ])
    func demandIsUsedPlusRunDelayOverTheInterval(used: Double, growth: UInt64, interval: Double, expected: Double) {
        #expect(CPUDemand.cores(usedCores: used, runDelayGrowthNanoseconds: growth, intervalSeconds: interval) == expected)
    }

    @Test(arguments: [(1.0, 0.5, 200.0), (0.25, 0.5, 50.0), (4.0, 2.0, 200.0), (0.0, 1.0, 0.0), (1.0, 0.0, 0.0)])
    func percentOfTheLimit(demand: Double, limit: Double, expected: Double) {
        #expect(CPUDemand.percent(demandCores: demand, limitCores: limit) == expected)
    }

    @Test func ledgerCountsGrowthNewThreadsAndReusedIdsButNotTheFirstSample() {
        var ledger = RunDelayLedger()
        ledger.record(thread: 1, runDelayNanoseconds: 100)
        ledger.record(thread: 3, runDelayNanoseconds: 7_000)
        ledger.record(thread: 4, runDelayNanoseconds: 500)
        #expect(ledger.finish() == 0)  // what the threads waited before the first sample is no interval's
        #expect(ledger.trackedThreads == 3)

        ledger.record(thread: 1, runDelayNanoseconds: 250)  // +150
        ledger.record(thread: 2, runDelayNanoseconds: 40)  // started since: +40
        ledger.record(thread: 4, runDelayNanoseconds: 30)  // went backwards: a new thread with a reused id, +30
        // thread 3 exited: nothing (its last interval's delay is lost, and never subtracted)
        #expect(ledger.finish() == 220)
        #expect(ledger.trackedThreads == 3)

        ledger.record(thread: 1, runDelayNanoseconds: 250)  // ran or slept without waiting: +0
        #expect(ledger.finish() == 0)
        #expect(ledger.finish() == 0)  // no threads at all (no app): nothing
        #expect(ledger.trackedThreads == 0)
        ledger.record(thread: 1, runDelayNanoseconds: 260)  // after a gap, every thread is new: all of it
        #expect(ledger.finish() == 260)
    }

    @Test func parsesSchedstat() {
        // `cat /proc/self/schedstat` of a busy python3 on this machine.
        #expect(ProcParse.schedstat("95096136 1350273590 54\n")
                == ProcSchedstat(runNanoseconds: 95_096_136, runDelayNanoseconds: 1_350_273_590, timeslices: 54))
        #expect(ProcParse.schedstat("") == nil)
        #expect(ProcParse.schedstat("1 2") == nil)
        #expect(ProcParse.schedstat("1 x 3") == nil)
    }

    @Test func readsEveryThreadOfThisProcess() throws {
        // This test process runs several threads (the test runner's); each has its own schedstat.
        let reader = ProcFileReader()
        var threads: [Int32] = []
        #expect(reader.forEachThreadSchedstat(getpid()) { tid, _ in threads.append(tid) })
        let listed = try FileManager.default.contentsOfDirectory(atPath: "/proc/self/task").compactMap { Int32($0) }
        #expect(Set(threads).isSuperset(of: [getpid()]))
        #expect(threads.count >= 1 && abs(threads.count - listed.count) <= 2, "read \(threads.count), listed \(listed.count)")
        #expect(reader.schedstat(getpid()) != nil)
        #expect(!reader.forEachThreadSchedstat(Int32.max) { _, _ in })
    }
}

/// A cgroup v1 `cpu` directory holding a CPU quota, made by the test and removed by it.
struct QuotaCgroup {
    static let periodMicroseconds = 100_000

    /// The v1 `cpu` controller's mount point, when this host has one and the test may write there.
    static let v1CPUMount: String? = {
        guard getuid() == 0 else { return nil }
        let mounts = ProcParse.cgroupMounts(ProcSamplingTestSupport.read("/proc/self/mountinfo") ?? "")
        return mounts.first { !$0.isV2 && $0.controllers.contains("cpu") && $0.root == "/" }?.mountPoint
    }()

    let path: String

    init(quotaCores: Double) throws {
        let mount = try #require(Self.v1CPUMount)
        path = mount + "/coderunner-test-demand-\(getpid())"
        try #require(mkdir(path, 0o755) == 0 || errno == EEXIST, "cannot create \(path)")
        try write("cpu.cfs_period_us", "\(Self.periodMicroseconds)")
        try write("cpu.cfs_quota_us", "\(Int(quotaCores * Double(Self.periodMicroseconds)))")
        // The largest weight: on a host busy with other work, the quota (not the competition) is then what holds
        // the group back, so its utilisation reaches 100 % and the demand beyond it is the quota's doing.
        try write("cpu.shares", "262144")
    }

    private func write(_ file: String, _ value: String) throws {
        try value.write(toFile: path + "/" + file, atomically: false, encoding: .utf8)
    }

    /// Removes the directory once its processes are gone (the kernel frees it shortly after the last exits).
    func remove() {
        for _ in 0..<200 where rmdir(path) != 0 && errno == EBUSY { usleep(10_000) }
    }
}

@Suite(.serialized, .enabled(if: QuotaCgroup.v1CPUMount != nil, "needs root and a cgroup v1 cpu hierarchy (this host's hybrid layout)"))
struct CPUDemandUnderQuotaTests {
    /// stress-ng workers never sleep: each is one thread runnable all the time, so N workers demand N cores.
    /// Held to 0.5 cores, the app uses its whole quota (utilisation 100 %) while its demand reads N / 0.5.
    @Test(arguments: [1, 2])
    func demandReadsTheWorkersWhileUtilisationStaysAtTheLimit(workers: Int) throws {
        let quota = 0.5
        let cgroup = try QuotaCgroup(quotaCores: quota)
        let child = try ChildProcess(["sh", "-c", "echo $$ > \(cgroup.path)/cgroup.procs && exec stress-ng --cpu \(workers) --timeout 30s --quiet"])
        defer { kill(-child.pid, SIGKILL); _ = child.reap(); cgroup.remove() }
        #expect(TestSupport.waitUntil(timeout: .seconds(10)) { ProcSamplingTestSupport.tree(of: child.pid).count == workers + 1 })
        usleep(300_000)  // the workers are spinning
        let sampler = ProcessTreeSampler(configuration: SamplerConfiguration(
            appCgroups: CgroupDirectories(v1CPU: [cgroup.path], v1Memory: [], v2: [])))
        _ = sampler.sample(root: child.pid)
        usleep(2_000_000)
        let sample = sampler.sample(root: child.pid)

        #expect(sample.allocation.cpuSource == .cgroup)
        #expect(sample.allocation.cpuCores == quota)
        // At most the quota; a little under it when the host is busy (load 20 on 2 cores here: 89 %), since a
        // group let off the throttle at a period's start still has to win a CPU.
        #expect(sample.cpuUtilizationPercent >= 85 && sample.cpuUtilizationPercent <= 105,
                "utilisation \(sample.cpuUtilizationPercent) %")
        #expect(abs(sample.cpuDemandCores - Double(workers)) <= 0.1, "demand \(sample.cpuDemandCores) cores")
        let expectedPercent = Double(workers) / quota * 100
        #expect(abs(sample.cpuDemandPercent - expectedPercent) <= 20, "demand \(sample.cpuDemandPercent) %")
        #expect(sample.cpuDemandPercent == sample.cpuDemandCores / quota * 100)
    }
}
