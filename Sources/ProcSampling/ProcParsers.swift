// Pure parsers for the /proc and cgroup files the sampler reads. No I/O: each takes the file's text
// (a String, or its bytes on the hot path) and returns values. Formats are documented in proc(5) and
// the kernel's Documentation/admin-guide/cgroup-v1 and cgroup-v2.

/// The fields of /proc/PID/stat the sampler uses. Times are in clock ticks (sysconf(_SC_CLK_TCK)).
public struct ProcStat: Sendable, Equatable {
    public var pid: Int32
    public var comm: String
    /// One letter: R, S, D, Z, T, t, X, I...
    public var state: UInt8
    public var ppid: Int32
    public var pgrp: Int32
    public var utime: UInt64
    public var stime: UInt64
    /// CPU of children this process waited for (their utime+stime+cutime+cstime at reaping).
    public var cutime: UInt64
    public var cstime: UInt64
    public var numThreads: Int64
    /// Ticks after boot at which the process started: with the pid, the process's identity.
    public var startTime: UInt64
    public var vsize: UInt64
    /// Resident pages. Approximate on Linux 6.2+ (per-CPU counters read without summing): the
    /// sampler takes RSS from statm instead.
    public var rssPages: Int64

    public init(pid: Int32, comm: String, state: UInt8, ppid: Int32, pgrp: Int32, utime: UInt64, stime: UInt64,
                cutime: UInt64, cstime: UInt64, numThreads: Int64, startTime: UInt64, vsize: UInt64, rssPages: Int64) {
        self.pid = pid; self.comm = comm; self.state = state; self.ppid = ppid; self.pgrp = pgrp
        self.utime = utime; self.stime = stime; self.cutime = cutime; self.cstime = cstime
        self.numThreads = numThreads; self.startTime = startTime; self.vsize = vsize; self.rssPages = rssPages
    }
}

/// Counters of /proc/PID/io. read_bytes/write_bytes count storage I/O; rchar/wchar every read/write call.
public struct ProcIO: Sendable, Equatable {
    public var rchar: UInt64
    public var wchar: UInt64
    public var readBytes: UInt64
    public var writeBytes: UInt64
    public init(rchar: UInt64, wchar: UInt64, readBytes: UInt64, writeBytes: UInt64) {
        self.rchar = rchar; self.wchar = wchar; self.readBytes = readBytes; self.writeBytes = writeBytes
    }
}

/// One task's scheduler figures (/proc/PID/task/TID/schedstat), cumulative since it started.
public struct ProcSchedstat: Sendable, Equatable {
    /// Time on a CPU.
    public var runNanoseconds: UInt64
    /// Time runnable but not running: waiting for a CPU, or for its cgroup's next CPU quota period.
    public var runDelayNanoseconds: UInt64
    public var timeslices: UInt64
    public init(runNanoseconds: UInt64, runDelayNanoseconds: UInt64, timeslices: UInt64) {
        self.runNanoseconds = runNanoseconds; self.runDelayNanoseconds = runDelayNanoseconds; self.timeslices = timeslices
    }
}

/// The lines of /proc/PID/status the sampler can use.
public struct ProcStatus: Sendable, Equatable {
    /// VmRSS in bytes; nil for kernel threads and zombies, which have no mm.
    public var vmRSSBytes: UInt64?
    public var threads: Int64?
    public init(vmRSSBytes: UInt64?, threads: Int64?) { self.vmRSSBytes = vmRSSBytes; self.threads = threads }
}

/// TCP states as /proc/net/tcp prints them (include/net/tcp_states.h).
public enum TCPState: UInt8, Sendable {
    case established = 0x01, synSent, synReceived, finWait1, finWait2, timeWait, close, closeWait, lastAck
    case listen = 0x0A
    case closing = 0x0B
    case newSynReceived = 0x0C
}

/// An address from /proc/net/tcp{,6}, kept as the kernel prints it: 32-bit words in host byte order.
/// Equality is all matching needs; `description` decodes it.
public struct TCPAddress: Sendable, Hashable, CustomStringConvertible {
    public var isIPv6: Bool
    /// The four 32-bit words as printed (IPv4 uses word 0 only).
    public var words: (UInt32, UInt32, UInt32, UInt32)

