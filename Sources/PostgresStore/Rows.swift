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
/// firewall dropping the packets), or every attempt was refused (a certificate the client does not trust, a
/// pg_hba.conf without an entry for this client, a wrong password): the pool retries those without end too.
public struct PostgresUnreachable: Error, CustomStringConvertible {
    public var description: String
    /// The server refused a probe's connection (`probed`): a final answer, which waiting longer does not change.
    public private(set) var refused = false
    /// "PostgreSQL at HOST:PORT", and "(database D, user U)".
    private let place: String, session: String
    private let timeout: Duration

    init(configuration: PostgresClient.Configuration, timeout: Duration) {
        place = "PostgreSQL at " + (configuration.unixSocketPath ?? "\(configuration.host ?? "?"):\(configuration.port ?? 5432)")
        session = "(database \(configuration.database ?? "?"), user \(configuration.username))"
        self.timeout = timeout
        description = "\(place) did not answer within \(timeout.components.seconds) s \(session): check the URL's host, port and "
            + "sslmode, and that the server runs and accepts this host"
    }

    /// The same, with why one connection attempt of `configuration` (the URL's, as the pool's) fails: the pool logs
    /// its failures only at info. Nothing is added when the attempt connects, or meets a silent server (5 s).
    func probed(_ configuration: PostgresConnection.Configuration, logger: Logger) async -> PostgresUnreachable {
        var probed = self
        do {
            let connection = try await Statement.connect(configuration, id: 0, timeout: .seconds(5), logger: logger)
            try? await connection.close()
        } catch is Statement.TimedOut {
            // A silent server: "did not answer" says it already.
        } catch {
            probed.description = "\(place) refused the connection \(session): " + Self.reason(error, host: configuration.host)
            probed.refused = true
        }
        return probed
    }

    /// What a refused connection's error says, for a person: the server's own message when it sent one (its
    /// password is never in it), a certificate the client refused in words, else the error's details.
    static func reason(_ error: any Error, host: String?) -> String {
        guard let psql = error as? PSQLError else { return String(describing: error) }
        if let message = psql.serverInfo?[.message] { return message }
        let details = psql.underlying.map { String(reflecting: $0) } ?? String(reflecting: psql)
        if details.contains("CERTIFICATE_VERIFY_FAILED") {
            return "the server's certificate could not be verified (CERTIFICATE_VERIFY_FAILED): is sslrootcert its CA?"
        }
        if details.contains("TLSV1_ALERT_UNKNOWN_CA") || details.contains("TLSV1_ALERT_CERTIFICATE_REQUIRED")
            || details.contains("SSLV3_ALERT_BAD_CERTIFICATE") {
            return "the server refused the client certificate (\(details.contains("UNKNOWN_CA") ? "TLSV1_ALERT_UNKNOWN_CA" : "bad certificate")): "
                + "is sslcert signed by a CA in the server's ssl_ca_file?"
        }
        if details.contains("Connection refused") {
            return "nothing accepts connections there (connection refused): check the URL's host and port, and that the server runs"
        }
        if details.contains("failedToValidateHostname") {
            return "the server's certificate is not for \(host ?? "this host") (sslmode=verify-full checks the name; verify-ca does not)"
        }
        return details
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
