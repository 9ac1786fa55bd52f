// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE&sslrootcert=PATH]` to PostgresNIO's client
// configuration. Parsing only, but for reading the sslrootcert file. sslmode follows libpq's meanings: disable
// (plain), allow and prefer (TLS when the server offers it, certificate not checked), require (TLS, certificate not
// checked), verify-ca (chain checked, not the name), verify-full (chain and host name checked). libpq's default is
// prefer, and so is ours. sslrootcert too is libpq's: a PEM file of the CA certificates to trust instead of the
// system's (and, as libpq does, with sslmode=require it has the chain checked as verify-ca would); `system` names the
// system's store, and as in PostgreSQL 16 makes verify-full the default and refuses a weaker mode.
public import PostgresNIO
import Foundation
import NIOSSL

public enum DatabaseURL {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case invalid(String)

        public var description: String {
            switch self {
            case .invalid(let reason):
                "invalid database URL: \(reason) (expected postgres://USER@HOST:PORT/DATABASE?sslmode=MODE[&sslrootcert=PATH])"
            }
        }
    }

    public static let sslModes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]

    /// What a URL names.
    struct Parts {
        var host: String
        var port: Int
        var username: String
        var password: String?
        var database: String
        var sslMode: String
        /// sslrootcert: the PEM file of the CAs to trust, nil for the system's store (also for `system`).
        var rootCertificateFile: String?
        /// For every mode but disable: the TLS settings libpq's meaning of the mode asks for, trusting the system's
        /// store (`loaded(_:)` puts the sslrootcert file's CAs in its place).
        var tls: TLSConfiguration?
    }

    static func parts(_ text: String, password fallback: String? = nil) throws(Failure) -> Parts {
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
        var sslMode: String?
        var rootCertificate: String?
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslmode":
                guard let value = item.value, sslModes.contains(value) else {
                    throw .invalid("sslmode must be one of \(sslModes.joined(separator: ", "))")
                }
                sslMode = value
            case "sslrootcert":
                guard let value = item.value, !value.isEmpty else {
                    throw .invalid("sslrootcert needs a file's path (or system)")
                }
                rootCertificate = value
            default:
                throw .invalid("unknown parameter \(item.name); only sslmode and sslrootcert are understood")
            }
        }
        if rootCertificate == "system" {
            if let sslMode, sslMode != "verify-full" {
                throw .invalid("sslmode \(sslMode) is too weak for sslrootcert=system; use verify-full")
            }
            sslMode = "verify-full"
        }
        let mode = sslMode ?? "prefer"
        let rootCertificateFile = rootCertificate == "system" ? nil : rootCertificate
        var client: TLSConfiguration? = TLSConfiguration.makeClientConfiguration()
        switch mode {
        case "disable": client = nil
        case "require" where rootCertificateFile != nil: client?.certificateVerification = .noHostnameVerification
        case "allow", "prefer", "require": client?.certificateVerification = .none
        case "verify-ca": client?.certificateVerification = .noHostnameVerification
        default: client?.certificateVerification = .fullVerification
        }
        // URLComponents keeps percent-escapes in user and password; the server wants them decoded.
        let username = components.percentEncodedUser?.removingPercentEncoding ?? user
        var password = components.percentEncodedPassword.map { $0.removingPercentEncoding ?? $0 }
        if password == nil, let fallback, !fallback.isEmpty { password = fallback }
        return Parts(host: host, port: port, username: username, password: password, database: database, sslMode: mode,
                     rootCertificateFile: rootCertificateFile, tls: client)
    }

    /// The parts with the sslrootcert file's CAs as the only trusted roots: read here, once, so that a missing or
    /// unparsable file fails the start with its name (a pool would otherwise retry a failing handshake forever).
    static func loaded(_ parts: Parts) throws(Failure) -> Parts {
        guard let path = parts.rootCertificateFile, var client = parts.tls else { return parts }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid("sslrootcert \(path) cannot be read: \(String(cString: strerror(errno)))") }
        let file = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        let bytes: [UInt8]
        do {
            bytes = Array(try file.readToEnd() ?? Data())
        } catch {
            throw .invalid("sslrootcert \(path) cannot be read: \(error.localizedDescription)")
        }
        guard let certificates = try? NIOSSLCertificate.fromPEMBytes(bytes), !certificates.isEmpty else {
            throw .invalid("sslrootcert \(path) holds no PEM certificate")
        }
        client.trustRoots = .certificates(certificates)
        var loaded = parts
        loaded.tls = client
        return loaded
    }

    /// The client configuration the URL names. The password is kept only in the configuration: never log `text`.
    public static func configuration(_ text: String) throws(Failure) -> PostgresClient.Configuration {
        try configuration(text, password: nil)
    }

    /// One connection's configuration (the leadership's and the change listener's dedicated sessions), with the
    /// same TLS as the pool's.
    public static func connectionConfiguration(_ text: String, password: String?) throws -> PostgresConnection.Configuration {
        let parts = try loaded(parts(text, password: password))
        let tls: PostgresConnection.Configuration.TLS
        switch (parts.sslMode, parts.tls) {
        case (_, nil): tls = .disable
        case ("allow", let client?), ("prefer", let client?): tls = .prefer(try NIOSSLContext(configuration: client))
        case (_, let client?): tls = .require(try NIOSSLContext(configuration: client))
        }
        return PostgresConnection.Configuration(host: parts.host, port: parts.port, username: parts.username, password: parts.password,
                                                database: parts.database, tls: tls)
    }

    /// The same, with `password` (PGPASSWORD, as libpq reads it) when the URL holds none: a password on a command
    /// line is readable by every local user in /proc.
    public static func configuration(_ text: String, password: String?) throws(Failure) -> PostgresClient.Configuration {
        let parts = try loaded(parts(text, password: password))
        let tls: PostgresClient.Configuration.TLS
        switch (parts.sslMode, parts.tls) {
        case (_, nil): tls = .disable
        case ("allow", let client?), ("prefer", let client?): tls = .prefer(client)
        case (_, let client?): tls = .require(client)
        }
        return PostgresClient.Configuration(host: parts.host, port: parts.port, username: parts.username, password: parts.password,
                                            database: parts.database, tls: tls)
    }

    /// The URL with its password masked, for logs and errors.
    public static func redacted(_ text: String) -> String {
        guard var components = URLComponents(string: text) else { return "(unparsable)" }
        if components.password != nil { components.password = "***" }
        return components.string ?? "(unparsable)"
    }
}
