// The pure parsers on text captured from this machine's /proc and cgroup files (Linux 6.18, Debian 12,
// hybrid cgroup v1 layout) and from cgroup v2 hosts.
import Testing
@testable import ProcSampling

struct ProcStatParserTests {
    struct Case: Sendable, CustomTestStringConvertible {
        let text: String
        let expected: ProcStat
        var testDescription: String { expected.comm }
    }

    static let cases: [Case] = [
        // `cat /proc/self/stat` on this machine.
        Case(
            text: "16275 (cat) R 16270 16270 8897 0 -1 4194304 100 0 0 0 0 0 0 0 20 0 1 0 1223512 3133440 390 18446744073709551615 94285369798656 94285369818537 140729259036960 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 94285369834544 94285369836160 94286335516672 140729259043337 140729259043357 140729259043357 140729259044843 0\n",
            expected: ProcStat(pid: 16275, comm: "cat", state: UInt8(ascii: "R"), ppid: 16270, pgrp: 16270, utime: 0, stime: 0,
                               cutime: 0, cstime: 0, numThreads: 1, startTime: 1_223_512, vsize: 3_133_440, rssPages: 390)),
        // comm holding ") " and "(": only the last ')' ends it.
        Case(
            text: "4242 (a) b (c) S 1 4242 4242 0 -1 4194560 2107 33 0 0 157 42 12 7 20 0 3 0 987654 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n",
            expected: ProcStat(pid: 4242, comm: "a) b (c", state: UInt8(ascii: "S"), ppid: 1, pgrp: 4242, utime: 157, stime: 42,
                               cutime: 12, cstime: 7, numThreads: 3, startTime: 987_654, vsize: 123_456_789, rssPages: 2048)),
        // A zombie: comm with spaces and digits, kernel-thread-like zero memory.
        Case(
            text: "77 (sleep 1) 2) Z 76 70 70 0 -1 4227084 0 0 0 0 1 2 0 0 20 0 1 0 5000 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 9",
            expected: ProcStat(pid: 77, comm: "sleep 1) 2", state: UInt8(ascii: "Z"), ppid: 76, pgrp: 70, utime: 1, stime: 2,
                               cutime: 0, cstime: 0, numThreads: 1, startTime: 5000, vsize: 0, rssPages: 0)),
        // An empty comm.
        Case(
            text: "9 () I 2 0 0 0 -1 69238880 0 0 0 0 0 0 0 0 0 -20 1 0 3 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0",
            expected: ProcStat(pid: 9, comm: "", state: UInt8(ascii: "I"), ppid: 2, pgrp: 0, utime: 0, stime: 0,
                               cutime: 0, cstime: 0, numThreads: 1, startTime: 3, vsize: 0, rssPages: 0)),
    ]

    @Test(arguments: cases)
    func parsesStat(_ c: Case) {
        #expect(ProcParse.stat(c.text) == c.expected)
    }

    @Test(arguments: ["", "12", "12 (x", "12 (x) R 1 2", "12 (x) R 1 2 3 4 5 6 7 8 9 10 11 notanumber"])
    func rejectsTruncatedStat(_ text: String) {
        #expect(ProcParse.stat(text) == nil)
    }
}

struct ProcStatusIOParserTests {
    static let status = """
        Name:\tswift-frontend
        Umask:\t0022
        State:\tR (running)
        Tgid:\t16275
        Pid:\t16275
        PPid:\t16270
        VmPeak:\t  312116 kB
        VmSize:\t  312116 kB
        VmHWM:\t   98300 kB
        VmRSS:\t   98204 kB
        RssAnon:\t   60112 kB
        RssFile:\t   38092 kB
        RssShmem:\t       0 kB
        Threads:\t7
        SigQ:\t0/95755

        """

    @Test func parsesStatus() {
        #expect(ProcParse.status(Self.status) == ProcStatus(vmRSSBytes: 98204 * 1024, threads: 7))
    }

    @Test func kernelThreadHasNoRSS() {
        let text = "Name:\tkworker/0:1\nState:\tI (idle)\nThreads:\t1\nSigQ:\t0/95755\n"
        #expect(ProcParse.status(text) == ProcStatus(vmRSSBytes: nil, threads: 1))
    }

    @Test func parsesStatm() {
        #expect(ProcParse.statmResidentPages("3061 469 422 5 0 87 0\n") == 469)
        #expect(ProcParse.statmResidentPages("3061\n") == nil)
    }

