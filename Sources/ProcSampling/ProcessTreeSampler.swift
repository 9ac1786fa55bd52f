// Samples the app's whole process tree from /proc. The tree is found by ppid links in /proc/*/stat,
// processes are identified by (pid, starttime) so a reused pid is never mistaken for a tracked one,
// and the cumulative counters (CPU, I/O) never go backwards: what a process had used when it
// disappeared is kept, across child restarts too.
//
// CPU accounting, and why cutime/cstime are counted the way they are:
//   A live process contributes utime+stime (its own threads) plus cutime+cstime (the children it
//   waited for). The second part covers children that lived and died between two samples, which
//   would otherwise be invisible (a shell script running short commands). A child we did track
//   ends up, once its parent waits for it, inside the parent's cutime+cstime, so adding its last
//   seen CPU as well would count it twice. So when a tracked process disappears while its parent
//   is still tracked, we count only what the parent's children-counter did not absorb:
//   max(0, sum of the vanished children's last seen CPU - growth of the parent's cutime+cstime).
//   That covers parents that never wait (SIGCHLD ignored: the kernel drops the child's times).
//   If the parent's stat was read just before it reaped the child, its cutime shows the child one
//   sample late; the excess counted meanwhile is a credit that the parent's next growth settles.
//   A process whose parent is outside the tree (the root, or orphans re-parented to the agent as
//   subreaper) is reaped by the agent, whose own cutime we never count: its last seen CPU is added.
//   CPU used between the last sample and the exit is counted only if the sampler sees the zombie,
//   whose stat still shows its final times; the agent samples before reaping where it can.
import Glibc

public struct SamplerConfiguration: Sendable, Equatable {
    /// --cpu-limit: the allocation when no cgroup quota is set.
    public var cpuLimitCores: Double?
    /// --memory-limit: the allocation when no cgroup memory limit is set.
    public var memoryLimitBytes: UInt64?
    /// Limits are re-read every this many samples (an operator may change a cgroup limit live).
    public var limitsRefreshSamples: Int
    /// The app's own cgroups, when they are not the agent's (a sandbox's): their limits are read as well.
    public var appCgroups: CgroupDirectories?

    public static let defaultLimitsRefreshSamples = 30

    public init(cpuLimitCores: Double? = nil, memoryLimitBytes: UInt64? = nil,
                limitsRefreshSamples: Int = SamplerConfiguration.defaultLimitsRefreshSamples, appCgroups: CgroupDirectories? = nil) {
        self.appCgroups = appCgroups
        self.cpuLimitCores = cpuLimitCores
        self.memoryLimitBytes = memoryLimitBytes
        self.limitsRefreshSamples = max(1, limitsRefreshSamples)
    }
}

/// The figures for the app's process tree at one moment.
public struct ProcessTreeSample: Sendable, Equatable {
    public var time: SampleTime
    /// Whether the root process existed (with the expected start time) at this sample.
    public var rootPresent: Bool
    /// CPU seconds used by the app since the sampler started: monotonic.
    public var cpuSecondsTotal: Double
    /// Cores in use over the interval since the previous sample (0 on the first sample).
    public var cpuCores: Double
    public var cpuUtilizationPercent: Double
    public var memoryRSSBytes: UInt64
    public var memoryUtilizationPercent: Double
    public var processes: Int
    public var threads: Int
    public var openFds: Int
    /// Storage bytes read and written (/proc/PID/io read_bytes, write_bytes): monotonic.
    public var ioReadBytesTotal: UInt64
    public var ioWriteBytesTotal: UInt64
    /// ESTABLISHED TCP connections to the tree's listening sockets (including ones not yet accepted).
    public var tcpConnections: Int
    public var allocation: ResourceAllocation
    /// Cores the tree's threads wanted over the interval (used + waiting while runnable: see CPUDemand); unlike
    /// `cpuCores` it keeps rising past the allocation. 0 on the first sample.
    public var cpuDemandCores: Double
    /// `cpuDemandCores` as a percentage of the allocation (200: twice the CPU limit wanted).
    public var cpuDemandPercent: Double