    public init(isIPv6: Bool, words: (UInt32, UInt32, UInt32, UInt32)) {
        self.isIPv6 = isIPv6
        self.words = words
    }

    public static func == (a: TCPAddress, b: TCPAddress) -> Bool {
        a.isIPv6 == b.isIPv6 && a.words.0 == b.words.0 && a.words.1 == b.words.1
            && a.words.2 == b.words.2 && a.words.3 == b.words.3
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(isIPv6)
        hasher.combine(words.0); hasher.combine(words.1); hasher.combine(words.2); hasher.combine(words.3)
    }

    /// 0.0.0.0 or :: (a listener bound to every address).
    public var isWildcard: Bool {
        isIPv6 ? (words.0 | words.1 | words.2 | words.3) == 0 : words.0 == 0
    }

    /// Network-order bytes: the kernel prints each 32-bit word of the in-memory address with %08X,
    /// so on a little-endian host (all this agent targets) each word's bytes come out reversed.
    public var bytes: [UInt8] {
        let list = isIPv6 ? [words.0, words.1, words.2, words.3] : [words.0]
        return list.flatMap { w in withUnsafeBytes(of: w.littleEndian) { Array($0) } }
    }

    public var description: String {
        let b = bytes
        if !isIPv6 { return b.map(String.init).joined(separator: ".") }
        var groups: [String] = []
        for i in stride(from: 0, to: 16, by: 2) { groups.append(String(UInt16(b[i]) << 8 | UInt16(b[i + 1]), radix: 16)) }
        return groups.joined(separator: ":")
    }
}

/// One socket line of /proc/net/tcp or /proc/net/tcp6.
public struct TCPSocketEntry: Sendable, Equatable {
    public var localAddress: TCPAddress
    public var localPort: UInt16
    public var remoteAddress: TCPAddress
    public var remotePort: UInt16
    /// Raw state byte; `TCPState(rawValue:)` names it.
    public var state: UInt8
    /// The socket's inode: what /proc/PID/fd/N links to as `socket:[INODE]`. 0 for sockets no
    /// process holds yet (connections waiting in a listener's accept queue).
    public var inode: UInt64

    public init(localAddress: TCPAddress, localPort: UInt16, remoteAddress: TCPAddress, remotePort: UInt16,
                state: UInt8, inode: UInt64) {
        self.localAddress = localAddress; self.localPort = localPort
        self.remoteAddress = remoteAddress; self.remotePort = remotePort
        self.state = state; self.inode = inode
    }
}

/// One line of /proc/PID/cgroup: `hierarchy-ID:controller-list:path`. v2 has ID 0 and no controllers.
public struct CgroupMembership: Sendable, Equatable {
    public var hierarchyID: Int
    public var controllers: [String]
    public var path: String
    public init(hierarchyID: Int, controllers: [String], path: String) {
        self.hierarchyID = hierarchyID; self.controllers = controllers; self.path = path
    }
    public var isUnified: Bool { hierarchyID == 0 && controllers.isEmpty }
}

/// A cgroup filesystem mount from /proc/self/mountinfo.
public struct CgroupMount: Sendable, Equatable {
    /// The cgroup path that is mounted here (not "/" inside containers with a private cgroup view).
    public var root: String
    public var mountPoint: String
    public var isV2: Bool
    /// v1 controllers from the super options (e.g. ["cpu", "cpuacct"]); empty for v2.
    public var controllers: [String]
    public init(root: String, mountPoint: String, isV2: Bool, controllers: [String]) {
        self.root = root; self.mountPoint = mountPoint; self.isV2 = isV2; self.controllers = controllers
    }
}

/// A CPU quota: `quota` microseconds of CPU per `period` microseconds.
public struct CPUQuota: Sendable, Equatable {
    public var quotaMicros: UInt64
    public var periodMicros: UInt64
    public init(quotaMicros: UInt64, periodMicros: UInt64) { self.quotaMicros = quotaMicros; self.periodMicros = periodMicros }
    public var cores: Double { Double(quotaMicros) / Double(periodMicros) }
}

public enum ProcParse {
    // MARK: /proc/PID/stat

