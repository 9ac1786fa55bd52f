// The sampler against ground truth from real children. The machine's cores are shared, so CPU
// figures are compared with what the kernel's scheduler says the same processes got over the same
// window (/proc/PID/schedstat, nanoseconds), or with wait4's rusage after exit, never with an assumed
// full core.
import Foundation
import Glibc
import Testing
import TestSupport
@testable import ProcSampling

@Suite(.serialized)
struct ProcessTreeSamplerTests {
    static func monotonicSeconds() -> Double { SampleTime.now().monotonicSeconds }

    /// Scheduler CPU seconds of the given processes.
    static func schedSeconds(_ pids: [pid_t]) -> Double {
        Double(pids.compactMap(ProcSamplingTestSupport.schedNanoseconds).reduce(0, +)) / 1e9
    }

    /// Samples over `seconds` and returns (sampler cores, ground-truth cores) for the same window.
    static func measureWindow(_ sampler: ProcessTreeSampler, root: pid_t, seconds: Double) -> (Double, Double, ProcessTreeSample) {
        let pids = ProcSamplingTestSupport.tree(of: root)
        let g0 = schedSeconds(pids)
        let start = sampler.sample(root: root)
        usleep(UInt32(seconds * 1e6))
        let g1 = schedSeconds(pids)
        let end = sampler.sample(root: root)
        let truth = (g1 - g0) / (end.time.monotonicSeconds - start.time.monotonicSeconds)
        return (end.cpuCores, truth, end)
    }

    @Test func busyLoopCoresMatchTheScheduler() throws {
        let child = try ChildProcess(["sh", "-c", "while :; do :; done"])
        let sampler = ProcessTreeSampler()
        usleep(200_000)
        let (cores, truth, sample) = Self.measureWindow(sampler, root: child.pid, seconds: 2)
        #expect(abs(cores - truth) <= 0.02, "sampler \(cores) cores, scheduler \(truth)")
        #expect(truth > 0.05, "the busy loop got \(truth) cores: too little to judge accuracy")
        #expect(abs(sample.cpuUtilizationPercent - cores / sample.allocation.cpuCores * 100) < 1e-9)
        #expect(sample.processes == 1)
        #expect(sample.rootPresent)
    }

    @Test func stressNGHalfCoreMatchesTheScheduler() throws {
        let child = try ChildProcess(["stress-ng", "--cpu", "1", "--cpu-load", "50", "--timeout", "60s", "--quiet"])
        let sampler = ProcessTreeSampler()
        // stress-ng forks its worker after start-up.
        #expect(TestSupport.waitUntil(timeout: .seconds(10)) { ProcSamplingTestSupport.tree(of: child.pid).count >= 2 })
        usleep(500_000)
        let (cores, truth, sample) = Self.measureWindow(sampler, root: child.pid, seconds: 3)
        #expect(abs(cores - truth) <= 0.02, "sampler \(cores) cores, scheduler \(truth)")
        #expect(truth > 0.05, "stress-ng got \(truth) cores: too little to judge accuracy")
        #expect(sample.processes == ProcSamplingTestSupport.tree(of: child.pid).count)
    }

