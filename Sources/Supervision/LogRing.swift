import Synchronization

/// One line of the child's output, numbered so a reader (the /v1/logs endpoint, a WebSocket) can resume
/// after the last sequence it saw.
public struct LogLine: Sendable, Equatable, Codable {
    /// 1, 2, 3, ... in the order the agent read the lines; never reused, even when old lines are dropped.
    public let sequence: UInt64
    /// Unix seconds when the agent read the line.
    public let timestamp: Double
    public let stream: LogStream
    /// The line without its trailing newline.
    public let text: String

    public init(sequence: UInt64, timestamp: Double, stream: LogStream, text: String) {
        self.sequence = sequence
        self.timestamp = timestamp
        self.stream = stream
        self.text = text
    }
}

/// What a reader gets at one instant: the lines it asked for, and the ring's bounds at that same instant.
public struct LogPage: Sendable, Equatable {
    public var lines: [LogLine]
    /// The sequence of the oldest line held; `lastSequence + 1` while nothing is held. A reader that asked for
    /// the lines after `after` lost `oldestSequence - after - 1` lines when that is positive: the ring dropped
    /// them before they were read.
    public var oldestSequence: UInt64
    /// The sequence of the newest line ever appended (0 before the first).
    public var lastSequence: UInt64

    public init(lines: [LogLine], oldestSequence: UInt64, lastSequence: UInt64) {
        self.lines = lines
        self.oldestSequence = oldestSequence
        self.lastSequence = lastSequence
    }
}

/// A bounded, thread-safe ring of the child's latest output lines. The oldest lines go first when either
/// bound is reached: the line count, or the total bytes of text, so a noisy app cannot grow the agent.
///
/// A reader that waits for new lines (the HTTP server's held `/v1/logs?wait=` requests) arms a wake-up with
/// `armWake()`; the next `append` calls the function given to `setWake` once, on the appending thread.
/// Unarmed, an append costs one atomic load more: nothing is done for readers that do not wait.
public final class LogRing: Sendable {
    /// The byte bound used when none is given: 1 MiB of line text.
    public static let defaultMaxBytes = 1 << 20

    public let capacity: Int
    public let maxBytes: Int

    private struct Storage {
        // A circular buffer: `head` is the index of the oldest line, `count` how many are held.
        var slots: [LogLine?]
        var head = 0
        var count = 0
        var bytes = 0
        var lastSequence: UInt64 = 0

        var oldestSequence: UInt64 { lastSequence - UInt64(count) + 1 }

        /// Up to `limit` held lines after `sequence`, oldest first.
        func lines(after sequence: UInt64, limit: Int) -> [LogLine] {
            guard limit > 0, count > 0, sequence < lastSequence else { return [] }
            // Sequences are contiguous within the ring, so the first wanted line's slot is computed, not searched.
            let skip = sequence >= oldestSequence ? Int(sequence - oldestSequence + 1) : 0
            let n = min(limit, count - skip)
            var result: [LogLine] = []
            result.reserveCapacity(n)
            for i in 0..<n {
                if let line = slots[(head + skip + i) % slots.count] { result.append(line) }
            }
            return result
        }
    }
    private let storage: Mutex<Storage>
    private let wakeArmed = Atomic<Bool>(false)
    private let wake = Mutex<(@Sendable () -> Void)?>(nil)

    /// - Parameters:
    ///   - capacity: the most lines held (at least 1).
    ///   - maxBytes: the most bytes of line text held; a single longer line is truncated to fit.
    public init(capacity: Int, maxBytes: Int = LogRing.defaultMaxBytes) {
        precondition(capacity >= 1, "LogRing capacity must be at least 1")
        precondition(maxBytes >= 1, "LogRing maxBytes must be at least 1")
        self.capacity = capacity
        self.maxBytes = maxBytes
        storage = Mutex(Storage(slots: Array(repeating: nil, count: capacity)))
    }

    /// Appends one line (without its newline) and returns its sequence number.
    @discardableResult
    public func append(_ text: String, stream: LogStream, timestamp: Double) -> UInt64 {
        var text = text
        if text.utf8.count > maxBytes {
            text = String(decoding: text.utf8.prefix(maxBytes), as: UTF8.self)
        }
        let size = text.utf8.count
        let sequence = storage.withLock { s in
            while s.count > 0 && (s.count == capacity || s.bytes + size > maxBytes) {
                s.bytes -= s.slots[s.head]?.text.utf8.count ?? 0
                s.slots[s.head] = nil
                s.head = (s.head + 1) % capacity
                s.count -= 1
            }
            s.lastSequence += 1
            let line = LogLine(sequence: s.lastSequence, timestamp: timestamp, stream: stream, text: text)
            s.slots[(s.head + s.count) % capacity] = line
            s.count += 1
            s.bytes += size
            return s.lastSequence
        }
        // After the lock: a reader that armed before it looked at the ring (under the same lock) and found nothing
        // is seen armed here, so no wake-up is lost between its look and its wait.
        if wakeArmed.load(ordering: .acquiring), wakeArmed.exchange(false, ordering: .acquiringAndReleasing) {
            wake.withLock { $0 }?()
        }
        return sequence
    }

    /// The function the next append after `armWake()` calls (replacing any earlier one; nil removes it).
    /// It runs on the appending thread, the supervisor's: it must not block.
    public func setWake(_ body: (@Sendable () -> Void)?) { wake.withLock { $0 = body } }

    /// Makes the next append call the wake function, once. Arm before looking for new lines, so that a line
    /// appended between the look and the wait is not missed.
    public func armWake() { wakeArmed.store(true, ordering: .releasing) }

    /// Up to `limit` held lines whose sequence is greater than `sequence`, oldest first. A reader that fell
    /// behind gets the oldest lines still held; a gap in the sequence numbers tells it lines were dropped.
    public func lines(after sequence: UInt64, limit: Int) -> [LogLine] {
        storage.withLock { $0.lines(after: sequence, limit: limit) }
    }

    /// `lines(after:limit:)` with the ring's bounds, read in one look.
    public func page(after sequence: UInt64, limit: Int) -> LogPage {
        storage.withLock { s in
            LogPage(lines: s.lines(after: sequence, limit: limit), oldestSequence: s.oldestSequence, lastSequence: s.lastSequence)
        }
    }

    /// The newest `count` lines held (all of them when the ring holds fewer), oldest first, with the ring's bounds.
    public func tail(_ count: Int) -> LogPage {
        storage.withLock { s in
            let n = max(0, min(count, s.count))
            return LogPage(lines: s.lines(after: s.lastSequence - UInt64(n), limit: n),
                           oldestSequence: s.oldestSequence, lastSequence: s.lastSequence)
        }
    }

    /// The sequence of the newest line ever appended (0 before the first).
    public var lastSequence: UInt64 { storage.withLock { $0.lastSequence } }

    /// How many lines and bytes of text the ring holds now.
    public var usage: (lines: Int, bytes: Int) { storage.withLock { ($0.count, $0.bytes) } }
}