    /// Parses /proc/PID/stat. comm is in parentheses and may contain anything, spaces and ')' included,
    /// so the fields are read after the LAST ')'.
    public static func stat(_ text: String) -> ProcStat? { withBytes(text) { stat(bytes: $0) } }

    public static func stat(bytes: UnsafeBufferPointer<UInt8>) -> ProcStat? {
        guard let open = bytes.firstIndex(of: 0x28), let close = bytes.lastIndex(of: 0x29), open < close else { return nil }
        var s = ByteScanner(bytes)
        guard let pid = s.signed(), s.index <= open else { return nil }
        let comm = s.string(open + 1..<close)
        guard var fields = statFields(bytes, afterParen: close) else { return nil }
        fields.pid = Int32(truncatingIfNeeded: pid)
        fields.comm = comm
        return fields
    }

    /// The hot path: everything but comm (no String made).
    @usableFromInline
    static func statFields(_ bytes: UnsafeBufferPointer<UInt8>, afterParen close: Int? = nil) -> ProcStat? {
        guard let close = close ?? bytes.lastIndex(of: 0x29) else { return nil }
        var s = ByteScanner(bytes, from: close + 1)
        s.skipWhitespace()
        guard !s.atEnd else { return nil }
        let state = bytes[s.index]
        s.index += 1
        // Fields 4..24 of proc(5), numbered from 1 with pid=1, comm=2, state=3.
        guard let ppid = s.signed(), let pgrp = s.signed() else { return nil }
        for _ in 6...13 { s.skipField() }  // session tty_nr tpgid flags minflt cminflt majflt cmajflt
        guard let utime = s.signed(), let stime = s.signed(), let cutime = s.signed(), let cstime = s.signed() else { return nil }
        s.skipField(); s.skipField()  // priority nice
        guard let threads = s.signed() else { return nil }
        s.skipField()  // itrealvalue
        guard let start = s.signed(), let vsize = s.signed(), let rss = s.signed() else { return nil }
        return ProcStat(
            pid: 0, comm: "", state: state, ppid: Int32(truncatingIfNeeded: ppid), pgrp: Int32(truncatingIfNeeded: pgrp),
            utime: UInt64(max(0, utime)), stime: UInt64(max(0, stime)),
            cutime: UInt64(max(0, cutime)), cstime: UInt64(max(0, cstime)),
            numThreads: threads, startTime: UInt64(max(0, start)), vsize: UInt64(max(0, vsize)), rssPages: rss)
    }

    // MARK: /proc/PID/statm, /proc/PID/status, /proc/PID/io, /proc/meminfo, /proc/stat

    /// The resident pages of /proc/PID/statm (`size resident shared text lib data dt`). Unlike the rss
    /// field of /proc/PID/stat, which reads the kernel's per-CPU counters approximately (Linux 6.2+; off
    /// by 10% for small processes here), statm sums them exactly, as VmRSS does.
    public static func statmResidentPages(_ text: String) -> UInt64? { withBytes(text) { statmResidentPages(bytes: $0) } }

    public static func statmResidentPages(bytes: UnsafeBufferPointer<UInt8>) -> UInt64? {
        var s = ByteScanner(bytes)
        guard s.unsigned() != nil else { return nil }
        return s.unsigned()
    }

    public static func status(_ text: String) -> ProcStatus {
        withBytes(text) { b in
            ProcStatus(vmRSSBytes: keyedUnsigned(b, key: "VmRSS:").map { $0 * 1024 },
                       threads: keyedUnsigned(b, key: "Threads:").map { Int64($0) })
        }
    }

    public static func io(_ text: String) -> ProcIO? { withBytes(text) { io(bytes: $0) } }

    public static func io(bytes: UnsafeBufferPointer<UInt8>) -> ProcIO? {
        guard let rchar = keyedUnsigned(bytes, key: "rchar:"), let wchar = keyedUnsigned(bytes, key: "wchar:"),
              let read = keyedUnsigned(bytes, key: "read_bytes:"), let write = keyedUnsigned(bytes, key: "write_bytes:")
        else { return nil }
        return ProcIO(rchar: rchar, wchar: wchar, readBytes: read, writeBytes: write)
    }

