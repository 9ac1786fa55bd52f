// Where an instance's cgroups go and what is written into them. Pure: it takes what /proc/self/cgroup,
// /proc/self/mountinfo and the v2 cgroup.controllers file say, and returns paths and values; Cgroups.swift does
// the writing. The kernel's Documentation/admin-guide/cgroup-v1/{cpu,memory,pids}.rst and cgroup-v2.rst name
// the files.
public import ProcSampling

/// What the sandbox holds the app to.
public struct ResourceLimits: Sendable, Equatable {
    /// CPU time per period, in cores (1.5 = one and a half CPUs' worth of time).
    public var cpuCores: Double
    public var memoryBytes: UInt64
    /// Processes and threads at once (the sandbox's own two launcher processes count too).
    public var pids: Int

    public init(cpuCores: Double, memoryBytes: UInt64, pids: Int) {
        self.cpuCores = cpuCores; self.memoryBytes = memoryBytes; self.pids = pids
    }

    /// The CFS period: 100 ms, the kernel's default and what Docker and Kubernetes use.
    public static let cpuPeriodMicroseconds = 100_000
    public var cpuQuotaMicroseconds: Int { max(1000, Int((cpuCores * Double(Self.cpuPeriodMicroseconds)).rounded())) }
}

/// The cgroups of one sandbox: for each controller, the directory that enforces it.
public struct CgroupPlan: Sendable, Equatable {
    public enum Controller: String, Sendable, CaseIterable { case cpu, memory, pids }

    public struct Directory: Sendable, Equatable {
        public var path: String
        public var isV2: Bool
        /// The controllers this directory enforces.
        public var controllers: [Controller]
    }

    /// One directory per hierarchy (a v2 directory enforces all three; on v1, one per controller mount).
    public var directories: [Directory]
    /// On v2: the parent's cgroup.subtree_control, which must list the controllers before the child has them.
    public var v2Parent: String?

    /// Places a cgroup named `name` beside the agent's own: under the agent's cgroup in each hierarchy that has one
    /// of the controllers. v1 mounts win for a controller they carry (the hybrid layout: v1 controllers next to an
    /// empty v2 hierarchy); the rest come from v2 when its root offers them (`v2Available`). Returns nil, with the
    /// controllers nobody offers, when a limit could not be enforced.
    public static func locate(name: String, memberships: [CgroupMembership], mounts: [CgroupMount],
                              v2Available: Set<String>) -> Result<CgroupPlan, MissingControllers> {
        func directory(of membership: CgroupMembership?, in mount: CgroupMount) -> String? {
            guard let membership else { return nil }
            var relative = membership.path
            if mount.root != "/" {
                guard relative.hasPrefix(mount.root) else { return nil }
                relative = String(relative.dropFirst(mount.root.count))
            }
            let components = relative.split(separator: "/").filter { $0 != "." && $0 != ".." }
            return ([mount.mountPoint] + components.map(String.init)).joined(separator: "/")
        }
        var directories: [Directory] = []
        var missing: [Controller] = []
        var v2Controllers: [Controller] = []
        for controller in Controller.allCases {
            if let mount = mounts.first(where: { !$0.isV2 && $0.controllers.contains(controller.rawValue) }),
               let base = directory(of: memberships.first { !$0.isUnified && $0.controllers.contains(controller.rawValue) }, in: mount) {
                let path = base + "/" + name
                if let i = directories.firstIndex(where: { $0.path == path }) {
                    directories[i].controllers.append(controller)  // co-mounted controllers (cpu,cpuacct)
                } else {
                    directories.append(Directory(path: path, isV2: false, controllers: [controller]))
                }
            } else if v2Available.contains(controller.rawValue) {
                v2Controllers.append(controller)
            } else {
                missing.append(controller)
            }
        }
        guard missing.isEmpty else { return .failure(MissingControllers(controllers: missing)) }
        var v2Parent: String?
        if !v2Controllers.isEmpty {
            guard let mount = mounts.first(where: \.isV2),
                  let base = directory(of: memberships.first(where: \.isUnified), in: mount) else {
                return .failure(MissingControllers(controllers: v2Controllers))
            }
            v2Parent = base
            directories.append(Directory(path: base + "/" + name, isV2: true, controllers: v2Controllers))
        }
        return .success(CgroupPlan(directories: directories, v2Parent: v2Parent))
    }

    /// The files to write, in order, to hold the sandbox to `limits`.
    public func limitWrites(_ limits: ResourceLimits) -> [(file: String, value: String)] {
        var writes: [(String, String)] = []
        for d in directories {
            for c in d.controllers {
                switch (c, d.isV2) {
                case (.cpu, false):
                    writes.append((d.path + "/cpu.cfs_period_us", "\(ResourceLimits.cpuPeriodMicroseconds)"))
                    writes.append((d.path + "/cpu.cfs_quota_us", "\(limits.cpuQuotaMicroseconds)"))
                case (.cpu, true):
                    writes.append((d.path + "/cpu.max", "\(limits.cpuQuotaMicroseconds) \(ResourceLimits.cpuPeriodMicroseconds)"))
                case (.memory, false):
                    writes.append((d.path + "/memory.limit_in_bytes", "\(limits.memoryBytes)"))
                case (.memory, true):
                    writes.append((d.path + "/memory.max", "\(limits.memoryBytes)"))
                case (.pids, _):
                    writes.append((d.path + "/pids.max", "\(limits.pids)"))
                }
            }
        }
        return writes
    }

    /// Optional writes that only tighten: swap, where the kernel accounts it (a failure is not an error).
    public func optionalWrites(_ limits: ResourceLimits) -> [(file: String, value: String)] {
        directories.filter { $0.controllers.contains(.memory) }.map { d in
            d.isV2 ? (d.path + "/memory.swap.max", "0") : (d.path + "/memory.memsw.limit_in_bytes", "\(limits.memoryBytes)")
        }
    }

    /// The directory whose cgroup.procs lists every process of the sandbox (any one hierarchy will do: each
    /// process joins all of them before it runs). The pids controller's, where the fork-bomb limit lives.
    public var membershipDirectory: String {
        (directories.first { $0.controllers.contains(.pids) } ?? directories[0]).path
    }

    /// For the sampler: the directories that hold the CPU quota and the memory limit.
    public var samplerDirectories: CgroupDirectories {
        CgroupDirectories(
            v1CPU: directories.filter { !$0.isV2 && $0.controllers.contains(.cpu) }.map(\.path),
            v1Memory: directories.filter { !$0.isV2 && $0.controllers.contains(.memory) }.map(\.path),
            v2: directories.filter(\.isV2).map(\.path))
    }
}

public struct MissingControllers: Error, Equatable, CustomStringConvertible {
    public var controllers: [CgroupPlan.Controller]
    public var description: String {
        "no cgroup hierarchy offers the \(controllers.map(\.rawValue).joined(separator: ", ")) controller(s); "
            + "the sandbox cannot enforce its limits (mount them, or enable them in the parent's cgroup.subtree_control)"
    }
}
