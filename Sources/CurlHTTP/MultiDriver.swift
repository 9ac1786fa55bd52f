// The thread that drives one curl_multi handle. Callers never touch the multi handle: they put operations in the
// inbox (under a lock) and wake the thread with curl_multi_wakeup, the one multi call libcurl allows from other
// threads (made under the same lock, so never after the thread has freed the handle). The thread takes the inbox, lets libcurl work (curl_multi_perform), completes finished transfers, and
// sleeps in curl_multi_poll until a socket is ready, a libcurl timer is due (it shortens the wait to its own
// timeouts, CURLOPT_TIMEOUT_MS included) or it is woken.
import CCurl
import CCurlShims
import ChildProcess
import Synchronization

/// @unchecked Sendable: `multi` and `running` are used only on the driver's thread (besides curl_multi_wakeup,
/// which libcurl makes thread-safe); everything shared with callers is in `inbox`, behind its Mutex.
final class MultiDriver: @unchecked Sendable {
    private enum Operation {
        case add(Transfer)
        case cancel(Transfer)
    }

    private struct Inbox {
        var operations: [Operation] = []
        var closed = false
        var finished = false
        var stopWaiters: [CheckedContinuation<Void, Never>] = []
    }

    private let multi: UnsafeMutableRawPointer?
    private let inbox = Mutex(Inbox())
    /// The transfers libcurl runs, by easy handle. Driver thread only.
    private var running: [UnsafeMutableRawPointer: Transfer] = [:]

    init(configuration: CurlHTTPClient.Configuration) {
        multi = curl_multi_init()
        guard let multi else {
            inbox.withLock { $0.closed = true; $0.finished = true }
            return
        }
        _ = cr_curl_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, max(1, configuration.maxConnectionsPerHost))
        _ = cr_curl_multi_setopt_long(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max(0, configuration.maxConnections))
        _ = cr_curl_multi_setopt_long(multi, CURLMOPT_MAXCONNECTS, max(1, configuration.maxIdleConnections))
        guard DetachedThread.start({ [self] in run() }) else {
            curl_multi_cleanup(multi)
            inbox.withLock { $0.closed = true; $0.finished = true }
            return
        }
    }

    func submit(_ transfer: Transfer, _ continuation: CheckedContinuation<Result<CurlHTTPResponse, CurlHTTPError>, Never>) {
        let refused: CurlHTTPError? = inbox.withLock { inbox in
            if inbox.closed { return .shutdown }
            // Cancelled before it was handed over: the cancel handler found nothing to remove.
            if transfer.cancelled { return .cancelled }
            transfer.continuation = continuation
            inbox.operations.append(.add(transfer))
            wake(inbox)
            return nil
        }
        if let refused { continuation.resume(returning: .failure(refused)) }
    }

    func cancel(_ transfer: Transfer) {
        inbox.withLock { inbox in
            transfer.cancelled = true
            guard !inbox.closed, transfer.continuation != nil else { return }
            inbox.operations.append(.cancel(transfer))
            wake(inbox)
        }
    }

    /// Refuses new requests; the thread fails those in flight and ends. Safe to call more than once.
    func close() {
        inbox.withLock { inbox in
            guard !inbox.closed else { return }
            inbox.closed = true
            wake(inbox)
        }
    }

    func shutdown() async {
        close()
        await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
            let done = inbox.withLock { inbox -> Bool in
                if inbox.finished { return true }
                inbox.stopWaiters.append(continuation)
                return false
            }
            if done { continuation.resume() }
        }
    }

    /// Called with the inbox locked: the thread frees the multi handle under the same lock once it has
    /// finished, so a wakeup never reaches a freed handle.
    private func wake(_ inbox: borrowing Inbox) {
        guard !inbox.finished, let multi else { return }
        _ = curl_multi_wakeup(multi)
    }

    // MARK: the driver's thread

    private func run() {
        guard let multi else { return }
        var stillRunning: Int32 = 0
        while true {
            let (operations, closed) = inbox.withLock { inbox in
                defer { inbox.operations = [] }
                return (inbox.operations, inbox.closed)
            }
            if closed {
                for case .add(let transfer) in operations { resume(transfer, .failure(.shutdown)) }
                for transfer in Array(running.values) { finish(transfer, .failure(.shutdown)) }
                break
            }
            for operation in operations {
                switch operation {
                case .add(let transfer):
                    let rc = curl_multi_add_handle(multi, transfer.easy)
                    if rc == CURLM_OK {
                        running[transfer.easy] = transfer
                    } else {
                        resume(transfer, .failure(.setup(String(cString: curl_multi_strerror(rc)))))
                    }
                case .cancel(let transfer):
                    // Not running any more: it completed before the cancellation arrived.
                    if running[transfer.easy] === transfer { finish(transfer, .failure(.cancelled)) }
                }
            }
            _ = curl_multi_perform(multi, &stillRunning)
            var queued: Int32 = 0
            while let message = curl_multi_info_read(multi, &queued) {
                guard message.pointee.msg == CURLMSG_DONE, let easy = message.pointee.easy_handle,
                      let transfer = running[easy] else { continue }
                finish(transfer, transfer.outcome(message.pointee.data.result))
            }
            // At most a second between looks at the inbox even if a wakeup were lost.
            _ = curl_multi_poll(multi, nil, 0, 1000, nil)
        }
        let waiters = inbox.withLock { inbox in
            inbox.finished = true
            curl_multi_cleanup(multi)
            defer { inbox.stopWaiters = [] }
            return inbox.stopWaiters
        }
        for waiter in waiters { waiter.resume() }
    }

    /// Takes the transfer out of libcurl and hands its outcome to the awaiting caller.
    private func finish(_ transfer: Transfer, _ outcome: Result<CurlHTTPResponse, CurlHTTPError>) {
        if let multi { _ = curl_multi_remove_handle(multi, transfer.easy) }
        running[transfer.easy] = nil
        resume(transfer, outcome)
    }

    private func resume(_ transfer: Transfer, _ outcome: Result<CurlHTTPResponse, CurlHTTPError>) {
        let continuation = inbox.withLock { _ in
            defer { transfer.continuation = nil }
            return transfer.continuation
        }
        continuation?.resume(returning: outcome)
    }
}