    /// A parent that runs a busy child, waits for it, then burns CPU itself: the sampler's total
    /// after the parent exits equals wait4's rusage for it, whether or not the sampler saw the child
    /// (the slow interval misses short children; their CPU arrives through the parent's cutime).
    @Test(arguments: [0.05, 1.0])
    func cpuTotalMatchesRusageAfterExit(interval: Double) throws {
        let busy = "i=0; while [ $i -lt 150000 ]; do i=$((i+1)); done"
        let child = try ChildProcess(["sh", "-c", "sh -c '\(busy)'; sh -c '\(busy)'; \(busy)"])
        let sampler = ProcessTreeSampler()
        var previous = 0.0
        var samples = 0
        let deadline = Self.monotonicSeconds() + 60
        while ProcSamplingTestSupport.state(of: child.pid) != "Z" && Self.monotonicSeconds() < deadline {
            let s = sampler.sample(root: child.pid)
            #expect(s.cpuSecondsTotal >= previous)
            previous = s.cpuSecondsTotal
            samples += 1
            usleep(UInt32(interval * 1e6))
        }
        #expect(child.waitForZombie())
        let final = sampler.sample(root: child.pid)  // the zombie still shows its final times
        let truth = child.reap()
        #expect(final.cpuSecondsTotal >= previous)
        // Each process's utime, stime, cutime and cstime are truncated to 10 ms ticks: a few ticks of slack.
        #expect(abs(final.cpuSecondsTotal - truth) <= 0.05 + truth * 0.01, "sampler \(final.cpuSecondsTotal) s, rusage \(truth) s after \(samples) samples")
        #expect(truth > 0.05)

        // Gone and reaped: the counter keeps its value while no app runs, and keeps growing with the next child.
        let idle = sampler.sample(root: child.pid)
        #expect(!idle.rootPresent)
        #expect(idle.processes == 0)
        #expect(idle.cpuSecondsTotal == final.cpuSecondsTotal)
        #expect(sampler.sample(root: nil).cpuSecondsTotal == final.cpuSecondsTotal)
        let next = try ChildProcess(["sh", "-c", busy])
        #expect(next.waitForZombie())
        let afterRestart = sampler.sample(root: next.pid)
        let nextTruth = next.reap()
        #expect(abs(afterRestart.cpuSecondsTotal - (final.cpuSecondsTotal + nextTruth)) <= 0.03 + nextTruth * 0.01)
    }

