// Small helpers over PostgresNIO's rows and queries, so the store's methods read like SQLiteStore's.
import ControlPlane
import Foundation
import Logging
import PostgresNIO

/// The connection closed beneath a transaction (the server ended it, or the network did); nothing of it committed.
public struct PostgresConnectionLost: Error, CustomStringConvertible {
    public var description: String { "the connection to PostgreSQL closed during the transaction; nothing of it was committed" }
}

/// The server did not answer the store's first contact in time (a wrong host or port, a server that is down, a
/// firewall dropping the packets).
public struct PostgresUnreachable: Error, CustomStringConvertible {
    public var description: String

    init(configuration: PostgresClient.Configuration, timeout: Duration) {
        let place = configuration.unixSocketPath ?? "\(configuration.host ?? "?"):\(configuration.port ?? 5432)"
        description = "PostgreSQL at \(place) did not answer within \(timeout.components.seconds) s "
            + "(database \(configuration.database ?? "?"), user \(configuration.username)): check the URL's host, port and "
            + "sslmode, and that the server runs and accepts this host"
    }
}

extension PostgresConnection {
    /// Every row of the query's answer.
    func rows(_ query: PostgresQuery, _ logger: Logger) async throws -> [PostgresRandomAccessRow] {
        // PostgresNIO 1.33.2 was seen never to answer a statement sent on a connection already closed.
        guard !isClosed else { throw PostgresConnectionLost() }
        return try await self.query(query, logger: logger).collect().map { $0.makeRandomAccess() }
    }

    /// Runs a statement and drains its answer.
    func run(_ query: PostgresQuery, _ logger: Logger) async throws {
        guard !isClosed else { throw PostgresConnectionLost() }
        _ = try await self.query(query, logger: logger).collect()
    }
}

extension PostgresRandomAccessRow {
    func string(_ column: String) throws -> String { try self[column].decode(String.self) }
    func optionalString(_ column: String) throws -> String? { try self[column].decode(String?.self) }
    func bool(_ column: String) throws -> Bool { try self[column].decode(Bool.self) }
    func int64(_ column: String) throws -> Int64 { try self[column].decode(Int64.self) }
    func int(_ column: String) throws -> Int { Int(try int64(column)) }
    func optionalInt64(_ column: String) throws -> Int64? { try self[column].decode(Int64?.self) }
    func optionalInt(_ column: String) throws -> Int? { try optionalInt64(column).map { Int($0) } }
    func double(_ column: String) throws -> Double { try self[column].decode(Double.self) }
    func optionalDouble(_ column: String) throws -> Double? { try self[column].decode(Double?.self) }
    func date(_ column: String) throws -> Date { try self[column].decode(Date.self) }
    func optionalDate(_ column: String) throws -> Date? { try self[column].decode(Date?.self) }

    /// A stored enum value; an unknown one is a damaged row, reported with its table, id and column.
    func decoded<Value: RawRepresentable<String>>(_ column: String, table: String) throws -> Value {
        let raw = try string(column)
        guard let value = Value(rawValue: raw) else {
            throw StoreError.invalidRow(table: table, id: contains("id") ? (try? string("id")) ?? "?" : "?", column: column, value: raw)
        }
        return value
    }
}
