// The sandbox's pure parts: where its cgroups go on each layout, what is written into them, the bubblewrap
// command line, and the seccomp program (compiled by the real libseccomp).
import ProcSampling
import Testing
@testable import Sandbox

struct CgroupPlanTests {
    static let limits = ResourceLimits(cpuCores: 0.5, memoryBytes: 128 << 20, pids: 64)

    /// This machine's layout: v1 cpu, memory and pids next to an empty v2 hierarchy.
    @Test func hybridLayoutUsesTheV1Controllers() throws {
        let memberships = ProcParse.cgroupMemberships("8:pids:/\n4:memory:/process_api/abc\n1:cpu:/\n0::/\n")
        let mounts = ProcParse.cgroupMounts("""
            32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
            35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
            36 31 0:33 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw

            """)
        let plan = try CgroupPlan.locate(name: "coderunner-d-i", memberships: memberships, mounts: mounts, v2Available: []).get()
        #expect(plan.directories.map(\.path) == [
            "/sys/fs/cgroup/cpu/coderunner-d-i", "/sys/fs/cgroup/memory/process_api/abc/coderunner-d-i",
            "/sys/fs/cgroup/pids/coderunner-d-i"])
        #expect(plan.v2Parent == nil)
        #expect(plan.membershipDirectory == "/sys/fs/cgroup/pids/coderunner-d-i")
        let writes = plan.limitWrites(Self.limits).map { "\($0.file)=\($0.value)" }
        #expect(writes == [
            "/sys/fs/cgroup/cpu/coderunner-d-i/cpu.cfs_period_us=100000",
            "/sys/fs/cgroup/cpu/coderunner-d-i/cpu.cfs_quota_us=50000",
            "/sys/fs/cgroup/memory/process_api/abc/coderunner-d-i/memory.limit_in_bytes=134217728",
            "/sys/fs/cgroup/pids/coderunner-d-i/pids.max=64"])
        #expect(plan.samplerDirectories.v1Memory == ["/sys/fs/cgroup/memory/process_api/abc/coderunner-d-i"])
    }

    /// A systemd host on pure v2 (Debian 12's default): one directory below the agent's own cgroup.
    @Test func pureV2LayoutUsesOneDirectory() throws {
        let plan = try CgroupPlan.locate(
            name: "coderunner-x", memberships: ProcParse.cgroupMemberships("0::/system.slice/coderunner-agent@a.service\n"),
            mounts: ProcParse.cgroupMounts("30 24 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"),
            v2Available: ["cpuset", "cpu", "io", "memory", "pids"]).get()
        #expect(plan.directories == [CgroupPlan.Directory(
            path: "/sys/fs/cgroup/system.slice/coderunner-agent@a.service/coderunner-x", isV2: true,
            controllers: [.cpu, .memory, .pids])])
        #expect(plan.v2Parent == "/sys/fs/cgroup/system.slice/coderunner-agent@a.service")
        let writes = plan.limitWrites(Self.limits).map { "\($0.file.split(separator: "/").last!)=\($0.value)" }
        #expect(writes == ["cpu.max=50000 100000", "memory.max=134217728", "pids.max=64"])
        #expect(plan.optionalWrites(Self.limits).map(\.value) == ["0"])  // memory.swap.max
    }

    /// A controller on v2 beside others on v1 (checked for real on this machine with the pids hierarchy unmounted
    /// and the agent in a child v2 cgroup: it moved itself into `agent`, and pids.max held the app).
    @Test func mixedLayoutPutsEachControllerWhereItIs() throws {
        let plan = try CgroupPlan.locate(
            name: "n", memberships: ProcParse.cgroupMemberships("4:memory:/\n1:cpu:/\n0::/test-agent\n"),
            mounts: ProcParse.cgroupMounts("""
                32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu
                35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
                41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw

                """), v2Available: ["pids"]).get()
        #expect(plan.directories.map(\.path) == ["/sys/fs/cgroup/cpu/n", "/sys/fs/cgroup/memory/n", "/sys/fs/cgroup/unified/test-agent/n"])
        #expect(plan.v2Parent == "/sys/fs/cgroup/unified/test-agent")
        #expect(plan.membershipDirectory == "/sys/fs/cgroup/unified/test-agent/n")
    }

    /// cpu and cpuacct mounted together (many v1 hosts): one directory carries the cpu controller.
    @Test func coMountedV1Controllers() throws {
        let plan = try CgroupPlan.locate(
            name: "n", memberships: ProcParse.cgroupMemberships("3:cpu,cpuacct:/a\n2:memory:/a\n1:pids:/a\n"),
            mounts: ProcParse.cgroupMounts("""
                32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
                35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
                36 31 0:33 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids

                """), v2Available: []).get()
        #expect(plan.directories.map(\.path) == ["/sys/fs/cgroup/cpu,cpuacct/a/n", "/sys/fs/cgroup/memory/a/n", "/sys/fs/cgroup/pids/a/n"])
    }

    /// A controller nobody offers is an error that names it: limits are never silently dropped.
    @Test func missingControllerIsAnError() {
        let result = CgroupPlan.locate(
            name: "n", memberships: ProcParse.cgroupMemberships("0::/\n"),
            mounts: ProcParse.cgroupMounts("41 31 0:38 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n"), v2Available: ["memory"])
        #expect(throws: MissingControllers(controllers: [.cpu, .pids])) { try result.get() }
    }

    @Test(arguments: [(0.001, 1000), (0.5, 50_000), (1.0, 100_000), (2.25, 225_000)])
    func cpuQuota(cores: Double, micros: Int) {
        #expect(ResourceLimits(cpuCores: cores, memoryBytes: 1, pids: 8).cpuQuotaMicroseconds == micros)
    }
}