    public init(time: SampleTime, rootPresent: Bool, cpuSecondsTotal: Double, cpuCores: Double, cpuUtilizationPercent: Double,
                memoryRSSBytes: UInt64, memoryUtilizationPercent: Double, processes: Int, threads: Int, openFds: Int,
                ioReadBytesTotal: UInt64, ioWriteBytesTotal: UInt64, tcpConnections: Int, allocation: ResourceAllocation,
                cpuDemandCores: Double = 0, cpuDemandPercent: Double = 0) {
        self.time = time; self.rootPresent = rootPresent; self.cpuSecondsTotal = cpuSecondsTotal; self.cpuCores = cpuCores
        self.cpuUtilizationPercent = cpuUtilizationPercent; self.memoryRSSBytes = memoryRSSBytes
        self.memoryUtilizationPercent = memoryUtilizationPercent; self.processes = processes; self.threads = threads
        self.openFds = openFds; self.ioReadBytesTotal = ioReadBytesTotal; self.ioWriteBytesTotal = ioWriteBytesTotal
        self.tcpConnections = tcpConnections; self.allocation = allocation
        self.cpuDemandCores = cpuDemandCores; self.cpuDemandPercent = cpuDemandPercent
    }

    public static func empty(time: SampleTime, allocation: ResourceAllocation) -> ProcessTreeSample {
        ProcessTreeSample(time: time, rootPresent: false, cpuSecondsTotal: 0, cpuCores: 0, cpuUtilizationPercent: 0,
                          memoryRSSBytes: 0, memoryUtilizationPercent: 0, processes: 0, threads: 0, openFds: 0,
                          ioReadBytesTotal: 0, ioWriteBytesTotal: 0, tcpConnections: 0, allocation: allocation)
    }
}

/// Samples one process tree. Not thread-safe: call `sample` from one thread (the supervisor's tick)
/// and publish the returned value.
public final class ProcessTreeSampler {
    private struct Tracked {
        var startTime: UInt64
        var ppid: Int32
        var selfTicks: UInt64
        var childTicks: UInt64
        var previousChildTicks: UInt64
        /// Growth of childTicks in this sample not used to settle `credit`.
        var freshChildGrowth: UInt64
        /// Ticks of vanished children counted as exited before this parent's cutime showed them
        /// (the parent was read just before it reaped them). Its next growth settles them.
        var credit: UInt64
        var creditAge: Int
        var ioRead: UInt64
        var ioWrite: UInt64
        var generation: UInt32
        // Socket scan cache: the fds are re-read only when the fd count or the netns's set of
        // listening sockets changed, so a steady tree costs no readlink calls.
        var socketScanKey: (Int, UInt64)
        var openFds: Int
        var listenInodes: [UInt64]
        /// /proc/PID/{stat,statm,io,schedstat} kept open and re-read with pread (-1: not kept).
        var files: (stat: Int32, statm: Int32, io: Int32, schedstat: Int32)

        func closeFiles() {
            for fd in [files.stat, files.statm, files.io, files.schedstat] where fd >= 0 { close(fd) }
        }
    }

    private struct ScanEntry {
        var pid: Int32
        var inode: UInt64
        var stat: ProcStat
    }

    private struct Endpoint: Hashable {
        var address: TCPAddress
        var port: UInt16
    }

    /// Tree processes whose stat, statm, io and schedstat stay open between samples (4 descriptors each): a pread
    /// costs a third of open+read+close. Past this many, files are opened per sample.
    static let maxCachedFileProcesses = 128
    private var cachedFileProcesses = 0

    /// How long a parent's cutime may lag its reaped children: the race spans one sample.
    private static let creditLifetimeSamples = 2

