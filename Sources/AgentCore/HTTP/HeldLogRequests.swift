// The `/v1/logs?wait=` requests the server holds: suspended in libmicrohttpd (MHD_suspend_connection) so its
// one thread goes on serving, and resumed (MHD_resume_connection, thread safe through MHD's eventfd) by
//   - the app's output thread, when the log ring gets a line a held request waits for;
//   - a timer thread, at a request's deadline. It is started with the first held request and sleeps in poll(2)
//     until the earliest deadline, so an agent nobody follows pays nothing for it;
//   - `close()`, when the server stops (libmicrohttpd must not be stopped with suspended connections).
// Once resumed, libmicrohttpd calls the access handler again, which answers with the lines there are then.
import ChildProcess
import CMicroHTTPD
import CSystemShims
import Glibc
import Supervision
import Synchronization

final class HeldLogRequests: Sendable {
    enum Outcome: Equatable {
        /// There is something to answer now (lines, a cursor ahead of the ring, or a stopping server).
        case answerNow
        /// Suspended: answer `query` once the connection is resumed.
        case held(LogQuery)
        /// `capacity` requests are held already.
        case full
    }

    private struct State {
        /// Keyed by the connection's address: a connection holds one request at a time.
        var list: LogWaitList<UInt>
        var timerStarted = false
        /// The deadline the timer thread sleeps towards (nil: none, it sleeps until woken).
        var timerDeadline: Duration?
    }

    private let observations: AgentObservations
    private let state: Mutex<State>
    /// Wakes the timer thread for an earlier deadline, or to end.
    private let timerWake: Int32
    /// Held requests libmicrohttpd has not completed yet (suspended, or resumed and being answered).
    private let unfinished = Atomic<Int>(0)

    var capacity: Int { state.withLock { $0.list.capacity } }

    init(observations: AgentObservations, capacity: Int) {
        self.observations = observations
        state = Mutex(State(list: LogWaitList(capacity: capacity)))
        timerWake = cr_eventfd()
        observations.logRing?.setWake { [weak self] in self?.linesAppended() }
    }

    deinit {
        if timerWake >= 0 { Glibc.close(timerWake) }
    }

    /// On libmicrohttpd's thread, from the access handler (the only place a connection may be suspended).
    /// The check for new lines and the suspension happen under the lock the waking paths take, so a line
    /// appended in between wakes the request instead of being missed, and no request is resumed before it
    /// was suspended.
    func hold(_ connection: OpaquePointer, query: LogQuery) -> Outcome {
        let ring = observations.logRing
        return state.withLock { s in
            ring?.armWake()
            let last = ring?.lastSequence ?? 0
            let after: UInt64
            switch query.start {
            case .after(let sequence):
                // A cursor ahead of the ring comes from an earlier run of the agent: answering at once tells the
                // follower (lastSequence < after) without making it wait.
                guard sequence == last else { return .answerNow }
                after = sequence
            case .tail:
                guard last == 0 else { return .answerNow }  // the ring holds its newest line from the first on
                after = 0
            }
            guard s.timerStarted || startTimer() else { return .answerNow }  // no thread, no deadline: do not hold
            s.timerStarted = true
            switch s.list.add(UInt(bitPattern: connection), after: after, deadline: Now.monotonic() + query.wait) {
            case .closed: return .answerNow
            case .full: return .full
            case .held:
                unfinished.add(1, ordering: .relaxed)
                MHD_suspend_connection(connection)
                if let next = s.list.nextDeadline, s.timerDeadline.map({ next < $0 }) ?? true { poke() }
                return .held(LogQuery(start: .after(after), limit: query.limit))
            }
        }
    }

    /// libmicrohttpd completed a held request (answered, or the connection closed).
    func finished() { unfinished.subtract(1, ordering: .relaxed) }

    /// Resumes every held request (each answers with what it has) and refuses to hold more; then waits, at
    /// most `timeout`, until libmicrohttpd has sent those answers.
    func close(timeout: Duration) {
        state.withLock { s in
            for id in s.list.close() { resume(id) }
        }
        poke()
        let deadline = Now.monotonic() + timeout
        while unfinished.load(ordering: .relaxed) > 0 && Now.monotonic() < deadline { Now.sleep(.milliseconds(2)) }
    }

    // MARK: Waking

    /// On the app's output thread, after a line was appended to the ring (armed by `hold`): resumes the
    /// requests that wait for it. No I/O: resuming marks the connection and writes MHD's eventfd.
    private func linesAppended() {
        guard let ring = observations.logRing else { return }
        state.withLock { s in
            for id in s.list.wake(lastSequence: ring.lastSequence) { resume(id) }
            if s.list.count > 0 { ring.armWake() }
        }
    }

    /// Called with the lock held, so that `close` cannot stop the daemon between taking an id and resuming it.
    private func resume(_ id: UInt) {
        guard let connection = OpaquePointer(bitPattern: id) else { return }
        MHD_resume_connection(connection)
    }

    private func poke() {
        var one: UInt64 = 1
        _ = write(timerWake, &one, 8)
    }

    private func startTimer() -> Bool {
        guard timerWake >= 0 else { return false }
        return DetachedThread.start { [self] in runTimer() }
    }

    /// The timer thread: resumes the requests whose deadline passed, then sleeps until the next one (or until
    /// poked). Ends once the list is closed.
    private func runTimer() {
        while true {
            let timeout: Int32? = state.withLock { s in
                if s.list.isClosed { return nil }
                for id in s.list.expire(now: Now.monotonic()) { resume(id) }
                s.timerDeadline = s.list.nextDeadline
                return s.timerDeadline.map { ($0 - Now.monotonic()).pollMilliseconds } ?? -1
            }
            guard let timeout else { return }
            var wake = pollfd(fd: timerWake, events: Int16(POLLIN), revents: 0)
            if poll(&wake, 1, timeout) > 0 {
                var count: UInt64 = 0
                _ = read(timerWake, &count, 8)
            }
        }
    }
}