    @Test func parsesIO() {
        let text = "rchar: 6976\nwchar: 120\nsyscr: 10\nsyscw: 2\nread_bytes: 8192\nwrite_bytes: 4096\ncancelled_write_bytes: 0\n"
        #expect(ProcParse.io(text) == ProcIO(rchar: 6976, wchar: 120, readBytes: 8192, writeBytes: 4096))
        // cancelled_write_bytes must not be mistaken for write_bytes: keys match at line starts only.
        let reordered = "cancelled_write_bytes: 99\nrchar: 1\nwchar: 2\nread_bytes: 3\nwrite_bytes: 4\n"
        #expect(ProcParse.io(reordered) == ProcIO(rchar: 1, wchar: 2, readBytes: 3, writeBytes: 4))
        #expect(ProcParse.io("rchar: 1\n") == nil)
    }

    @Test func parsesMemTotalAndBootTime() {
        #expect(ProcParse.memTotalBytes("MemTotal:       24684084 kB\nMemFree:        20000000 kB\n") == 24_684_084 * 1024)
        let stat = "cpu  2255 34 2290 22625563 6290 127 456 0 0 0\ncpu0 1132 34 1441 11311718 3675 127 438 0 0 0\nintr 114930548 113199788 3\nctxt 1990473\nbtime 1795737785\nprocesses 2915\n"
        #expect(ProcParse.bootTime(stat) == 1_795_737_785)
        #expect(ProcParse.bootTime("cpu 1 2 3\n") == nil)
    }
}

struct TCPTableParserTests {
    // /proc/net/tcp with a listener on 0.0.0.0:2024, one on 127.0.0.1:8080, one established
    // connection to it (accepted, inode 51234) and one waiting in the accept queue (inode 0).
    static let tcp = """
          sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1054 1 00000000f464acf1 100 0 0 10 0
           1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 50001 1 0000000000000000 100 0 0 10 0
           2: 0100007F:1F90 0100007F:D431 01 00000000:00000000 00:00000000 00000000     0        0 51234 1 0000000000000000 20 4 30 10 -1
           3: 0100007F:1F90 0100007F:D432 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0000000000000000 20 4 30 10 -1
           4: 0100007F:D431 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 51233 1 0000000000000000 20 4 30 10 -1

        """

    // /proc/net/tcp6: a dual-stack listener on [::]:9464 and an IPv4 client seen as ::ffff:127.0.0.1.
    static let tcp6 = """
          sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
           0: 00000000000000000000000000000000:24F8 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 60001 1 0000000000000000 100 0 0 10 0
           1: 0000000000000000FFFF00000100007F:24F8 0000000000000000FFFF00000100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 60002 1 0000000000000000 20 4 30 10 -1
           2: 00000000000000000000000001000000:0016 00000000000000000000000001000000:E001 06 00000000:00000000 03:00000F9F 00000000     0        0 0 3 0000000000000000

        """

    @Test func parsesIPv4() throws {
        let entries = ProcParse.tcpSockets(Self.tcp)
        try #require(entries.count == 5)
        #expect(entries[0].localAddress.description == "0.0.0.0")
        #expect(entries[0].localAddress.isWildcard)
        #expect(entries[0].localPort == 2024)
        #expect(entries[0].state == TCPState.listen.rawValue)
        #expect(entries[0].inode == 1054)
        #expect(entries[2].localAddress.description == "127.0.0.1")
        #expect(entries[2].localPort == 8080)
        #expect(entries[2].remotePort == 0xD431)
        #expect(entries[2].state == TCPState.established.rawValue)
        #expect(entries[2].inode == 51234)
        #expect(entries[3].inode == 0)
        #expect(entries.filter { $0.state == TCPState.established.rawValue }.count == 3)
    }

    @Test func parsesIPv6() throws {
        let entries = ProcParse.tcpSockets(Self.tcp6)
        try #require(entries.count == 3)
        #expect(entries[0].localAddress.isIPv6)
        #expect(entries[0].localAddress.isWildcard)
        #expect(entries[0].localAddress.description == "0:0:0:0:0:0:0:0")
        #expect(entries[0].localPort == 9464)
        #expect(entries[1].localAddress.description == "0:0:0:0:0:ffff:7f00:1")
        #expect(entries[1].remotePort == 40000)
        #expect(entries[2].localAddress.description == "0:0:0:0:0:0:0:1")
        #expect(TCPState(rawValue: entries[2].state) == .timeWait)
    }

    @Test func skipsMalformedLines() {
        let text = "  sl  local_address\n   0: 0100007F:1F90 garbage\n   1: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7 1\n"
        let entries = ProcParse.tcpSockets(text)
        #expect(entries.map(\.inode) == [7])
    }
}

struct CgroupParserTests {
    static let hybridCgroup = """
        9:name=systemd:/
        8:pids:/
        7:blkio:/
        4:memory:/process_api/99abeb231e050f49c522c1710f27afff
        2:cpuacct:/
        1:cpu:/
        0::/

        """

    static let hybridMountinfo = """
        31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
        32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
        33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
        35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
        40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
        41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw

        """

