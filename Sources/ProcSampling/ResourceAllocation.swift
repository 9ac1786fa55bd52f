// What the app may use: the denominators of the utilization percentages. Pure: the sampler reads
// the files, these functions decide.

/// Where a limit came from, in order of precedence.
public enum AllocationSource: String, Sendable, Codable {
    /// The cgroup's CPU quota or memory limit (the kernel enforces it).
    case cgroup
    /// --cpu-limit or --memory-limit.
    case flag
    /// The online CPUs or MemTotal.
    case host
}

public struct ResourceAllocation: Sendable, Equatable {
    public var cpuCores: Double
    public var cpuSource: AllocationSource
    public var memoryBytes: UInt64
    public var memorySource: AllocationSource

    public init(cpuCores: Double, cpuSource: AllocationSource, memoryBytes: UInt64, memorySource: AllocationSource) {
        self.cpuCores = cpuCores; self.cpuSource = cpuSource
        self.memoryBytes = memoryBytes; self.memorySource = memorySource
    }

    /// cgroup quota if set, else the flag, else the host. The cgroup wins over a flag because the
    /// kernel enforces it: a flag above it could never be reached.
    public static func resolve(cgroupCPUCores: Double?, flagCPUCores: Double?, onlineCPUs: Int,
                               cgroupMemoryBytes: UInt64?, flagMemoryBytes: UInt64?, memTotalBytes: UInt64) -> ResourceAllocation {
        let cpu: (Double, AllocationSource) =
            if let c = cgroupCPUCores, c > 0 { (c, .cgroup) }
            else if let f = flagCPUCores, f > 0 { (f, .flag) }
            else { (Double(max(1, onlineCPUs)), .host) }
        let memory: (UInt64, AllocationSource) =
            if let c = cgroupMemoryBytes, c > 0 { (min(c, memTotalBytes > 0 ? memTotalBytes : c), .cgroup) }
            else if let f = flagMemoryBytes, f > 0 { (f, .flag) }
            else { (max(1, memTotalBytes), .host) }
        return ResourceAllocation(cpuCores: cpu.0, cpuSource: cpu.1, memoryBytes: memory.0, memorySource: memory.1)
    }
}

/// The cgroup directories holding a process's limits, leaf first, then each ancestor up to the mount
/// (a limit on an ancestor binds too, so the smallest along the path applies).
public struct CgroupDirectories: Sendable, Equatable {
    /// v1 `cpu` controller directories (cpu.cfs_quota_us, cpu.cfs_period_us).
    public var v1CPU: [String]
    /// v1 `memory` controller directories (memory.limit_in_bytes, memory.usage_in_bytes).
    public var v1Memory: [String]
    /// The v2 unified hierarchy (cpu.max, memory.max, memory.current, cpu.stat).
    public var v2: [String]

    public init(v1CPU: [String], v1Memory: [String], v2: [String]) {
        self.v1CPU = v1CPU; self.v1Memory = v1Memory; self.v2 = v2
    }

    /// Joins /proc/self/cgroup with the cgroup mounts of /proc/self/mountinfo. Handles a pure v2
    /// machine, a pure v1 one and the hybrid layout (v1 controllers plus a v2 mount without them).
    public static func locate(memberships: [CgroupMembership], mounts: [CgroupMount]) -> CgroupDirectories {
        func chain(_ membership: CgroupMembership?, _ mount: CgroupMount?) -> [String] {
            guard let membership, let mount else { return [] }
            var relative = membership.path
            if mount.root != "/", relative.hasPrefix(mount.root) { relative = String(relative.dropFirst(mount.root.count)) }
            let components = relative.split(separator: "/").filter { $0 != "." && $0 != ".." }
            var result: [String] = []
            for depth in stride(from: components.count, through: 0, by: -1) {
                let suffix = components.prefix(depth).joined(separator: "/")
                result.append(suffix.isEmpty ? mount.mountPoint : mount.mountPoint + "/" + suffix)
            }
            return result
        }
        func v1(_ controller: String) -> [String] {
            chain(memberships.first { !$0.isUnified && $0.controllers.contains(controller) },
                  mounts.first { !$0.isV2 && $0.controllers.contains(controller) })
        }
        return CgroupDirectories(
            v1CPU: v1("cpu"), v1Memory: v1("memory"),
            v2: chain(memberships.first(where: \.isUnified), mounts.first(where: \.isV2)))
    }
}
