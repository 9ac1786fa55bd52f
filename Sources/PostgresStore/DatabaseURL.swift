// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE]` to PostgresNIO's client configuration. Pure:
// parsing only. sslmode follows libpq's meanings: disable (plain), allow and prefer (TLS when the server offers it,
// certificate not checked), require (TLS, certificate not checked), verify-ca (chain checked, not the name),
// verify-full (chain and host name checked). libpq's default is prefer, and so is ours.
public import PostgresNIO
import Foundation
import NIOSSL

public enum DatabaseURL {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case invalid(String)

        public var description: String {
            switch self {
            case .invalid(let reason): "invalid database URL: \(reason) (expected postgres://USER@HOST:PORT/DATABASE?sslmode=MODE)"
            }
        }
    }

    public static let sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

    /// The client configuration the URL names. The password is kept only in the configuration: never log `text`.
    public static func configuration(_ text: String) throws(Failure) -> PostgresClient.Configuration {
        guard let components = URLComponents(string: text) else { throw .invalid("not a URL") }
        guard components.scheme == "postgres" || components.scheme == "postgresql" else {
            throw .invalid("the scheme must be postgres:// or postgresql://")
        }
        guard let host = components.host, !host.isEmpty else { throw .invalid("no host") }
        guard let user = components.user, !user.isEmpty else { throw .invalid("no user") }
        let database = String(components.path.drop { $0 == "/" })
        guard !database.isEmpty, !database.contains("/") else { throw .invalid("no database name after the host") }
        let port = components.port ?? 5432
        guard (1...65535).contains(port) else { throw .invalid("port \(port) is out of range") }
        var sslMode = "prefer"
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, sslModes.contains(value) else {
                    throw .invalid("sslmode must be one of \(sslModes.joined(separator: ", "))")
                }
                sslMode = value
            default:
                throw .invalid("unknown parameter \(item.name); only sslmode is understood")
            }
        }
        let tls: PostgresClient.Configuration.TLS
        var client = TLSConfiguration.makeClientConfiguration()
        switch sslMode {
        case "disable":
            tls = .disable
        case "allow", "prefer":
            client.certificateVerification = .none
            tls = .prefer(client)
        case "require":
            client.certificateVerification = .none
            tls = .require(client)
        case "verify-ca":
            client.certificateVerification = .noHostnameVerification
            tls = .require(client)
        default:
            client.certificateVerification = .fullVerification
            tls = .require(client)
        }
        // URLComponents keeps percent-escapes in user and password; the server wants them decoded.
        let username = components.percentEncodedUser?.removingPercentEncoding ?? user
        let password = components.percentEncodedPassword.map { $0.removingPercentEncoding ?? $0 }
        return PostgresClient.Configuration(host: host, port: port, username: username, password: password,
                                            database: database, tls: tls)
    }

    /// The same, with `password` (PGPASSWORD, as libpq reads it) when the URL holds none: a password on a command
    /// line is readable by every local user in /proc.
    public static func configuration(_ text: String, password: String?) throws(Failure) -> PostgresClient.Configuration {
        var configuration = try configuration(text)
        if configuration.password == nil, let password, !password.isEmpty { configuration.password = password }
        return configuration
    }

    /// The URL with its password masked, for logs and errors.
    public static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text) else { return "(unparsable)" }
        if components.password != nil { components.password = "***" }
        return components.string ?? "(unparsable)"
    }
}