    @Test func parsesHybridMemberships() {
        let m = ProcParse.cgroupMemberships(Self.hybridCgroup)
        #expect(m.count == 7)
        #expect(m[0] == CgroupMembership(hierarchyID: 9, controllers: ["name=systemd"], path: "/"))
        #expect(m[3] == CgroupMembership(hierarchyID: 4, controllers: ["memory"], path: "/process_api/99abeb231e050f49c522c1710f27afff"))
        #expect(m[6].isUnified)
    }

    @Test func locatesHybridDirectories() {
        let dirs = CgroupDirectories.locate(
            memberships: ProcParse.cgroupMemberships(Self.hybridCgroup), mounts: ProcParse.cgroupMounts(Self.hybridMountinfo))
        #expect(dirs.v1CPU == ["/sys/fs/cgroup/cpu"])
        #expect(dirs.v1Memory == ["/sys/fs/cgroup/memory/process_api/99abeb231e050f49c522c1710f27afff",
                                  "/sys/fs/cgroup/memory/process_api", "/sys/fs/cgroup/memory"])
        #expect(dirs.v2 == ["/sys/fs/cgroup/unified"])
    }

    @Test func locatesV2DirectoriesWithCombinedV1Controllers() {
        // A v2-only host (systemd unit), then a v1 host mounting cpu,cpuacct together inside a container
        // whose mount root is its own cgroup.
        let v2 = CgroupDirectories.locate(
            memberships: ProcParse.cgroupMemberships("0::/system.slice/coderunner-agent.service\n"),
            mounts: ProcParse.cgroupMounts("30 24 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"))
        #expect(v2 == CgroupDirectories(v1CPU: [], v1Memory: [], v2: [
            "/sys/fs/cgroup/system.slice/coderunner-agent.service", "/sys/fs/cgroup/system.slice", "/sys/fs/cgroup"]))

        let v1 = CgroupDirectories.locate(
            memberships: ProcParse.cgroupMemberships("3:cpu,cpuacct:/docker/abc\n2:memory:/docker/abc\n"),
            mounts: ProcParse.cgroupMounts("""
                700 690 0:30 /docker/abc /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup rw,cpu,cpuacct
                701 690 0:32 /docker/abc /sys/fs/cgroup/memory ro,nosuid - cgroup cgroup rw,memory

                """))
        #expect(v1.v1CPU == ["/sys/fs/cgroup/cpu,cpuacct"])
        #expect(v1.v1Memory == ["/sys/fs/cgroup/memory"])
        #expect(v1.v2 == [])
    }

    @Test func unescapesMountPoints() {
        let mounts = ProcParse.cgroupMounts("41 31 0:38 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n")
        #expect(mounts == [CgroupMount(root: "/", mountPoint: "/sys/fs/my cgroup", isV2: true, controllers: [])])
    }

    @Test func parsesCPULimits() {
        #expect(ProcParse.cgroupV2CPUMax("max 100000\n") == nil)
        #expect(ProcParse.cgroupV2CPUMax("150000 100000\n") == CPUQuota(quotaMicros: 150_000, periodMicros: 100_000))
        #expect(ProcParse.cgroupV2CPUMax("150000 100000\n")?.cores == 1.5)
        #expect(ProcParse.cgroupV1CPUQuota(quota: "-1\n", period: "100000\n") == nil)
        #expect(ProcParse.cgroupV1CPUQuota(quota: "50000\n", period: "100000\n")?.cores == 0.5)
        #expect(ProcParse.cgroupV1CPUQuota(quota: "50000\n", period: "0\n") == nil)
    }

    @Test func parsesMemoryFigures() {
        #expect(ProcParse.cgroupMemoryLimit("max\n") == nil)
        #expect(ProcParse.cgroupMemoryLimit("9223372036854771712\n") == nil)  // v1 "unlimited", as read here
        #expect(ProcParse.cgroupMemoryLimit("536870912\n") == 536_870_912)
        #expect(ProcParse.cgroupMemoryUsage("14245888\n") == 14_245_888)
        let cpuStat = "usage_usec 265428704\nuser_usec 194202057\nsystem_usec 71226647\nnice_usec 0\n"
        #expect(ProcParse.cgroupV2CPUUsageMicros(cpuStat) == 265_428_704)
    }
}

