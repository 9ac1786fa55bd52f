// What a connection has yet to write. A slow client must never slow the agent, the relay or other clients: log
// lines go into a bounded queue per connection, and a line that finds it full is dropped and counted; the count
// goes out as `logs_dropped {deploymentId, count}` before the deployment's next line (or as soon as the queue has
// drained). Control frames (confirmations, errors, status, metrics, pong) are few and never dropped.
//
// A subscription with `batch: true` queues its lines the same way, one item each (the bound, the drops and the
// purge count lines, batched or not), and they are packed into `log_batch` frames when the queue is written: a
// browser that would spend its main thread on one message and one JSON.parse per line gets a few frames a second.
import NIOCore
import Synchronization

/// The queue's rules, pure.
struct OutboxQueue: Sendable {
    enum Item: Sendable, Equatable {
        case control(ByteBuffer)
        case log(deploymentId: String, ByteBuffer)
        /// A line of a batched subscription: its JSON object, packed into a `log_batch` when written.
        case batchLine(deploymentId: String, ByteBuffer)
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

    /// A `log_batch` holds at most this many lines and about this many bytes of them (a line longer than that goes
    /// alone): a frame the browser parses in well under a millisecond, whatever the rate.
    static let maxBatchLines = 500
    static let maxBatchBytes = 64 * 1024
    /// Batched lines wait this long after the previous write that held batches: at most 20 writes of them a second
    /// while lines keep coming, so that a flood packs into a few frames (a line waits at most this long).
    static let batchInterval: Duration = .milliseconds(50)
    /// When batched lines were last written (the pace above).
    private(set) var lastBatchAt: ContinuousClock.Instant?

    init(logCapacity: Int) { self.logCapacity = max(1, logCapacity) }

    var isEmpty: Bool { items.isEmpty && dropped.isEmpty }

    mutating func pushControl(_ frame: ByteBuffer) {
        items.append(.control(frame))
    }

    /// Queues a line; false when it was dropped (the queue is full).
    @discardableResult
    mutating func pushLog(_ deploymentId: String, _ frame: ByteBuffer) -> Bool {
        pushLine(deploymentId, .log(deploymentId: deploymentId, frame))
    }

    /// Queues a line of a batched subscription (its JSON object); false when it was dropped (the queue is full).
    @discardableResult
    mutating func pushBatchLine(_ deploymentId: String, _ line: ByteBuffer) -> Bool {
        pushLine(deploymentId, .batchLine(deploymentId: deploymentId, line))
    }

    /// One bound and one drop count for both kinds of line: a full queue drops the line and counts it; the count
    /// goes out ahead of the deployment's next line that fits.
    private mutating func pushLine(_ deploymentId: String, _ item: Item) -> Bool {
        guard queuedLogs < logCapacity else {
            dropped[deploymentId, default: 0] += 1
            droppedTotal += 1
            return false
        }
        if let count = dropped.removeValue(forKey: deploymentId) {
            items.append(.dropped(deploymentId: deploymentId, count: count))
        }
        items.append(item)
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

    /// What to write now, and when to drain again though nothing new comes (batched lines held back by the pace).
    struct Drained: Equatable {
        var frames: [ByteBuffer]
        var again: ContinuousClock.Instant?
    }

    /// The frames to write at `now`, in order. Batched lines are packed into `log_batch` frames, unless batched lines
    /// were written less than `batchInterval` ago: then only what is queued before the first of them goes out now,
    /// and the rest (the lines, and whatever came after them, order kept) at `again`.
    mutating func drain(now: ContinuousClock.Instant) -> Drained {
        let ahead = items.prefix { if case .batchLine = $0 { false } else { true } }.count
        if let last = lastBatchAt, now < last + Self.batchInterval, ahead < items.count {
            var out: [ByteBuffer] = []
            for _ in 0..<ahead {
                guard let item = items.popFirst() else { break }
                switch item {
                case .control(let frame): out.append(frame)
                case .log(_, let frame): out.append(frame); queuedLogs -= 1
                case .batchLine: break
                case .dropped(let deployment, let count): out.append(LiveFrames.dropped(deployment, count))
                }
            }
            return Drained(frames: out, again: last + Self.batchInterval)
        }
        let (frames, batched) = drainAll()
        if batched { lastBatchAt = now }
        return Drained(frames: frames, again: nil)
    }

    /// Everything queued, at once (no pace): `drain(now:)` when no batch waits.
    mutating func drain() -> [ByteBuffer] { drainAll().frames }

    /// Everything to write, in order; the drop counts still unreported come last. A batched line joins the open
    /// `log_batch` of its deployment, which stays where its first line was: lines move ahead of other deployments'
    /// lines only. A control frame, or a drop count of the deployment, closes it (what follows goes in a later
    /// batch), and so do the size bounds.
    private mutating func drainAll() -> (frames: [ByteBuffer], batched: Bool) {
        enum Slot {
            case frame(ByteBuffer)
            case batch(deploymentId: String, lines: [ByteBuffer], bytes: Int)
        }
        var slots: [Slot] = []
        slots.reserveCapacity(items.count + dropped.count)
        var open: [String: Int] = [:]
        var batched = false
        while let item = items.popFirst() {
            switch item {
            case .control(let frame):
                slots.append(.frame(frame))
                open = [:]
            case .log(_, let frame):
                slots.append(.frame(frame))
            case .dropped(let deployment, let count):
                open[deployment] = nil
                slots.append(.frame(LiveFrames.dropped(deployment, count)))
            case .batchLine(let deployment, let line):
                batched = true
                if let index = open[deployment], case .batch(_, var lines, let bytes) = slots[index],
                   lines.count < Self.maxBatchLines, bytes + line.readableBytes <= Self.maxBatchBytes {
                    lines.append(line)
                    slots[index] = .batch(deploymentId: deployment, lines: lines, bytes: bytes + line.readableBytes)
                } else {
                    open[deployment] = slots.count
                    slots.append(.batch(deploymentId: deployment, lines: [line], bytes: line.readableBytes))
                }
            }
        }
        queuedLogs = 0
        var out = slots.map { slot -> ByteBuffer in
            switch slot {
            case .frame(let frame): frame
            case .batch(let deployment, let lines, _): LiveFrames.logBatch(deployment, lines)
            }
        }
        for (deployment, count) in dropped.sorted(by: { $0.key < $1.key }) { out.append(LiveFrames.dropped(deployment, count)) }
        dropped = [:]
        return (out, batched)
    }

    /// After `unsubscribe_logs`: nothing more of the deployment goes out, queued or not.
    mutating func purgeLogs(_ deploymentId: String) {
        var kept = CircularBuffer<Item>()
        var logs = 0
        for item in items {
            switch item {
            case .log(let d, _) where d == deploymentId: continue
            case .batchLine(let d, _) where d == deploymentId: continue
            case .dropped(let d, _) where d == deploymentId: continue
            case .log, .batchLine: logs += 1; kept.append(item)
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

    func batchLine(_ deploymentId: String, _ line: ByteBuffer) {
        let open = state.withLock { s -> Bool in
            guard !s.closed else { return false }
            s.queue.pushBatchLine(deploymentId, line)
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

    func drain(now: ContinuousClock.Instant) -> OutboxQueue.Drained { state.withLock { $0.queue.drain(now: now) } }

    func purgeLogs(_ deploymentId: String) { state.withLock { $0.queue.purgeLogs(deploymentId) } }

    var droppedTotal: Int { state.withLock { $0.queue.droppedTotal } }

    /// No more frames are taken; the writer ends.
    func close() {
        state.withLock { $0.closed = true }
        wake.finish()
    }
}
