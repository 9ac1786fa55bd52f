// The bubblewrap command line that builds one sandbox. Pure: the host's root layout comes in as a value.

/// How one instance's sandbox looks from inside.
public struct SandboxSpec: Sendable, Equatable {
    /// bubblewrap (Debian's `bubblewrap` package) and setpriv (util-linux), as the host has them.
    public var bubblewrap: String
    public var setpriv: String
    /// The unprivileged uid and gid the app runs as.
    public var uid: UInt32
    public var gid: UInt32
    /// The instance's private writable directory on the host, the app's /app (its working directory and $HOME).
    public var appDirectory: String
    /// Host paths the app may read (its code, a runtime outside /usr), mounted read-only at the same place.
    public var readOnlyPaths: [String]
    public var hostname: String
    public var limits: ResourceLimits

    public static let defaultBubblewrap = "/usr/bin/bwrap"
    public static let defaultSetpriv = "/usr/bin/setpriv"
    /// nobody:nogroup.
    public static let defaultUID: UInt32 = 65534
    public static let appMountPoint = "/app"

    public init(bubblewrap: String = defaultBubblewrap, setpriv: String = defaultSetpriv, uid: UInt32 = defaultUID,
                gid: UInt32? = nil, appDirectory: String, readOnlyPaths: [String] = [], hostname: String, limits: ResourceLimits) {
        self.bubblewrap = bubblewrap; self.setpriv = setpriv; self.uid = uid; self.gid = gid ?? uid
        self.appDirectory = appDirectory; self.readOnlyPaths = readOnlyPaths; self.hostname = hostname; self.limits = limits
    }
}

public enum BubblewrapCommand {
    /// What of /etc an ordinary program needs: names, the resolver, TLS roots, time zone, the dynamic linker.
    /// The rest of /etc (the controller's and agents' env files, shadow, ssh keys) stays out.
    public static let etcEntries = [
        "/etc/passwd", "/etc/group", "/etc/hosts", "/etc/host.conf", "/etc/resolv.conf", "/etc/nsswitch.conf",
        "/etc/gai.conf", "/etc/services", "/etc/protocols", "/etc/localtime", "/etc/timezone", "/etc/ssl",
        "/etc/ca-certificates", "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives",
        "/etc/os-release", "/etc/mime.types", "/etc/debian_version",
    ]

    /// The top-level entries bound from the host besides /usr: on a merged-/usr system they are symlinks
    /// (`bin -> usr/bin`), elsewhere directories.
    public static let rootEntries = ["/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"]

    /// One entry of the host's root: a symlink with its target, a directory, or absent.
    public enum HostEntry: Sendable, Equatable {
        case symlink(String)
        case directory
        case absent
    }

    /// argv for bubblewrap (argv[0] included), running `command` as the spec's uid with the seccomp program that
    /// the child finds at descriptor `seccompDescriptor`.
    public static func arguments(_ spec: SandboxSpec, command: [String], seccompDescriptor: Int32,
                                 hostRoot: [String: HostEntry]) -> [String] {
        var a = [spec.bubblewrap,
                 // The sandbox dies with the agent (SIGKILL, in order from bubblewrap down), and the app gets its own
                 // session: no controlling terminal to push input into (TIOCSTI, CVE-2017-5226).
                 "--die-with-parent", "--new-session",
                 "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
                 "--hostname", spec.hostname,
                 "--ro-bind", "/usr", "/usr"]
        for entry in rootEntries {
            switch hostRoot[entry] ?? .absent {
            case .symlink(let target): a += ["--symlink", target, entry]
            case .directory: a += ["--ro-bind", entry, entry]
            case .absent: break
            }
        }
        for path in etcEntries { a += ["--ro-bind-try", path, path] }
        // bubblewrap mounts in order: the fresh /tmp first, so that a read-only path below /tmp stays visible. The
        // tmpfs directories are sticky and world-writable as on a host (bubblewrap makes them 0755, root's);
        // the directories it creates on the way to a read-only path must be 0755 too, or the app cannot reach it.
        a += ["--proc", "/proc", "--dev", "/dev", "--perms", "1777", "--tmpfs", "/dev/shm", "--perms", "1777", "--tmpfs", "/tmp"]
        var made: Set<String> = []
        for path in spec.readOnlyPaths {
            var ancestor = ""
            for component in path.split(separator: "/").dropLast() {
                ancestor += "/" + component
                if made.insert(ancestor).inserted { a += ["--perms", "0755", "--dir", ancestor] }
            }
            a += ["--ro-bind", path, path]
        }
        a += ["--bind", spec.appDirectory, SandboxSpec.appMountPoint, "--chdir", SandboxSpec.appMountPoint,
              "--seccomp", "\(seccompDescriptor)",
              "--",
              // bubblewrap runs as root (it needs to mount without a user namespace, whose uid 0 would be the host's
              // root); setpriv drops to the app's uid with no capabilities left, not even in the bounding set.
              spec.setpriv, "--reuid", "\(spec.uid)", "--regid", "\(spec.gid)", "--clear-groups",
              "--inh-caps=-all", "--bounding-set=-all", "--"]
        return a + command
    }
}