    public let configuration: SamplerConfiguration
    public let constants: SystemConstants
    private let reader = ProcFileReader()
    private let procDir: OpaquePointer?
    private var sockDiag: SockDiag?
    /// Tests turn this off to exercise the /proc/net/tcp path the agent takes across network namespaces.
    var usesSockDiag = true

    private var generation: UInt32 = 0
    private var tracked: [Int32: Tracked] = [:]
    private var scan: [ScanEntry] = []
    /// Processes outside the tree at the last sample, by pid, with their /proc directory's inode.
    /// A process outside the tree cannot enter it (a new child has a new pid; an orphan is re-parented
    /// to an ancestor of its old parent), so its stat is not read again while the inode is unchanged
    /// (a reused pid gets a new /proc inode). On a busy host this halves the sampler's cost.
    private var foreign: [Int32: UInt64] = [:]
    private var nextForeign: [Int32: UInt64] = [:]
    private var lastRoot: (Int32?, UInt64?, Bool)?
    private var members: Set<Int32> = []
    private var vanished: [Int32] = []
    private var absorbed: [Int32: UInt64] = [:]
    private var listening: [UInt64: Endpoint] = [:]
    private var established: [Endpoint] = []
    private var appListeners: Set<Endpoint> = []

    private var runDelays = RunDelayLedger()

    private var exitedTicks: UInt64 = 0
    private var exitedIORead: UInt64 = 0
    private var exitedIOWrite: UInt64 = 0
    private var lastTotalTicks: UInt64 = 0
    private var lastTime: SampleTime?
    private var samplesSinceLimits = Int.max
    public private(set) var allocation: ResourceAllocation

    public init(configuration: SamplerConfiguration = SamplerConfiguration(), constants: SystemConstants = .current()) {
        self.configuration = configuration
        self.constants = constants
        self.procDir = opendir("/proc")
        self.allocation = ResourceAllocation.resolve(
            cgroupCPUCores: nil, flagCPUCores: configuration.cpuLimitCores, onlineCPUs: constants.onlineCPUs,
            cgroupMemoryBytes: nil, flagMemoryBytes: configuration.memoryLimitBytes, memTotalBytes: 0)
        scan.reserveCapacity(512)
    }

    deinit {
        if let procDir { closedir(procDir) }
        for t in tracked.values { t.closeFiles() }
    }

    /// The start time (ticks after boot) of a process, to pass with its pid to `sample`.
    public func startTime(of pid: Int32) -> UInt64? { reader.procStat(pid)?.startTime }