struct BubblewrapCommandTests {
    @Test func commandLine() {
        let spec = SandboxSpec(uid: 900_001, appDirectory: "/var/lib/x/app", readOnlyPaths: ["/tmp/code"], hostname: "i-1",
                               limits: ResourceLimits(cpuCores: 1, memoryBytes: 1 << 28, pids: 64))
        let argv = BubblewrapCommand.arguments(spec, command: ["/bin/sh", "-c", "echo hi"], seccompDescriptor: 3,
                                               hostRoot: ["/bin": .symlink("usr/bin"), "/lib64": .directory])
        let text = argv.joined(separator: " ")
        #expect(argv.first == "/usr/bin/bwrap")
        #expect(text.contains("--die-with-parent --new-session --unshare-pid --unshare-ipc --unshare-uts --unshare-cgroup-try --hostname i-1"))
        #expect(text.contains("--ro-bind /usr /usr --symlink usr/bin /bin --ro-bind /lib64 /lib64 --ro-bind-try /etc/passwd"))
        #expect(!text.contains("/etc/coderunner") && !text.contains("--ro-bind-try /etc /etc"))
        // /tmp first, so that the read-only code below /tmp is mounted over it and stays visible.
        #expect(text.contains("--perms 1777 --tmpfs /dev/shm --perms 1777 --tmpfs /tmp --perms 0755 --dir /tmp --ro-bind /tmp/code /tmp/code --bind /var/lib/x/app /app --chdir /app --seccomp 3 --"))
        #expect(text.hasSuffix("-- /usr/bin/setpriv --reuid 900001 --regid 900001 --clear-groups --inh-caps=-all --bounding-set=-all -- /bin/sh -c echo hi"))
        #expect(!argv.contains("--unshare-net"))  // the network stays the host's (docs/security.md)
    }
}

struct SeccompFilterTests {
    /// libseccomp compiles the list into a classic BPF program (8-byte instructions) for this architecture.
    @Test func compiles() throws {
        let program = try SeccompFilter.compile()
        #expect(program.count % 8 == 0)
        #expect(program.count / 8 > SeccompFilter.deniedCalls.count / 2)
    }
}
