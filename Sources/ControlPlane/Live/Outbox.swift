// What a connection has yet to write. A slow client must never slow the agent, the relay or other clients: log
// lines go into a bounded queue per connection, and a line that finds it full is dropped and counted; the count
// goes out as `logs_dropped {deploymentId, count}` before the deployment's next line (or as soon as the queue has
// drained). Control frames (confirmations, errors, status, metrics, pong) are few and never dropped.
import NIOCore
import Synchronization

/// The queue's rules, pure.
struct OutboxQueue: Sendable {
    enum Item: Sendable, Equatable {
        case control(ByteBuffer)
        case log(deploymentId: String, ByteBuffer)
        /// `logs_dropped`, rendered when written.
        case dropped(deploymentId: String, count: Int)
    }

    /// Log lines queued at most, over all the connection's log subscriptions.
    let logCapacity: Int
    private(set) var items = CircularBuffer<Item>()
    private(set) var queuedLogs = 0
    /// Lines dropped per deployment and not reported yet.
    private(set) var dropped: [String: Int] = [:]
    /// Lines dropped over the connection's life (for the controller's log and tests).
    private(set) var droppedTotal = 0

    init(logCapacity: Int) { self.logCapacity = max(1, logCapacity) }

    var isEmpty: Bool { items.isEmpty && dropped.isEmpty }

    mutating func pushControl(_ frame: ByteBuffer) {
        items.append(.control(frame))
    }

    /// Queues a line; false when it was dropped (the queue is full).
    @discardableResult
    mutating func pushLog(_ deploymentId: String, _ frame: ByteBuffer) -> Bool {
        guard queuedLogs < logCapacity else {
            dropped[deploymentId, default: 0] += 1
            droppedTotal += 1
            return false
        }
        if let count = dropped.removeValue(forKey: deploymentId) {
            items.append(.dropped(deploymentId: deploymentId, count: count))
        }
        items.append(.log(deploymentId: deploymentId, frame))
        queuedLogs += 1
        return true
    }

    /// Lines lost before they reached the queue (the agent's ring overwrote them, or a backfill's wait overflowed):
    /// reported the same way as the queue's own drops.
    mutating func lost(_ deploymentId: String, _ count: Int) {
        guard count > 0 else { return }
        dropped[deploymentId, default: 0] += count
        droppedTotal += count
    }

    /// Everything to write now, in order; the drop counts still unreported come last.
    mutating func drain() -> [ByteBuffer] {
        var out: [ByteBuffer] = []
        out.reserveCapacity(items.count + dropped.count)
        while let item = items.popFirst() {
            switch item {
            case .control(let frame): out.append(frame)
            case .log(_, let frame): out.append(frame)
            case .dropped(let deployment, let count): out.append(LiveFrames.dropped(deployment, count))
            }
        }
        queuedLogs = 0
        for (deployment, count) in dropped.sorted(by: { $0.key < $1.key }) { out.append(LiveFrames.dropped(deployment, count)) }
        dropped = [:]
        return out
    }

    /// After `unsubscribe_logs`: nothing more of the deployment goes out, queued or not.
    mutating func purgeLogs(_ deploymentId: String) {
        var kept = CircularBuffer<Item>()
        var logs = 0
        for item in items {
            switch item {
            case .log(let d, _) where d == deploymentId: continue
            case .dropped(let d, _) where d == deploymentId: continue
            case .log: logs += 1; kept.append(item)
            case .control, .dropped: kept.append(item)
            }
        }
        items = kept
        queuedLogs = logs
        dropped[deploymentId] = nil
    }
}

/// A connection's queue, shared by the relays that fill it and the one task that writes it. Pushing never waits.
final class Outbox: Sendable {
    private struct State {
        var queue: OutboxQueue
        var closed = false
    }
    private let state: Mutex<State>
    private let wake: AsyncStream<Void>.Continuation
    /// Yields once after any push (coalesced): the writer then drains everything queued.
    let wakeups: AsyncStream<Void>

    init(logCapacity: Int) {
        state = Mutex(State(queue: OutboxQueue(logCapacity: logCapacity)))
        (wakeups, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
    }

    func control(_ frame: ByteBuffer) {
        let open = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.queue.pushControl(frame)
            return true
        }
        if open { wake.yield() }
    }

    func log(_ deploymentId: String, _ frame: ByteBuffer) {
        let open = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.queue.pushLog(deploymentId, frame)
            return true
        }
        if open { wake.yield() }
    }

    func lost(_ deploymentId: String, _ count: Int) {
        let open = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.queue.lost(deploymentId, count)
            return true
        }
        if open { wake.yield() }
    }

    func drain() -> [ByteBuffer] { state.withLock { $0.queue.drain() } }

    func purgeLogs(_ deploymentId: String) { state.withLock { $0.queue.purgeLogs(deploymentId) } }

    var droppedTotal: Int { state.withLock { $0.queue.droppedTotal } }

    /// No more frames are taken; the writer ends.
    func close() {
        state.withLock { $0.closed = true }
        wake.finish()
    }
}