    /// Samples the tree rooted at `root`. With `rootStartTime`, a process with that pid but another
    /// start time is not the root (pid reuse). `includeRoot: false` samples only the descendants
    /// (the agent passes its own pid: the child, its tree and any orphans re-parented to the agent).
    /// `root: nil` means no app is running: cumulative counters keep their values.
    public func sample(root: Int32?, rootStartTime: UInt64? = nil, includeRoot: Bool = true,
                       at time: SampleTime = .now()) -> ProcessTreeSample {
        generation &+= 1
        if samplesSinceLimits >= configuration.limitsRefreshSamples { refreshLimits() }
        samplesSinceLimits += 1

        if let last = lastRoot, last.0 == root, last.1 == rootStartTime, last.2 == includeRoot {} else { foreign.removeAll() }
        lastRoot = (root, rootStartTime, includeRoot)
        scanProcesses(root: root)
        var rootPresent = false
        members.removeAll(keepingCapacity: true)
        if let root, let entry = scan.first(where: { $0.pid == root }),
           rootStartTime == nil || entry.stat.startTime == rootStartTime {
            rootPresent = true
            members.insert(root)
            collectDescendants()
            if !includeRoot { members.remove(root) }
        }

        var result = ProcessTreeSample.empty(time: time, allocation: allocation)
        result.rootPresent = rootPresent
        var rssBytes: UInt64 = 0
        var liveTicks: UInt64 = 0
        var liveIORead: UInt64 = 0
        var liveIOWrite: UInt64 = 0
        for entry in scan where members.contains(entry.pid) {
            let s = entry.stat
            var t: Tracked
            if let existing = tracked[entry.pid], existing.startTime == s.startTime {
                t = existing
                t.previousChildTicks = t.childTicks
            } else {
                if tracked[entry.pid] != nil { retire(entry.pid) }  // the pid was reused: the old one is gone
                t = Tracked(startTime: s.startTime, ppid: s.ppid, selfTicks: 0, childTicks: 0, previousChildTicks: 0,
                            freshChildGrowth: 0, credit: 0, creditAge: 0,
                            ioRead: 0, ioWrite: 0, generation: 0, socketScanKey: (-1, 0), openFds: 0, listenInodes: [],
                            files: (-1, -1, -1, -1))
                t.previousChildTicks = s.cutime &+ s.cstime
            }
            if t.files.stat < 0 && cachedFileProcesses < Self.maxCachedFileProcesses {
                let files = (stat: reader.openProcFile(entry.pid, "stat"), statm: reader.openProcFile(entry.pid, "statm"),
                             io: reader.openProcFile(entry.pid, "io"), schedstat: reader.openProcFile(entry.pid, "schedstat"))
                if files.stat >= 0 {
                    t.files = files
                    cachedFileProcesses += 1
                } else {  // gone already, or not ours to read: read per sample
                    for fd in [files.statm, files.io, files.schedstat] where fd >= 0 { close(fd) }
                }
            }
            var io: ProcIO?
            if t.files.io >= 0 { io = reader.withDescriptor(t.files.io) { ProcParse.io(bytes: $0) } ?? nil }
            if io == nil {
                io = reader.withProcPath(entry.pid, "io") { p in reader.withFile(p, singleShot: true) { ProcParse.io(bytes: $0) } } ?? nil
            }
            t.ppid = s.ppid
            t.selfTicks = max(t.selfTicks, s.utime &+ s.stime)
            t.childTicks = max(t.childTicks, s.cutime &+ s.cstime)
            t.freshChildGrowth = t.childTicks - t.previousChildTicks
            if t.credit > 0 {
                let settled = min(t.credit, t.freshChildGrowth)
                exitedTicks -= settled
                t.credit -= settled
                t.freshChildGrowth -= settled
                t.creditAge += 1
                if t.creditAge > Self.creditLifetimeSamples { t.credit = 0 }  // the parent never waited
            }
            if let io { t.ioRead = max(t.ioRead, io.readBytes); t.ioWrite = max(t.ioWrite, io.writeBytes) }
            t.generation = generation
            t.openFds = reader.openFileCount(entry.pid) ?? 0
            tracked[entry.pid] = t

            liveTicks &+= t.selfTicks &+ t.childTicks
            liveIORead &+= t.ioRead
            liveIOWrite &+= t.ioWrite
            result.processes += 1
            result.threads += Int(max(0, s.numThreads))
            rssBytes += reader.residentBytes(entry.pid, pageSize: constants.pageSize, fallbackPages: s.rssPages,
                                             descriptor: t.files.statm)
            result.openFds += t.openFds
            recordRunDelays(entry.pid, threads: s.numThreads, descriptor: t.files.schedstat)
        }
        let runDelayGrowth = runDelays.finish()
        retireVanished()
        for entry in scan where !members.contains(entry.pid) { nextForeign[entry.pid] = entry.inode }
        swap(&foreign, &nextForeign)

        let total = max(lastTotalTicks, exitedTicks &+ liveTicks)
        let tick = Double(constants.clockTicksPerSecond)
        var interval: Double?
        if let last = lastTime, time.monotonicSeconds > last.monotonicSeconds {
            interval = time.monotonicSeconds - last.monotonicSeconds
            result.cpuCores = Double(total - lastTotalTicks) / tick / (time.monotonicSeconds - last.monotonicSeconds)
        }
        lastTotalTicks = total
        lastTime = time

        result.cpuSecondsTotal = Double(total) / tick
        result.cpuUtilizationPercent = result.cpuCores / allocation.cpuCores * 100
        if let interval {
            result.cpuDemandCores = CPUDemand.cores(usedCores: result.cpuCores, runDelayGrowthNanoseconds: runDelayGrowth,
                                                    intervalSeconds: interval)
            result.cpuDemandPercent = CPUDemand.percent(demandCores: result.cpuDemandCores, limitCores: allocation.cpuCores)
        }
        result.memoryRSSBytes = rssBytes
        result.memoryUtilizationPercent = Double(result.memoryRSSBytes) / Double(allocation.memoryBytes) * 100
        result.ioReadBytesTotal = exitedIORead &+ liveIORead
        result.ioWriteBytesTotal = exitedIOWrite &+ liveIOWrite
        if let root, rootPresent { result.tcpConnections = countConnections(netnsOf: root) }
        return result
    }

