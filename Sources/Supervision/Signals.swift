public import CSystemShims
// public: the API names pid_t.
// Swift 6.3 warns that this import is unused; it is wrong: made internal, the declarations fail to compile.
public import Glibc

/// Signal numbers and names, and which signals the supervisor forwards.
public enum Signals {
    /// Signals raised by the faulting instruction itself: they concern the agent's own code, so they keep their
    /// default action and are never forwarded (tini and dumb-init do the same).
    public static let synchronous: [Int32] = [SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP, SIGSYS]

    /// Signals that tell the agent itself to stop, besides the configured stop signal: they are forwarded to the
    /// child like any other, and then the agent stops the child for good (no restart) and exits with its status.
    public static let stopRequests: [Int32] = [SIGTERM, SIGINT, SIGQUIT]

    /// Every signal the supervisor receives through its signalfd: all of them (standard and real-time) except
    /// SIGKILL and SIGSTOP (which cannot be caught) and the synchronous ones. SIGPIPE is among them: a blocked
    /// SIGPIPE never kills the agent (a write to a closed output fails with EPIPE), and the signalfd tells the one
    /// the kernel raised on the agent's own write from one another process sent (`SignalSource`).
    public static var handled: sigset_t {
        var set = sigset_t()
        sigfillset(&set)  // glibc leaves out its two internal real-time signals itself
        for signal in synchronous + [SIGKILL, SIGSTOP] { sigdelset(&set, signal) }
        return set
    }

    /// Parses "TERM", "SIGTERM", "term" or "15". Returns nil for anything that is not a catchable signal number.
    public static func number(named name: String) -> Int32? {
        let trimmed = name.trimmingWhitespace
        if let n = Int32(trimmed) {
            return (1...cr_sigrtmax()).contains(n) ? n : nil
        }
        var upper = trimmed.uppercased()
        if upper.hasPrefix("SIG") { upper.removeFirst(3) }
        guard !upper.isEmpty else { return nil }
        for n in 1...cr_sigrtmax() where Signals.name(of: n) == upper {
            return n
        }
        // RTMIN+n and RTMAX-n, as kill(1) spells them.
        if upper.hasPrefix("RTMIN+"), let k = Int32(upper.dropFirst(6)), cr_sigrtmin() + k <= cr_sigrtmax() {
            return cr_sigrtmin() + k
        }
        if upper.hasPrefix("RTMAX-"), let k = Int32(upper.dropFirst(6)), cr_sigrtmax() - k >= cr_sigrtmin() {
            return cr_sigrtmax() - k
        }
        return nil
    }

    /// "TERM" for 15; "RTMIN+2" for real-time signals; the number itself when glibc has no name for it.
    public static func name(of signal: Int32) -> String {
        if signal >= cr_sigrtmin() && signal <= cr_sigrtmax() {
            return signal == cr_sigrtmin() ? "RTMIN" : "RTMIN+\(signal - cr_sigrtmin())"
        }
        if let abbrev = cr_signal_abbrev(signal) { return String(cString: abbrev) }
        return String(signal)
    }
}

/// Who raised a signal, from signalfd's ssi_code and ssi_pid.
public enum SignalSource: Sendable, Equatable {
    /// Another process, with kill(2), sigqueue(3) or tgkill(2); pid 0 when the sender is outside the agent's pid
    /// namespace (`docker kill`).
    case process(pid_t)
    /// The agent itself. The kernel raises SIGPIPE on a thread that writes to a closed pipe or socket as if that
    /// thread had sent it with kill(2): SI_USER from the agent's own pid.
    case agent
    /// The kernel: SI_KERNEL, a child's state change (SIGCHLD), a terminal's hangup, ...
    case kernel

    /// Classifies a signal that `agentPid` received with si_code `code` from si_pid `pid`.
    public init(code: Int32, pid: pid_t, agentPid: pid_t) {
        if code == cr_si_user() || code == cr_si_queue() || code == cr_si_tkill() {
            self = pid == agentPid ? .agent : .process(pid)
        } else {
            self = .kernel
        }
    }

    /// Whether another process sent the signal.
    public var isAnotherProcess: Bool {
        if case .process = self { true } else { false }
    }
}