    /// /proc/PID/schedstat and /proc/PID/task/TID/schedstat: `run-ns run-delay-ns timeslices` (the kernel's
    /// sched_info, CONFIG_SCHED_INFO; proc_pid_schedstat prints the one task's, not its thread group's).
    public static func schedstat(_ text: String) -> ProcSchedstat? { withBytes(text) { schedstat(bytes: $0) } }

    public static func schedstat(bytes: UnsafeBufferPointer<UInt8>) -> ProcSchedstat? {
        var s = ByteScanner(bytes)
        guard let run = s.unsigned(), let delay = s.unsigned(), let slices = s.unsigned() else { return nil }
        return ProcSchedstat(runNanoseconds: run, runDelayNanoseconds: delay, timeslices: slices)
    }

    /// MemTotal from /proc/meminfo, in bytes.
    public static func memTotalBytes(_ text: String) -> UInt64? {
        withBytes(text) { keyedUnsigned($0, key: "MemTotal:").map { $0 * 1024 } }
    }

    /// btime from /proc/stat: the boot time in seconds since the epoch.
    public static func bootTime(_ text: String) -> UInt64? { withBytes(text) { keyedUnsigned($0, key: "btime ") } }

    // MARK: /proc/net/tcp and /proc/net/tcp6

    /// Calls `body` with every socket line; the header line and malformed lines are skipped.
    public static func tcpSockets(bytes: UnsafeBufferPointer<UInt8>, _ body: (TCPSocketEntry) -> Void) {
        var s = ByteScanner(bytes)
        s.skipLine()  // header
        while !s.atEnd {
            let lineStart = s.index
            if let entry = tcpLine(&s) { body(entry) }
            s.index = max(s.index, lineStart)
            s.skipLine()
        }
    }

    public static func tcpSockets(_ text: String) -> [TCPSocketEntry] {
        var result: [TCPSocketEntry] = []
        withBytes(text) { tcpSockets(bytes: $0) { result.append($0) } }
        return result
    }

    /// `  sl: LOCAL:PORT REMOTE:PORT st tx:rx tr:when retrnsmt uid timeout inode ...`
    static func tcpLine(_ s: inout ByteScanner) -> TCPSocketEntry? {
        guard s.unsigned() != nil, s.expect(0x3A) else { return nil }  // "sl:"
        s.skipBlanks()
        guard let (local, localPort) = tcpEndpoint(&s) else { return nil }
        s.skipBlanks()
        guard let (remote, remotePort) = tcpEndpoint(&s) else { return nil }
        s.skipBlanks()
        guard let state = s.hex(), state <= 0xFF else { return nil }
        s.skipBlanks(); s.skipField(); s.skipField(); s.skipField()  // tx:rx tr:when retrnsmt
        guard s.unsigned() != nil, s.unsigned() != nil, let inode = s.unsigned() else { return nil }  // uid timeout inode
        return TCPSocketEntry(localAddress: local, localPort: localPort, remoteAddress: remote, remotePort: remotePort,
                              state: UInt8(state), inode: inode)
    }

    /// `0100007F:1F90` (IPv4: 8 hex digits) or 32 hex digits (IPv6), colon, 4-digit port.
    static func tcpEndpoint(_ s: inout ByteScanner) -> (TCPAddress, UInt16)? {
        let start = s.index
        while !s.atEnd, hexValue(s.bytes[s.index]) != nil { s.index += 1 }
        let length = s.index - start
        guard length == 8 || length == 32, s.expect(0x3A) else { return nil }
        var words: (UInt32, UInt32, UInt32, UInt32) = (0, 0, 0, 0)
        var w = ByteScanner(s.bytes, from: start)
        func word(_ sc: inout ByteScanner) -> UInt32 {
            var v: UInt32 = 0
            for _ in 0..<8 { v = v << 4 | UInt32(hexValue(sc.bytes[sc.index])!); sc.index += 1 }
            return v
        }
        words.0 = word(&w)
        if length == 32 { words.1 = word(&w); words.2 = word(&w); words.3 = word(&w) }
        guard let port = s.hex(), port <= 0xFFFF else { return nil }
        return (TCPAddress(isIPv6: length == 32, words: words), UInt16(port))
    }