    // MARK: Process tree

    /// Reads /proc/*/stat of every process. The DIR stays open; rewinddir re-lists /proc.
    private func scanProcesses(root: Int32?) {
        scan.removeAll(keepingCapacity: true)
        nextForeign.removeAll(keepingCapacity: true)
        guard let procDir else { return }
        rewinddir(procDir)
        while let entry = readdir(procDir) {
            let pid: Int32? = withUnsafePointer(to: &entry.pointee.d_name) { p in
                p.withMemoryRebound(to: UInt8.self, capacity: 256) { n in
                    var v: Int32 = 0
                    var i = 0
                    while n[i] != 0 {
                        guard n[i] &- 0x30 < 10, i < 10 else { return nil }
                        v = v &* 10 &+ Int32(n[i] &- 0x30)
                        i += 1
                    }
                    return i > 0 ? v : nil
                }
            }
            guard let pid else { continue }
            let inode = UInt64(entry.pointee.d_ino)
            if pid != root, let known = foreign[pid], known == inode {
                nextForeign[pid] = inode
                continue
            }
            var stat: ProcStat?
            if let t = tracked[pid], t.files.stat >= 0 {
                // A kept descriptor of a process that died reads nothing; a reused pid is another process.
                stat = reader.withDescriptor(t.files.stat) { ProcParse.statFields($0) } ?? nil
                if stat?.startTime != t.startTime { stat = nil }
            }
            if stat == nil {
                stat = reader.withProcPath(pid, "stat", { p in reader.withFile(p, singleShot: true) { ProcParse.statFields($0) } }) ?? nil
            }
            if let stat { scan.append(ScanEntry(pid: pid, inode: inode, stat: stat)) }
        }
    }

    /// Adds every process whose ppid chain reaches a member. Each pass adds at least one process or
    /// stops, and children usually have higher pids than parents, so one or two passes suffice.
    private func collectDescendants() {
        var changed = true
        var passes = 0
        while changed && passes <= scan.count {
            changed = false
            passes += 1
            for entry in scan where !members.contains(entry.pid) && members.contains(entry.stat.ppid) {
                members.insert(entry.pid)
                changed = true
            }
        }
    }

    /// Records the run delay of every thread of one process. A single-threaded process's own schedstat is its
    /// thread's, which spares listing its task directory (and is kept open with the process's other files).
    private func recordRunDelays(_ pid: Int32, threads: Int64, descriptor: Int32) {
        if threads <= 1 {
            var stat: ProcSchedstat?
            if descriptor >= 0 { stat = reader.withDescriptor(descriptor) { ProcParse.schedstat(bytes: $0) } ?? nil }
            if stat == nil { stat = reader.schedstat(pid) }
            if let stat { runDelays.record(thread: pid, runDelayNanoseconds: stat.runDelayNanoseconds) }
        } else {
            reader.forEachThreadSchedstat(pid) { tid, stat in runDelays.record(thread: tid, runDelayNanoseconds: stat.runDelayNanoseconds) }
        }
    }