struct ResourceAllocationTests {
    @Test func cgroupBeatsFlagBeatsHost() {
        let gib: UInt64 = 1 << 30
        #expect(ResourceAllocation.resolve(cgroupCPUCores: 0.5, flagCPUCores: 2, onlineCPUs: 8,
                                           cgroupMemoryBytes: gib, flagMemoryBytes: 2 * gib, memTotalBytes: 16 * gib)
                == ResourceAllocation(cpuCores: 0.5, cpuSource: .cgroup, memoryBytes: gib, memorySource: .cgroup))
        #expect(ResourceAllocation.resolve(cgroupCPUCores: nil, flagCPUCores: 2, onlineCPUs: 8,
                                           cgroupMemoryBytes: nil, flagMemoryBytes: 2 * gib, memTotalBytes: 16 * gib)
                == ResourceAllocation(cpuCores: 2, cpuSource: .flag, memoryBytes: 2 * gib, memorySource: .flag))
        #expect(ResourceAllocation.resolve(cgroupCPUCores: nil, flagCPUCores: nil, onlineCPUs: 8,
                                           cgroupMemoryBytes: nil, flagMemoryBytes: nil, memTotalBytes: 16 * gib)
                == ResourceAllocation(cpuCores: 8, cpuSource: .host, memoryBytes: 16 * gib, memorySource: .host))
        // A cgroup limit above the machine's memory can never be reached: MemTotal binds.
        #expect(ResourceAllocation.resolve(cgroupCPUCores: nil, flagCPUCores: nil, onlineCPUs: 2,
                                           cgroupMemoryBytes: 64 * gib, flagMemoryBytes: nil, memTotalBytes: 16 * gib).memoryBytes == 16 * gib)
    }
}

struct InetDiagParserTests {
    /// One netlink message carrying an `inet_diag_msg`, laid out as linux/inet_diag.h defines it.
    static func message(family: UInt8, state: UInt8, localPort: UInt16, local: [UInt8], remotePort: UInt16,
                        remote: [UInt8], inode: UInt32) -> [UInt8] {
        var m = [UInt8](repeating: 0, count: 16 + 72)
        func put<T: FixedWidthInteger>(_ v: T, _ at: Int) { withUnsafeBytes(of: v) { for (i, b) in $0.enumerated() { m[at + i] = b } } }
        put(UInt32(m.count), 0); put(UInt16(20), 4); put(UInt16(2), 6); put(UInt32(7), 8)
        m[16] = family; m[17] = state
        put(localPort.bigEndian, 20); put(remotePort.bigEndian, 22)
        for (i, b) in local.enumerated() { m[24 + i] = b }
        for (i, b) in remote.enumerated() { m[40 + i] = b }
        put(inode, 16 + 68)
        return m
    }

    static let done: [UInt8] = [20, 0, 0, 0, 3, 0, 2, 0, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]

    @Test func parsesADumpLikeProcNetTCP() {
        let loopback6 = [UInt8](repeating: 0, count: 15) + [1]
        let datagram = Self.message(family: 2, state: 0x0A, localPort: 8080, local: [127, 0, 0, 1], remotePort: 0, remote: [0, 0, 0, 0], inode: 4242)
            + Self.message(family: 10, state: 0x01, localPort: 9464, local: loopback6, remotePort: 40000, remote: loopback6, inode: 99)
            + Self.done
        var entries: [TCPSocketEntry] = []
        let outcome = datagram.withUnsafeBytes { ProcParse.inetDiagMessages(bytes: $0) { entries.append($0) } }
        #expect(outcome == .done)
        #expect(entries.count == 2)
        #expect(entries[0].localAddress.description == "127.0.0.1")
        #expect(entries[0].localPort == 8080)
        #expect(entries[0].state == TCPState.listen.rawValue)
        #expect(entries[0].inode == 4242)
        #expect(entries[1].localAddress.description == "0:0:0:0:0:0:0:1")
        #expect(entries[1].remotePort == 40000)
        #expect(entries[1].state == TCPState.established.rawValue)
        // The same socket as /proc/net/tcp prints it compares equal.
        let fromProc = ProcParse.tcpSockets("  sl  local_address\n   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1\n")
        #expect(fromProc.first == entries[0])
    }

    @Test func reportsErrorsAndTruncation() {
        var error: [UInt8] = [36, 0, 0, 0, 2, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0] + [0xFF, 0xFF, 0xFF, 0xFF] + [UInt8](repeating: 0, count: 16)
        #expect(error.withUnsafeBytes { ProcParse.inetDiagMessages(bytes: $0) { _ in } } == .failed(-1))
        error[0] = 200  // longer than the datagram
        #expect(error.withUnsafeBytes { ProcParse.inetDiagMessages(bytes: $0) { _ in } } == .failed(0))
        let partial = Self.message(family: 2, state: 1, localPort: 1, local: [127, 0, 0, 1], remotePort: 2, remote: [127, 0, 0, 1], inode: 1)
        var count = 0
        #expect(partial.withUnsafeBytes { ProcParse.inetDiagMessages(bytes: $0) { _ in count += 1 } } == .more)
        #expect(count == 1)
    }
}
