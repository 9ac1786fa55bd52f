// What a `/v1/logs` request asks for, and the rules for the requests the server holds until a line comes:
// how many may wait, which wake when a line is appended, which expire. Pure: no I/O, `now` is given.

/// A validated `/v1/logs` query.
public struct LogQuery: Sendable, Equatable {
    public enum Start: Sendable, Equatable {
        /// The lines after this sequence (`after=`, 0 when absent).
        case after(UInt64)
        /// The newest N lines held (`tail=N`).
        case tail(Int)
    }

    public var start: Start
    /// The most lines answered (`limit=`, or N for `tail=N`).
    public var limit: Int
    /// How long to hold the request when no line is there to answer with (`wait=`); zero answers at once.
    public var wait: Duration

    public init(start: Start, limit: Int, wait: Duration = .zero) {
        self.start = start
        self.limit = limit
        self.wait = wait
    }
}

/// The held requests of one agent, by an id the server chooses (the connection). Each waits for a line
/// after its own sequence, or for its deadline, whichever comes first.
public struct LogWaitList<ID: Hashable & Sendable>: Sendable {
    public struct Entry: Sendable, Equatable {
        public var id: ID
        /// The request wants a line with a greater sequence than this.
        public var after: UInt64
        public var deadline: Duration
    }

    public enum Admission: Sendable, Equatable {
        case held
        /// `capacity` requests are held already.
        case full
        /// The server is stopping: answer now.
        case closed
    }

    /// The most requests held at once: each pins a connection, so a client cannot hold them all.
    public let capacity: Int
    public private(set) var entries: [Entry] = []
    public private(set) var isClosed = false

    public init(capacity: Int) {
        self.capacity = capacity
    }

    public var count: Int { entries.count }

    /// Holds `id` until a line after `after` is appended or `deadline` passes.
    public mutating func add(_ id: ID, after: UInt64, deadline: Duration) -> Admission {
        if isClosed { return .closed }
        guard entries.count < capacity else { return .full }
        entries.append(Entry(id: id, after: after, deadline: deadline))
        return .held
    }

    /// The requests to answer now that the newest line is `lastSequence`; they leave the list.
    public mutating func wake(lastSequence: UInt64) -> [ID] {
        take { $0.after < lastSequence }
    }

    /// The requests whose deadline is `now` or earlier; they leave the list.
    public mutating func expire(now: Duration) -> [ID] {
        take { $0.deadline <= now }
    }

    /// When the earliest held request is due (nil when none is held).
    public var nextDeadline: Duration? { entries.lazy.map(\.deadline).min() }

    /// Every held request, to answer at once; later `add`s answer `.closed`.
    public mutating func close() -> [ID] {
        isClosed = true
        return take { _ in true }
    }

    private mutating func take(where due: (Entry) -> Bool) -> [ID] {
        var taken: [ID] = []
        entries.removeAll { entry in
            guard due(entry) else { return false }
            taken.append(entry.id)
            return true
        }
        return taken
    }
}
