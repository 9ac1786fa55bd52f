// The system calls a sandboxed app may not make, compiled to a BPF program with libseccomp (bubblewrap loads
// it with --seccomp just before it executes the app). A deny list, like Docker's and systemd's: an app keeps
// every ordinary call, and the ones below fail with EPERM. The list follows Docker's default profile
// (moby/profiles/seccomp/default.json) and systemd's @mount, @module, @reboot, @swap, @raw-io, @clock,
// @debug and @obsolete groups.
import CSeccomp
import CSystemShims
import Glibc

public enum SeccompFilter {
    /// Refused outright with EPERM.
    public static let deniedCalls: [String] = [
        // Replacing or extending the kernel.
        "kexec_load", "kexec_file_load", "init_module", "finit_module", "delete_module", "create_module",
        "reboot", "swapon", "swapoff", "acct", "iopl", "ioperm",
        // Changing the mount table or escaping it (the sandbox's view is fixed by bubblewrap before this applies).
        "mount", "umount", "umount2", "pivot_root", "chroot", "fsopen", "fsconfig", "fsmount", "fspick",
        "move_mount", "open_tree", "mount_setattr", "open_by_handle_at", "name_to_handle_at",
        // New namespaces or joining others'.
        "unshare", "setns",
        // Reading or changing other processes (ptrace is refused even inside the sandbox: simpler than a rule).
        "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
        // Kernel attack surface that apps do not need.
        "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd", "lookup_dcookie",
        "io_uring_setup", "io_uring_enter", "io_uring_register", "fanotify_init", "syslog", "vhangup",
        "nfsservctl", "uselib", "quotactl", "quotactl_fd", "sysfs", "_sysctl",
        // The host's clock.
        "settimeofday", "clock_settime", "clock_adjtime", "adjtimex",
    ]

    /// clone(2) flags that create namespaces: clone with any of them fails with EPERM, like unshare.
    /// (CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET; NEWTIME shares a bit with the exit
    /// signal in clone(2), so it is not checked there.)
    public static let namespaceCloneFlags: [UInt64] = [
        0x0002_0000, 0x0200_0000, 0x0400_0000, 0x0800_0000, 0x1000_0000, 0x2000_0000, 0x4000_0000,
    ]

    /// The compiled program for this machine's architecture. Calls of other ABIs (i386, x32) kill the process:
    /// libseccomp's default for a foreign architecture, which closes the 32-bit side door.
    public static func compile() throws(SandboxError) -> [UInt8] {
        guard let ctx = seccomp_init(0x7fff_0000 /* SCMP_ACT_ALLOW */) else { throw SandboxError("seccomp_init failed") }
        defer { seccomp_release(ctx) }
        let deny = UInt32(0x0005_0000) | UInt32(EPERM)  // SCMP_ACT_ERRNO(EPERM)
        for name in deniedCalls {
            let number = seccomp_syscall_resolve_name(name)
            guard number != __NR_SCMP_ERROR else { continue }  // not a call on this architecture
            let rc = seccomp_rule_add_array(ctx, deny, number, 0, nil)
            guard rc == 0 else { throw SandboxError("seccomp rule for \(name): \(String(cString: strerror(-rc)))") }
        }
        let clone = seccomp_syscall_resolve_name("clone")
        for flag in namespaceCloneFlags {
            var cmp = scmp_arg_cmp(arg: 0, op: SCMP_CMP_MASKED_EQ, datum_a: flag, datum_b: flag)
            let rc = seccomp_rule_add_array(ctx, deny, clone, 1, &cmp)
            guard rc == 0 else { throw SandboxError("seccomp rule for clone: \(String(cString: strerror(-rc)))") }
        }
        // clone3 passes its flags in memory, where a filter cannot look: ENOSYS makes glibc fall back to clone.
        let clone3 = seccomp_syscall_resolve_name("clone3")
        if clone3 != __NR_SCMP_ERROR {
            let rc = seccomp_rule_add_array(ctx, UInt32(0x0005_0000) | UInt32(ENOSYS), clone3, 0, nil)
            guard rc == 0 else { throw SandboxError("seccomp rule for clone3: \(String(cString: strerror(-rc)))") }
        }
        let fd = cr_memfd("coderunner-seccomp")
        guard fd >= 0 else { throw SandboxError("memfd_create: \(describeErrno())") }
        defer { close(fd) }
        let rc = seccomp_export_bpf(ctx, fd)
        guard rc == 0 else { throw SandboxError("seccomp_export_bpf: \(String(cString: strerror(-rc)))") }
        lseek(fd, 0, SEEK_SET)
        var program: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n <= 0 { break }
            program += chunk[0..<n]
        }
        guard !program.isEmpty else { throw SandboxError("libseccomp exported an empty program") }
        return program
    }
}