    /// Moves what vanished processes used into the exited totals (see the header comment).
    private func retireVanished() {
        vanished.removeAll(keepingCapacity: true)
        absorbed.removeAll(keepingCapacity: true)
        for (pid, t) in tracked where t.generation != generation { vanished.append(pid) }
        for pid in vanished {
            guard let t = tracked[pid] else { continue }
            if let parent = tracked[t.ppid], parent.generation == generation {
                absorbed[t.ppid, default: 0] &+= t.selfTicks &+ t.childTicks
            } else {
                exitedTicks &+= t.selfTicks &+ t.childTicks
            }
            exitedIORead &+= t.ioRead
            exitedIOWrite &+= t.ioWrite
            forget(t)
            tracked[pid] = nil
        }
        for (parentPid, expected) in absorbed {
            guard var parent = tracked[parentPid] else { continue }
            if expected > parent.freshChildGrowth {
                let missing = expected - parent.freshChildGrowth
                exitedTicks &+= missing
                parent.credit &+= missing
                parent.creditAge = 0
                tracked[parentPid] = parent
            }
        }
    }

    private func forget(_ t: Tracked) {
        if t.files.stat >= 0 { cachedFileProcesses -= 1 }
        t.closeFiles()
    }

    /// A tracked pid now belongs to another process: the old one exited between samples.
    private func retire(_ pid: Int32) {
        guard let t = tracked.removeValue(forKey: pid) else { return }
        forget(t)
        exitedTicks &+= t.selfTicks &+ t.childTicks
        exitedIORead &+= t.ioRead
        exitedIOWrite &+= t.ioWrite
    }

    // MARK: TCP connections

    /// ESTABLISHED connections whose local endpoint is one the tree listens on. The sockets come from
    /// inet_diag when the root shares the agent's network namespace (the usual sandbox), else from the
    /// root namespace's /proc/ROOT/net/tcp{,6}. Listeners are dumped first (cheap: the listening hash
    /// only); the established hash, which the kernel walks bucket by bucket, only when the tree listens.
    private func countConnections(netnsOf root: Int32) -> Int {
        listening.removeAll(keepingCapacity: true)
        established.removeAll(keepingCapacity: true)
        var listenKey: UInt64 = 0
        func collect(_ e: TCPSocketEntry) {
            if e.state == TCPState.listen.rawValue {
                listening[e.inode] = Endpoint(address: e.localAddress, port: e.localPort)
                listenKey = listenKey &+ (e.inode &* 0x9E37_79B9_7F4A_7C15)
            } else if e.state == TCPState.established.rawValue {
                established.append(Endpoint(address: e.localAddress, port: e.localPort))
            }
        }
        let diag: SockDiag? = usesSockDiag && sharesNetworkNamespace(root) ? (sockDiag ?? SockDiag()) : nil
        sockDiag = diag ?? sockDiag
        func dump(_ state: TCPState) -> Bool {
            guard let diag else { return false }
            let ok = diag.dump(family: AF_INET, states: 1 << UInt32(state.rawValue), collect)
                && diag.dump(family: AF_INET6, states: 1 << UInt32(state.rawValue), collect)
            if !ok { sockDiag = nil }  // a fresh socket next time: no stale datagrams from a broken dump
            return ok
        }
        func readProcTables() {
            listening.removeAll(keepingCapacity: true)
            established.removeAll(keepingCapacity: true)
            listenKey = 0
            for suffix: StaticString in ["net/tcp", "net/tcp6"] {
                _ = reader.withProcPath(root, suffix) { p in
                    reader.withFile(p) { bytes in ProcParse.tcpSockets(bytes: bytes, collect) }
                }
            }
        }

        let viaNetlink = dump(.listen)
        if !viaNetlink { readProcTables() }
        guard !listening.isEmpty else { return 0 }

        appListeners.removeAll(keepingCapacity: true)
        for pid in members {
            guard var t = tracked[pid] else { continue }
            if t.socketScanKey != (t.openFds, listenKey) {
                t.listenInodes.removeAll()
                reader.forEachSocketInode(pid) { inode in
                    if listening[inode] != nil { t.listenInodes.append(inode) }
                }
                t.socketScanKey = (t.openFds, listenKey)
                tracked[pid] = t
            }
            for inode in t.listenInodes { if let e = listening[inode] { appListeners.insert(e) } }
        }
        guard !appListeners.isEmpty else { return 0 }
        if viaNetlink && !dump(.established) {
            readProcTables()
        }

        var count = 0
        for e in established {
            if appListeners.contains(e) { count += 1; continue }
            // A listener on 0.0.0.0 or :: accepts on every local address of its family; a dual-stack
            // :: listener also takes IPv4 connections, which tcp6 shows as ::ffff:a.b.c.d.
            let wildcard = Endpoint(address: TCPAddress(isIPv6: e.address.isIPv6, words: (0, 0, 0, 0)), port: e.port)
            if appListeners.contains(wildcard) { count += 1 }
        }
        return count
    }