    @Test func countsTheWholeTree() throws {
        let n = 20
        let child = try ChildProcess(["sh", "-c", "n=0; while [ $n -lt \(n) ]; do sleep 60 & n=$((n+1)); done; wait"])
        #expect(TestSupport.waitUntil(timeout: .seconds(10)) {
            let pids = ProcSamplingTestSupport.tree(of: child.pid)
            // every sleep has exec'd (a forked shell not yet exec'd would still be called sh)
            return pids.count == n + 1 && pids.allSatisfy { $0 == child.pid || ProcSamplingTestSupport.read("/proc/\($0)/comm") == "sleep\n" }
        })
        let sampler = ProcessTreeSampler()
        let sample = sampler.sample(root: child.pid)
        let pids = ProcSamplingTestSupport.tree(of: child.pid)
        #expect(sample.processes == n + 1)
        #expect(sample.threads == n + 1)
        let fds = pids.map { (try? FileManager.default.contentsOfDirectory(atPath: "/proc/\($0)/fd").count) ?? 0 }.reduce(0, +)
        #expect(sample.openFds == fds)
        let vmRSS = pids.compactMap(ProcSamplingTestSupport.vmRSSBytes).reduce(0, +)
        #expect(vmRSS > 0)
        #expect(abs(Double(sample.memoryRSSBytes) - Double(vmRSS)) <= Double(vmRSS) * 0.05,
                "sampler \(sample.memoryRSSBytes) bytes, VmRSS sum \(vmRSS)")
        #expect(abs(sample.memoryUtilizationPercent - Double(sample.memoryRSSBytes) / Double(sample.allocation.memoryBytes) * 100) < 1e-9)

        #expect(sampler.sample(root: child.pid, includeRoot: false).processes == n)
    }

    @Test func pidReuseIsGuardedByStartTime() throws {
        let child = try ChildProcess(["sleep", "60"])
        let sampler = ProcessTreeSampler()
        let start = try #require(sampler.startTime(of: child.pid))
        let wrong = sampler.sample(root: child.pid, rootStartTime: start + 1)
        #expect(!wrong.rootPresent)
        #expect(wrong.processes == 0)
        let right = sampler.sample(root: child.pid, rootStartTime: start)
        #expect(right.rootPresent)
        #expect(right.processes == 1)
    }

    @Test func limitsFollowTheFlagsWhenNoCgroupLimitIsSet() throws {
        // This machine's cgroups set no CPU quota and an "unlimited" memory limit, so the flags apply.
        let sampler = ProcessTreeSampler(configuration: SamplerConfiguration(cpuLimitCores: 0.25, memoryLimitBytes: 64 << 20))
        let sample = sampler.sample(root: nil)
        if sample.allocation.cpuSource != .cgroup { #expect(sample.allocation.cpuCores == 0.25) }
        if sample.allocation.memorySource != .cgroup { #expect(sample.allocation.memoryBytes == 64 << 20) }
        let host = ProcessTreeSampler().sample(root: nil).allocation
        if host.cpuSource == .host { #expect(host.cpuCores == Double(sysconf(Int32(_SC_NPROCESSORS_ONLN)))) }
        if host.memorySource == .host {
            let memTotal = try #require(ProcSamplingTestSupport.read("/proc/meminfo").flatMap(ProcParse.memTotalBytes))
            #expect(host.memoryBytes == memTotal)
        }
    }
}

@Suite(.serialized)
struct TCPConnectionSamplingTests {
    enum Family: String, CaseIterable, Sendable { case ipv4, dualStackIPv6 }

    /// A listening socket on loopback (IPv4) or on [::] accepting IPv4 too; returns (fd, port).
    static func listen(_ family: Family) throws -> (Int32, UInt16) {
        let fd: Int32
        var port: UInt16 = 0
        switch family {
        case .ipv4:
            fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            var len = socklen_t(MemoryLayout<sockaddr_in>.size)
            try withUnsafeMutablePointer(to: &addr) { p in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    guard bind(fd, $0, len) == 0, getsockname(fd, $0, &len) == 0 else { throw SpawnError(argv: ["bind"], code: errno) }
                }
            }
            port = UInt16(bigEndian: addr.sin_port)
        case .dualStackIPv6:
            fd = socket(AF_INET6, Int32(SOCK_STREAM.rawValue), 0)
            var off: Int32 = 0
            setsockopt(fd, Int32(IPPROTO_IPV6), IPV6_V6ONLY, &off, socklen_t(MemoryLayout<Int32>.size))
            var addr = sockaddr_in6()
            addr.sin6_family = sa_family_t(AF_INET6)
            var len = socklen_t(MemoryLayout<sockaddr_in6>.size)
            try withUnsafeMutablePointer(to: &addr) { p in
                try p.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    guard bind(fd, $0, len) == 0, getsockname(fd, $0, &len) == 0 else { throw SpawnError(argv: ["bind6"], code: errno) }
                }
            }
            port = UInt16(bigEndian: addr.sin6_port)
        }
        guard Glibc.listen(fd, 64) == 0 else { throw SpawnError(argv: ["listen"], code: errno) }
        return (fd, port)
    }

    /// The child holds the listening socket (as fd 3) and never accepts: connections wait in its
    /// accept queue, ESTABLISHED in /proc/net/tcp, exactly the queued concurrency an app sees.
    /// Both socket sources: inet_diag (the agent's own network namespace) and /proc/net/tcp{,6}
    /// (the fallback for an app in another namespace).
    @Test(arguments: Family.allCases, [true, false])
    func countsConnectionsToTheTreesListeners(_ family: Family, viaNetlink: Bool) throws {
        let (listener, port) = try Self.listen(family)
        let child = try ChildProcess(["sleep", "60"], inheritFD: listener)
        close(listener)
        // A listener the app does not own: connections to it must not count.
        let (foreign, foreignPort) = try Self.listen(.ipv4)
        defer { close(foreign) }

        let sampler = ProcessTreeSampler()
        sampler.usesSockDiag = viaNetlink
        #expect(TestSupport.waitUntil(timeout: .seconds(5)) { ProcSamplingTestSupport.read("/proc/\(child.pid)/comm") == "sleep\n" })
        #expect(sampler.sample(root: child.pid).tcpConnections == 0)

        let k = 4
        var clients: [Int32] = []
        defer { clients.forEach { close($0) } }
        for _ in 0..<k { clients.append(try TestSupport.connectLoopback(port)) }
        for _ in 0..<2 { clients.append(try TestSupport.connectLoopback(foreignPort)) }
        var seen = -1
        #expect(TestSupport.waitUntil(timeout: .seconds(5)) {
            seen = sampler.sample(root: child.pid).tcpConnections
            return seen == k
        }, "counted \(seen) connections, expected \(k)")

        // Two connections close: the count follows.
        close(clients.removeFirst()); close(clients.removeFirst())
        #expect(TestSupport.waitUntil(timeout: .seconds(5)) {
            seen = sampler.sample(root: child.pid).tcpConnections
            return seen == k - 2
        }, "counted \(seen) connections after closing two, expected \(k - 2)")
    }
}
