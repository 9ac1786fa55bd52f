// The cgroups of one sandbox on disk: made once per agent, limits written, emptied and removed at the end.
public import Glibc
import ProcSampling

/// The live cgroups of one sandbox (see `CgroupPlan` for where they are and what goes in them).
public struct Cgroups: Sendable {
    public let plan: CgroupPlan

    /// Reads the agent's cgroups and the mounts, and places `name` beside them.
    public static func plan(name: String) throws(SandboxError) -> CgroupPlan {
        let memberships = ProcParse.cgroupMemberships(readText("/proc/self/cgroup") ?? "")
        let mounts = ProcParse.cgroupMounts(readText("/proc/self/mountinfo") ?? "")
        var v2Available: Set<String> = []
        if let v2 = mounts.first(where: \.isV2), let membership = memberships.first(where: \.isUnified) {
            // What the agent's own cgroup can hand down (it is the parent of the sandbox's).
            var relative = membership.path
            if v2.root != "/", relative.hasPrefix(v2.root) { relative = String(relative.dropFirst(v2.root.count)) }
            let text = readText(v2.mountPoint + relative + "/cgroup.controllers") ?? ""
            v2Available = Set(text.split(whereSeparator: { $0 == " " || $0 == "\n" }).map(String.init))
        }
        switch CgroupPlan.locate(name: name, memberships: memberships, mounts: mounts, v2Available: v2Available) {
        case .success(let plan): return plan
        case .failure(let missing): throw SandboxError("\(missing)")
        }
    }

    /// Makes the directories and writes the limits. A directory left by an earlier agent of the same instance is
    /// reused if it is empty; one with live processes in it belongs to someone else, and is an error.
    public static func create(_ plan: CgroupPlan, limits: ResourceLimits) throws(SandboxError) -> Cgroups {
        if let parent = plan.v2Parent {
            try enableV2Controllers(in: parent, plan.directories.filter(\.isV2).flatMap(\.controllers))
        }
        for d in plan.directories {
            if mkdir(d.path, 0o755) != 0 {
                guard errno == EEXIST else { throw SandboxError("cannot create the cgroup \(d.path): \(describeErrno())") }
                guard (readText(d.path + "/cgroup.procs") ?? "").isEmpty else {
                    throw SandboxError("the cgroup \(d.path) already has processes in it: is another agent running this instance?")
                }
            }
        }
        for (file, value) in plan.limitWrites(limits) {
            guard writeText(file, value) else { throw SandboxError("cannot write \(value) to \(file): \(describeErrno())") }
        }
        for (file, value) in plan.optionalWrites(limits) where access(file, F_OK) == 0 { _ = writeText(file, value) }
        return Cgroups(plan: plan)
    }

    /// cgroup v2 hands a controller to a child only once the parent's cgroup.subtree_control lists it, and a
    /// non-root cgroup with processes of its own cannot have children with controllers ("no internal processes":
    /// the kernel may accept the subtree_control write, then refuse every attach below with EOPNOTSUPP). So the
    /// agent first moves itself, with anything else in its cgroup, into a leaf `agent` below it, as systemd's
    /// Delegate= documentation describes. The root cgroup (no cgroup.type file) is exempt.
    static func enableV2Controllers(in parent: String, _ controllers: [CgroupPlan.Controller]) throws(SandboxError) {
        let line = controllers.map { "+" + $0.rawValue }.joined(separator: " ")
        let isRoot = access(parent + "/cgroup.type", F_OK) != 0
        let hasProcesses = !(readText(parent + "/cgroup.procs") ?? "").isEmpty
        if !isRoot && hasProcesses {
            // A previous agent of this unit may have left controllers enabled, which makes every child refuse
            // processes: hand them back first (the sandbox's own cgroup below gets them again at once).
            let enabled = (readText(parent + "/cgroup.subtree_control") ?? "").split(whereSeparator: { $0 == " " || $0 == "\n" })
            if !enabled.isEmpty, !writeText(parent + "/cgroup.subtree_control", enabled.map { "-" + $0 }.joined(separator: " ")) {
                throw SandboxError("cannot reset \(parent)/cgroup.subtree_control: \(describeErrno())")
            }
            let leaf = parent + "/agent"
            if mkdir(leaf, 0o755) != 0 && errno != EEXIST { throw SandboxError("cannot create \(leaf): \(describeErrno())") }
            let pids = (readText(parent + "/cgroup.procs") ?? "").split(separator: "\n")
            for pid in pids where !writeText(leaf + "/cgroup.procs", String(pid)) && errno != ESRCH {
                throw SandboxError("cannot move process \(pid) into \(leaf): \(describeErrno())")
            }
        }
        guard writeText(parent + "/cgroup.subtree_control", line) else {
            throw SandboxError("cannot enable \(line) in \(parent)/cgroup.subtree_control: \(describeErrno())")
        }
    }

    /// Opens each directory's cgroup.procs for the next child to write itself into (close-on-exec: the child
    /// writes before it executes).
    public func openProcsFiles() throws(SandboxError) -> [Int32] {
        var fds: [Int32] = []
        for d in plan.directories {
            let fd = open(d.path + "/cgroup.procs", O_WRONLY | O_CLOEXEC)
            guard fd >= 0 else {
                let reason = describeErrno()
                for f in fds { close(f) }
                throw SandboxError("cannot open \(d.path)/cgroup.procs: \(reason)")
            }
            fds.append(fd)
        }
        return fds
    }

    /// Every process in the sandbox now.
    public func processes() -> [pid_t] {
        (readText(plan.membershipDirectory + "/cgroup.procs") ?? "").split(separator: "\n").compactMap { pid_t($0) }
    }

    public var isEmpty: Bool { processes().isEmpty }

    /// SIGKILL to everything in the sandbox until it is empty (a process forking meanwhile is caught on the next
    /// pass; the sandbox's PID namespace also dies with its init). At most `passes` passes, 1 ms apart.
    @discardableResult
    public func killAll(passes: Int = 200) -> Bool {
        for _ in 0..<passes {
            let pids = processes()
            if pids.isEmpty { return true }
            for pid in pids { kill(pid, SIGKILL) }
            usleep(1000)
        }
        return isEmpty
    }

    /// Removes the directories (they must be empty: call after the launcher was reaped).
    public func remove() {
        for d in plan.directories.reversed() {
            for _ in 0..<50 where rmdir(d.path) != 0 && errno == EBUSY { usleep(2000) }
        }
    }
}

func readText(_ path: String) -> String? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 4096)
    while true {
        let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { break }
        bytes += chunk[0..<n]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Writes `text` in one write(2), as the cgroup interface files want; false with errno set on failure.
func writeText(_ path: String, _ text: String) -> Bool {
    let fd = open(path, O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return false }
    defer { let e = errno; close(fd); errno = e }
    let bytes = Array(text.utf8)
    return bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) } == bytes.count
}

func describeErrno() -> String { String(cString: strerror(errno)) }

public struct SandboxError: Error, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}
