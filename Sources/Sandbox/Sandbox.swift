// One instance's sandbox: bubblewrap namespaces, a cgroup per controller holding the limits, a seccomp filter
// and an unprivileged uid. The agent stays outside as the sandbox's parent (docs/sandbox.md says why) and
// supervises it through `ChildContainment`.
public import CSystemShims
// public: `signal(_:sparing:)` takes a pid_t.
// Swift 6.3 warns that this import is unused; it is wrong: made internal, the declarations fail to compile.
public import Glibc
public import Supervision

public final class Sandbox: ChildContainment {
    public let spec: SandboxSpec
    public let cgroups: Cgroups
    private let seccompProgram: [UInt8]
    private let hostRoot: [String: BubblewrapCommand.HostEntry]

    /// Checks the tools, makes the app's directory and the cgroups (named `name`), and compiles the filter.
    /// Needs root: the agent mounts through bubblewrap, writes cgroups and hands the app another uid.
    public init(spec: SandboxSpec, name: String) throws(SandboxError) {
        guard geteuid() == 0 else {
            throw SandboxError("--sandbox needs root (to build namespaces and cgroups and to run the app as uid \(spec.uid)); the agent runs as uid \(geteuid())")
        }
        for tool in [spec.bubblewrap, spec.setpriv] where access(tool, X_OK) != 0 {
            throw SandboxError("\(tool) is not there (apt-get install bubblewrap util-linux)")
        }
        guard spec.uid != 0, spec.gid != 0 else { throw SandboxError("the sandbox's uid and gid must not be 0") }
        for path in spec.readOnlyPaths where !path.hasPrefix("/") {
            throw SandboxError("read-only path '\(path)' must be absolute")
        }
        try Self.prepareAppDirectory(spec)
        seccompProgram = try SeccompFilter.compile()
        var root: [String: BubblewrapCommand.HostEntry] = [:]
        for entry in BubblewrapCommand.rootEntries { root[entry] = Self.hostEntry(entry) }
        hostRoot = root
        let plan = try Cgroups.plan(name: name)
        cgroups = try Cgroups.create(plan, limits: spec.limits)
        self.spec = spec
    }

    /// The app's /app: created if missing, owned by the app's uid, mode 0700. An existing path that is a symlink
    /// or not a directory is refused rather than followed.
    static func prepareAppDirectory(_ spec: SandboxSpec) throws(SandboxError) {
        let path = spec.appDirectory
        guard path.hasPrefix("/") else { throw SandboxError("the app directory '\(path)' must be absolute") }
        // Its parent (the agent's state directory, by default) is the agent's: made 0700 when missing.
        if let slash = path.lastIndex(of: "/"), slash != path.startIndex {
            let parent = String(path[..<slash])
            if mkdir(parent, 0o700) != 0 && errno != EEXIST { throw SandboxError("cannot create \(parent): \(describeErrno())") }
        }
        if mkdir(path, 0o700) != 0 && errno != EEXIST {
            throw SandboxError("cannot create the app directory \(path): \(describeErrno())")
        }
        let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
        guard fd >= 0 else { throw SandboxError("the app directory \(path) is not a directory (or is a symlink): \(describeErrno())") }
        defer { close(fd) }
        guard fchown(fd, spec.uid, spec.gid) == 0, fchmod(fd, 0o700) == 0 else {
            throw SandboxError("cannot give \(path) to uid \(spec.uid): \(describeErrno())")
        }
    }

    static func hostEntry(_ path: String) -> BubblewrapCommand.HostEntry {
        var buffer = [CChar](repeating: 0, count: 4096)
        let n = readlink(path, &buffer, buffer.count - 1)
        if n > 0 {
            let bytes = buffer[0..<n].map { UInt8(bitPattern: $0) }
            return .symlink(String(decoding: bytes, as: UTF8.self))
        }
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR ? .directory : .absent
    }

    // MARK: ChildContainment

    public func prepareLaunch(command: [String], environment: [String: String]) throws(ContainmentError) -> ContainedLaunch {
        let procs: [Int32]
        do { procs = try cgroups.openProcsFiles() } catch { throw ContainmentError(error.description) }
        let memfd = cr_memfd("coderunner-seccomp")
        guard memfd >= 0 else {
            for fd in procs { close(fd) }
            throw ContainmentError("memfd_create: \(describeErrno())")
        }
        let written = seccompProgram.withUnsafeBytes { write(memfd, $0.baseAddress, $0.count) }
        guard written == seccompProgram.count, lseek(memfd, 0, SEEK_SET) == 0 else {
            for fd in procs + [memfd] { close(fd) }
            throw ContainmentError("cannot write the seccomp program")
        }
        var env = environment
        env["HOME"] = SandboxSpec.appMountPoint
        if env["PATH"] == nil { env["PATH"] = "/usr/local/bin:/usr/bin:/bin" }
        // The seccomp program is the child's descriptor 3 (the first passed one).
        let argv = BubblewrapCommand.arguments(spec, command: command, seccompDescriptor: 3, hostRoot: hostRoot)
        return ContainedLaunch(path: spec.bubblewrap, arguments: argv, environment: env,
                               cgroupProcs: procs, passedDescriptors: [memfd])
    }

    public func signal(_ signal: Int32, sparing: pid_t?) {
        for pid in cgroups.processes() where pid != sparing { kill(pid, signal) }
    }

    public var isEmpty: Bool { cgroups.isEmpty }

    /// A health check's command in the app's view.
    public func prepareProbe(command: [String], environment: [String: String], launcher: pid_t?) throws(ContainmentError) -> ContainedLaunch {
        // Refused in a sandbox. A check entering the app's namespaces with nsenter and setpriv would run the
        // deployment owner's argv outside the sandbox's seccomp filter (the filter denies the setns that nsenter
        // needs, so it cannot be loaded before) and outside its cgroups (no pids or memory limit): a tenant could
        // reach every system call the filter exists to deny, and fork without bound, for up to the check's timeout.
        // Running it under the same confinement as the app needs a launcher that joins the cgroups, enters the
        // namespaces, drops to the app's uid and loads the filter itself before exec; until then, http checks.
        throw ContainmentError("a command health check does not run in a sandbox: it would escape the sandbox's "
            + "seccomp filter and cgroup limits; use an http check")
    }

    /// Kills what is left and removes the cgroups (the agent's exit).
    public func destroy() {
        cgroups.killAll()
        cgroups.remove()
    }
}
