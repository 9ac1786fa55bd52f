// Deadlines for the cluster's dedicated connections (the change listener's, the leadership's). A partitioned server
// never answers, so a server-side statement_timeout cannot help: the client gives up, and closes the connection,
// which fails whatever is in flight on it.
import Logging
import PostgresNIO

/// Deadlines for one statement, or for connecting.
enum Statement {
    struct TimedOut: Error, CustomStringConvertible {
        var timeout: Duration
        var description: String { "PostgreSQL did not answer within \(timeout); the connection was closed" }
    }

    /// `body`'s value, or nil when `timeout` passed first. Then `body` is cancelled and `onTimeout` runs before the wait
    /// for it: a statement blocked on a silent server ends only once its connection is closed, which `onTimeout` does.
    static func race<T: Sendable>(_ timeout: Duration, onTimeout: () -> Void = {},
                                  _ body: @escaping @Sendable () async throws -> T) async throws -> T? {
        try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask { try await body() }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            defer { group.cancelAll() }
            guard let first = try await group.next(), let value = first else {
                onTimeout()
                return nil
            }
            return value
        }
    }

    /// Runs `body`; if it has not finished after `timeout`, closes the connection (which fails the statements in
    /// flight on it) and throws TimedOut.
    static func timed<T: Sendable>(_ timeout: Duration, _ connection: PostgresConnection,
                                   _ body: @escaping @Sendable () async throws -> T) async throws -> T {
        guard let value = try await race(timeout, onTimeout: { connection.close().whenComplete { _ in } }, body) else {
            throw TimedOut(timeout: timeout)
        }
        return value
    }

    /// Connects, or fails after `timeout` (a partitioned server may never answer the handshake).
    static func connect(_ configuration: PostgresConnection.Configuration, id: Int, timeout: Duration,
                        logger: Logger) async throws -> PostgresConnection {
        try await withThrowingTaskGroup(of: PostgresConnection?.self) { group in
            group.addTask { try await PostgresConnection.connect(configuration: configuration, id: id, logger: logger) }
            group.addTask {
                try await Task.sleep(for: timeout)
                return nil
            }
            guard let first = try await group.next(), let connection = first else {
                group.cancelAll()
                // A connection made just as the timer fired is closed, not dropped (PostgresNIO asserts on that).
                while let late = try? await group.next() { try? await late?.close() }
                throw TimedOut(timeout: timeout)
            }
            group.cancelAll()
            return connection
        }
    }
}
