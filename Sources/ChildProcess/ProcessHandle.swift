// A process that is not this one's child: an agent a previous run of the controller started, adopted after a
// crash (its parent died; init reaps it now). waitpid cannot watch it and a pid may be reused once it exits, so
// it is watched and signalled through a pidfd, which names that one process for as long as it is open.
public import CSystemShims
import Glibc

public final class ProcessHandle: Sendable {
    public let pid: pid_t
    /// Open until the handle goes: closing it while a signal or a watch may still use it would let the number
    /// name another file.
    private let fd: Int32

    /// nil when there is no such process (it exited, or the kernel has no pidfd_open).
    public init?(pid: pid_t) {
        let fd = cr_pidfd_open(pid)
        guard fd >= 0 else { return nil }
        self.pid = pid
        self.fd = fd
    }

    deinit { close(fd) }

    /// Sends `signal` to the process; false once it exited.
    @discardableResult
    public func signal(_ signal: Int32) -> Bool { cr_pidfd_send_signal(fd, signal) == 0 }

    public var hasExited: Bool {
        var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        return poll(&p, 1, 0) > 0
    }

    /// Calls `handler` on a thread of its own once the process exited. Its status is its parent's to reap, not
    /// ours: only the exit is known. Returns false, without watching, when no thread could be created.
    @discardableResult
    public func onExit(_ handler: @escaping @Sendable () -> Void) -> Bool {
        DetachedThread.start { [self] in
            var p = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            while poll(&p, 1, -1) < 0 && errno == EINTR {}
            handler()
        }
    }
}
