/// Splits a byte stream into lines for the log ring. Partial lines wait for their newline; a line longer
/// than `maxLineBytes` is cut into pieces of at most that size, at UTF-8 character boundaries.
/// The bytes relayed to the agent's own stdout/stderr are not touched by this; it only feeds the ring.
public struct LineSplitter: Sendable {
    /// Lines longer than this are split: 16 KiB keeps one noisy line from taking a large share of the ring.
    public static let defaultMaxLineBytes = 16 * 1024

    public let maxLineBytes: Int
    private var partial: [UInt8] = []

    public init(maxLineBytes: Int = LineSplitter.defaultMaxLineBytes) {
        precondition(maxLineBytes >= 4, "a line must hold at least one UTF-8 character")
        self.maxLineBytes = maxLineBytes
    }

    /// Bytes of an unfinished line, waiting for more input.
    public var pendingByteCount: Int { partial.count }

    /// Feeds bytes and calls `emit` with each complete line (without its newline), in order.
    public mutating func feed(_ bytes: UnsafeRawBufferPointer, emit: (String) -> Void) {
        var start = 0
        while start < bytes.count {
            if let newline = bytes[start...].firstIndex(of: 0x0A) {
                partial.append(contentsOf: bytes[start..<newline])
                emitOverlong(emit)
                emit(String(decoding: partial, as: UTF8.self))
                partial.removeAll(keepingCapacity: true)
                start = newline + 1
            } else {
                partial.append(contentsOf: bytes[start...])
                start = bytes.count
                emitOverlong(emit)
            }
        }
    }

    /// Feeds the bytes of an array (convenience for tests and callers without raw buffers).
    public mutating func feed(_ bytes: [UInt8], emit: (String) -> Void) {
        bytes.withUnsafeBytes { feed($0, emit: emit) }
    }

    /// Emits the unfinished line, if any (at end of stream).
    public mutating func flush(emit: (String) -> Void) {
        guard !partial.isEmpty else { return }
        emitOverlong(emit)
        emit(String(decoding: partial, as: UTF8.self))
        partial.removeAll(keepingCapacity: true)
    }

    /// While the pending line is longer than the limit, emits its first piece (ending on a character boundary).
    private mutating func emitOverlong(_ emit: (String) -> Void) {
        while partial.count > maxLineBytes {
            var cut = maxLineBytes
            // partial[cut] starts the next piece; step back while it is a UTF-8 continuation byte (10xxxxxx).
            while cut > 0 && partial[cut] & 0xC0 == 0x80 { cut -= 1 }
            if cut == 0 { cut = maxLineBytes }  // not UTF-8 at all: cut anywhere
            emit(String(decoding: partial[..<cut], as: UTF8.self))
            partial.removeFirst(cut)
        }
    }
}
