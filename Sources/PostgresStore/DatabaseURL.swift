// `postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?sslmode=MODE&sslrootcert=PATH]` to PostgresNIO's client
// configuration. Parsing only, but for reading the sslrootcert file. sslmode follows libpq's meanings: disable
// (plain), allow and prefer (TLS when the server offers it, certificate not checked), require (TLS, certificate not
// checked), verify-ca (chain checked, not the name), verify-full (chain and host name checked). libpq's default is
// prefer, and so is ours. sslrootcert too is libpq's: a PEM file of the CA certificates to trust instead of the
// system's (and, as libpq does, with sslmode=require it has the chain checked as verify-ca would); `system` names the
// system's store, and as in PostgreSQL 16 makes verify-full the default and refuses a weaker mode. sslcert and
// sslkey are libpq's too: the client certificate (PEM, its chain after it) and its unencrypted PEM key, for a server
// whose pg_hba.conf asks for one (`cert` authentication, or `clientcert=verify-ca|verify-full`). Both or neither; as
// libpq does, the key is refused when others may read it, and both are ignored with sslmode=disable.
public import PostgresNIO
import Foundation
import NIOSSL

public enum DatabaseURL {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        case invalid(String)

        public var description: String {
            switch self {
            case .invalid(let reason):
                "invalid database URL: \(reason) (expected postgres://USER@HOST:PORT/DATABASE?sslmode=MODE[&sslrootcert=PATH][&sslcert=PATH&sslkey=PATH])"
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
        /// sslcert and sslkey: the client certificate's PEM file and its key's (both or neither).
        var clientCertificateFile: String?
        var clientKeyFile: String?
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
        var clientFiles: [String: String] = [:]
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
            case "sslcert", "sslkey":
                guard let value = item.value, !value.isEmpty else { throw .invalid("\(item.name) needs a file's path") }
                clientFiles[item.name] = value
            default:
                throw .invalid("unknown parameter \(item.name); only sslmode, sslrootcert, sslcert and sslkey are understood")
            }
        }
        if clientFiles.count == 1 {
            throw .invalid(clientFiles["sslcert"] == nil ? "sslkey needs sslcert, the certificate it is the key of"
                                                         : "sslcert needs sslkey, its private key's file")
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
                     rootCertificateFile: rootCertificateFile, clientCertificateFile: clientFiles["sslcert"],
                     clientKeyFile: clientFiles["sslkey"], tls: client)
    }

    /// A file's bytes and its stat, read once; a failure names the parameter and the path.
    private static func read(_ path: String, as parameter: String) throws(Failure) -> (bytes: [UInt8], stat: stat) {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .invalid("\(parameter) \(path) cannot be read: \(String(cString: strerror(errno)))") }
        let file = FileHandle(fileDescriptor: fd, closeOnDealloc: true)
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw .invalid("\(parameter) \(path) cannot be read: \(String(cString: strerror(errno)))") }
        do {
            return (Array(try file.readToEnd() ?? Data()), info)
        } catch {
            throw .invalid("\(parameter) \(path) cannot be read: \(error.localizedDescription)")
        }
    }

    /// The parts with the sslrootcert file's CAs as the only trusted roots: read here, once, so that a missing or
    /// unparsable file fails the start with its name (a pool would otherwise retry a failing handshake forever).
    /// The client certificate and key are read here too, and checked: the key's permissions as libpq checks them,
    /// and that the two belong together.
    static func loaded(_ parts: Parts) throws(Failure) -> Parts {
        guard var client = parts.tls else { return parts }
        if let path = parts.rootCertificateFile {
            let bytes = try read(path, as: "sslrootcert").bytes
            guard let certificates = try? NIOSSLCertificate.fromPEMBytes(bytes), !certificates.isEmpty else {
                throw .invalid("sslrootcert \(path) holds no PEM certificate")
            }
            client.trustRoots = .certificates(certificates)
        }
        if let certificatePath = parts.clientCertificateFile, let keyPath = parts.clientKeyFile {
            let bytes = try read(certificatePath, as: "sslcert").bytes
            guard let chain = try? NIOSSLCertificate.fromPEMBytes(bytes), !chain.isEmpty else {
                throw .invalid("sslcert \(certificatePath) holds no PEM certificate")
            }
            let key = try read(keyPath, as: "sslkey")
            // libpq's rule: u=rw (0600) or less when the key is the user's own, u=rw,g=r (0640) or less when root's.
            let mode = key.stat.st_mode & 0o777
            guard key.stat.st_uid == 0 ? mode & 0o037 == 0 : mode & 0o077 == 0 else {
                throw .invalid("sslkey \(keyPath) has group or world access (mode \(String(mode, radix: 8))); it must be 0600 or less "
                               + "(0640 or less when owned by root)")
            }
            guard let privateKey = try? NIOSSLPrivateKey(bytes: key.bytes, format: .pem) else {
                throw .invalid("sslkey \(keyPath) holds no unencrypted PEM private key (an encrypted key's sslpassword is not supported)")
            }
            client.certificateChain = chain.map { .certificate($0) }
            client.privateKey = .privateKey(privateKey)
            do { _ = try NIOSSLContext(configuration: client) } catch {
                // BoringSSL refuses a key that is not the certificate's, and a leaf whose keyUsage lacks digitalSignature.
                throw .invalid("sslcert \(certificatePath) cannot be used with sslkey \(keyPath) (\(error)): is the key the "
                               + "certificate's, and is the certificate one for a client (keyUsage digitalSignature)?")
            }
        }
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
