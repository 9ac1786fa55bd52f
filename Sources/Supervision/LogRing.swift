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

/// A bounded, thread-safe ring of the child's latest output lines. The oldest lines go first when either
/// bound is reached: the line count, or the total bytes of text, so a noisy app cannot grow the agent.
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
    }
    private let storage: Mutex<Storage>

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
        return storage.withLock { s in
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
    }

    /// Up to `limit` held lines whose sequence is greater than `sequence`, oldest first. A reader that fell
    /// behind gets the oldest lines still held; a gap in the sequence numbers tells it lines were dropped.
    public func lines(after sequence: UInt64, limit: Int) -> [LogLine] {
        guard limit > 0 else { return [] }
        return storage.withLock { s in
            guard s.count > 0, sequence < s.lastSequence else { return [] }
            let oldest = s.lastSequence - UInt64(s.count) + 1
            // Sequences are contiguous within the ring, so the first wanted line's slot is computed, not searched.
            let skip = sequence >= oldest ? Int(sequence - oldest + 1) : 0
            let n = min(limit, s.count - skip)
            var result: [LogLine] = []
            result.reserveCapacity(n)
            for i in 0..<n {
                if let line = s.slots[(s.head + skip + i) % capacity] { result.append(line) }
            }
            return result
        }
    }

    /// The sequence of the newest line ever appended (0 before the first).
    public var lastSequence: UInt64 { storage.withLock { $0.lastSequence } }

    /// How many lines and bytes of text the ring holds now.
    public var usage: (lines: Int, bytes: Int) { storage.withLock { ($0.count, $0.bytes) } }
}