    // MARK: cgroups

    /// /proc/PID/cgroup: one membership per line; v1 lines name controllers, the v2 line is `0::/path`.
    public static func cgroupMemberships(_ text: String) -> [CgroupMembership] {
        text.split(separator: "\n").compactMap { line in
            let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
            guard parts.count == 3, let id = Int(parts[0]) else { return nil }
            let controllers = parts[1].split(separator: ",").map(String.init)
            return CgroupMembership(hierarchyID: id, controllers: controllers, path: String(parts[2]))
        }
    }

    /// The cgroup and cgroup2 mounts in /proc/PID/mountinfo:
    /// `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS`.
    public static func cgroupMounts(_ text: String) -> [CgroupMount] {
        text.split(separator: "\n").compactMap { line in
            let fields = line.split(separator: " ")
            guard let dash = fields.firstIndex(of: "-"), dash >= 6, fields.count >= dash + 4 else { return nil }
            let fsType = fields[dash + 1]
            guard fsType == "cgroup" || fsType == "cgroup2" else { return nil }
            let isV2 = fsType == "cgroup2"
            let known: Set<Substring> = ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids",
                                         "net_cls", "net_prio", "perf_event", "hugetlb", "rdma", "misc"]
            let controllers = isV2 ? [] : fields[dash + 3].split(separator: ",").filter { known.contains($0) }.map(String.init)
            return CgroupMount(root: unescapeMountinfo(fields[3]), mountPoint: unescapeMountinfo(fields[4]),
                               isV2: isV2, controllers: controllers)
        }
    }

    /// mountinfo escapes space, tab, newline and backslash as \040, \011, \012, \134.
    static func unescapeMountinfo(_ field: Substring) -> String {
        guard field.contains("\\") else { return String(field) }
        var out: [UInt8] = []
        let b = Array(field.utf8)
        var i = 0
        while i < b.count {
            if b[i] == 0x5C, i + 3 < b.count, let v = UInt8(String(decoding: b[i + 1...i + 3], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else {
                out.append(b[i]); i += 1
            }
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// cgroup v2 cpu.max: `max 100000` (no quota) or `QUOTA PERIOD`.
    public static func cgroupV2CPUMax(_ text: String) -> CPUQuota? {
        let parts = text.split(whereSeparator: { $0 == " " || $0 == "\n" })
        guard parts.count >= 2, parts[0] != "max", let quota = UInt64(parts[0]), let period = UInt64(parts[1]),
              period > 0 else { return nil }
        return CPUQuota(quotaMicros: quota, periodMicros: period)
    }

    /// cgroup v1 cpu.cfs_quota_us (-1 when unlimited) and cpu.cfs_period_us.
    public static func cgroupV1CPUQuota(quota: String, period: String) -> CPUQuota? {
        guard let q = Int64(trimmed(quota)), q > 0, let p = UInt64(trimmed(period)), p > 0 else { return nil }
        return CPUQuota(quotaMicros: UInt64(q), periodMicros: p)
    }

    /// Limits above this are "no limit": v1 reports PAGE_COUNTER_MAX rounded to pages (9223372036854771712).
    public static let unlimitedThreshold: UInt64 = 1 << 62

    /// cgroup v2 memory.max (`max` or bytes) and v1 memory.limit_in_bytes; nil when unlimited.
    public static func cgroupMemoryLimit(_ text: String) -> UInt64? {
        let t = trimmed(text)
        guard t != "max", let v = UInt64(t), v < unlimitedThreshold else { return nil }
        return v
    }

    /// memory.current (v2) or memory.usage_in_bytes (v1).
    public static func cgroupMemoryUsage(_ text: String) -> UInt64? { UInt64(trimmed(text)) }

    /// cgroup v2 cpu.stat usage_usec, in microseconds.
    public static func cgroupV2CPUUsageMicros(_ text: String) -> UInt64? {
        withBytes(text) { keyedUnsigned($0, key: "usage_usec ") }
    }

    static func trimmed(_ text: String) -> Substring {
        text.drop(while: { $0 == " " || $0 == "\n" }).prefix(while: { $0 != " " && $0 != "\n" })
    }
}