    /// Whether `pid` is in the agent's network namespace (same nsfs inode).
    private func sharesNetworkNamespace(_ pid: Int32) -> Bool {
        var mine = Glibc.stat(), theirs = Glibc.stat()
        let a = reader.withProcPath(0, "ns/net") { fstatat(AT_FDCWD, $0, &mine, 0) }
        let b = reader.withProcPath(pid, "ns/net") { fstatat(AT_FDCWD, $0, &theirs, 0) }
        return a == 0 && b == 0 && mine.st_ino == theirs.st_ino && mine.st_dev == theirs.st_dev
    }

    // MARK: Limits

    /// Re-reads the cgroup limits and MemTotal.
    public func refreshLimits() {
        samplesSinceLimits = 0
        let memberships = reader.string("/proc/self/cgroup").map(ProcParse.cgroupMemberships) ?? []
        let mounts = reader.string("/proc/self/mountinfo").map(ProcParse.cgroupMounts) ?? []
        var dirs = CgroupDirectories.locate(memberships: memberships, mounts: mounts)
        if let app = configuration.appCgroups {
            dirs = CgroupDirectories(v1CPU: app.v1CPU + dirs.v1CPU, v1Memory: app.v1Memory + dirs.v1Memory, v2: app.v2 + dirs.v2)
        }

        var cpu: Double?
        var memory: UInt64?
        func tighten(_ c: Double?) { if let c { cpu = min(cpu ?? c, c) } }
        func tighten(_ m: UInt64?) { if let m { memory = min(memory ?? m, m) } }
        for dir in dirs.v2 {
            tighten(reader.string(dir + "/cpu.max").flatMap(ProcParse.cgroupV2CPUMax)?.cores)
            tighten(reader.string(dir + "/memory.max").flatMap(ProcParse.cgroupMemoryLimit))
        }
        for dir in dirs.v1CPU {
            if let q = reader.string(dir + "/cpu.cfs_quota_us"), let p = reader.string(dir + "/cpu.cfs_period_us") {
                tighten(ProcParse.cgroupV1CPUQuota(quota: q, period: p)?.cores)
            }
        }
        for dir in dirs.v1Memory { tighten(reader.string(dir + "/memory.limit_in_bytes").flatMap(ProcParse.cgroupMemoryLimit)) }

        let memTotal = reader.string("/proc/meminfo").flatMap(ProcParse.memTotalBytes) ?? 0
        allocation = ResourceAllocation.resolve(
            cgroupCPUCores: cpu, flagCPUCores: configuration.cpuLimitCores, onlineCPUs: constants.onlineCPUs,
            cgroupMemoryBytes: memory, flagMemoryBytes: configuration.memoryLimitBytes, memTotalBytes: memTotal)
    }
}
