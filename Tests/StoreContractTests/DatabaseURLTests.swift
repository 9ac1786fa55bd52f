// The database URL's parsing (pure): what `--database` will accept, and the errors a user sees; and a URL whose
// server does not answer.
import Foundation
import PostgresNIO
@testable import PostgresStore
import Testing
import TestSupport

@Suite("Database URL")
struct DatabaseURLTests {
    @Test func fullURL() throws {
        let c = try DatabaseURL.configuration("postgres://coderunner:p%40ss@db.example.com:6543/cr?sslmode=disable")
        #expect(c.host == "db.example.com")
        #expect(c.port == 6543)
        #expect(c.username == "coderunner")
        #expect(c.password == "p@ss")
        #expect(c.database == "cr")
    }

    @Test func defaults() throws {
        let c = try DatabaseURL.configuration("postgresql://cr@localhost/cr")
        #expect(c.port == 5432)
        #expect(c.password == nil)
    }

    @Test(arguments: DatabaseURL.sslModes)
    func everySSLModeIsAccepted(_ mode: String) throws {
        _ = try DatabaseURL.configuration("postgres://cr@localhost/cr?sslmode=\(mode)")
    }

    @Test(arguments: [
        ("mysql://cr@localhost/cr", "the scheme must be postgres:// or postgresql://"),
        ("postgres://localhost/cr", "no user"),
        ("postgres://cr@localhost", "no database name after the host"),
        ("postgres://cr@localhost/cr?sslmode=sometimes", "sslmode must be one of disable, allow, prefer, require, verify-ca, verify-full"),
        ("postgres://cr@localhost/cr?connect_timeout=3", "unknown parameter connect_timeout; only sslmode, sslrootcert, sslcert and sslkey are understood"),
        ("postgres://cr@localhost/cr?sslcert=/etc/client.crt", "sslcert needs sslkey, its private key's file"),
        ("postgres://cr@localhost/cr?sslkey=/etc/client.key", "sslkey needs sslcert, the certificate it is the key of"),
        ("postgres://cr@localhost/cr?sslcert=&sslkey=/k", "sslcert needs a file's path"),
        ("postgres://cr@localhost/cr?sslrootcert=", "sslrootcert needs a file's path (or system)"),
        ("postgres://cr@localhost/cr?sslmode=require&sslrootcert=system", "sslmode require is too weak for sslrootcert=system; use verify-full"),
    ])
    func refused(_ url: String, _ reason: String) {
        #expect(throws: DatabaseURL.Failure.invalid(reason)) { try DatabaseURL.configuration(url) }
    }

    /// PGPASSWORD fills in a password the URL does not hold; a URL's own password wins.
    @Test func aPasswordFromTheEnvironment() throws {
        #expect(try DatabaseURL.configuration("postgres://cr@db/cr", password: "from-env").password == "from-env")
        #expect(try DatabaseURL.configuration("postgres://cr:in-url@db/cr", password: "from-env").password == "in-url")
        #expect(try DatabaseURL.configuration("postgres://cr@db/cr", password: "").password == nil)
        #expect(try DatabaseURL.configuration("postgres://cr@db/cr", password: nil).password == nil)
    }

    /// A server that does not answer fails the start with where it was looked for, instead of a wait without end
    /// (PostgresNIO's pool retries an unreachable server forever).
    @Test func anUnreachableServerFailsTheStartWithItsAddress() async throws {
        let port = TestSupport.freeLoopbackPort()  // nothing listens there
        let configuration = try DatabaseURL.configuration("postgres://cr@127.0.0.1:\(port)/coderunner?sslmode=disable")
        let clock = ContinuousClock()
        let started = clock.now
        do {
            _ = try await PostgresStore(configuration: configuration, startTimeout: .seconds(1))
            Issue.record("a store opened on a closed port")
        } catch let error as PostgresUnreachable {
            #expect(error.description == "PostgreSQL at 127.0.0.1:\(port) did not answer within 1 s (database coderunner, user cr): "
                    + "check the URL's host, port and sslmode, and that the server runs and accepts this host")
        }
        #expect(clock.now - started < .seconds(10))
    }

    /// With its probe, as serve opens it: a closed port is a refusal, said plainly, after the probe's 2 s rather than
    /// the start's whole timeout.
    @Test func aClosedPortFailsTheStartAtTheProbeWithAPlainReason() async throws {
        let port = TestSupport.freeLoopbackPort()  // nothing listens there
        let url = "postgres://cr@127.0.0.1:\(port)/coderunner?sslmode=disable"
        let clock = ContinuousClock()
        let started = clock.now
        do {
            _ = try await PostgresStore(configuration: try DatabaseURL.configuration(url), startTimeout: .seconds(20),
                                        probe: try DatabaseURL.connectionConfiguration(url, password: nil))
            Issue.record("a store opened on a closed port")
        } catch let error as PostgresUnreachable {
            #expect(error.refused)
            #expect(error.description == "PostgreSQL at 127.0.0.1:\(port) refused the connection (database coderunner, user cr): "
                    + "nothing accepts connections there (connection refused): check the URL's host and port, and that the server runs")
        }
        #expect(clock.now - started < .seconds(10))
    }

    /// sslrootcert, as libpq means it: the CAs to trust instead of the system's. With require it has the chain
    /// checked (verify-ca's check); with allow and prefer it is not used; `system` is the system's store and makes
    /// verify-full the default.
    @Test(arguments: [
        ("sslmode=prefer", CertificateVerification.none, false),
        ("sslmode=require", .none, false),
        ("sslmode=verify-ca", .noHostnameVerification, false),
        ("sslmode=verify-full", .fullVerification, false),
        ("sslmode=prefer&sslrootcert=CA", .none, true),
        ("sslmode=require&sslrootcert=CA", .noHostnameVerification, true),
        ("sslmode=verify-ca&sslrootcert=CA", .noHostnameVerification, true),
        ("sslrootcert=CA&sslmode=verify-full", .fullVerification, true),
        ("sslrootcert=system", .fullVerification, false),
        ("sslmode=verify-full&sslrootcert=system", .fullVerification, false),
    ])
    func sslRootCertificate(_ query: String, _ verification: CertificateVerification, _ trustsTheFile: Bool) throws {
        let directory = try TestSupport.makeTemporaryDirectory("database-url")
        defer { try? FileManager.default.removeItem(at: directory) }
        let ca = try TestPostgres.makeCertificateAuthority(in: directory).certificate
        let parts = try DatabaseURL.loaded(DatabaseURL.parts("postgres://cr@db/cr?" + query.replacingOccurrences(of: "=CA", with: "=" + ca)))
        let tls = try #require(parts.tls)
        #expect(tls.certificateVerification == verification)
        if trustsTheFile {
            #expect(tls.trustRoots == .certificates(try NIOSSLCertificate.fromPEMFile(ca)))
        } else {
            #expect(tls.trustRoots == .default)
        }
        _ = try DatabaseURL.configuration("postgres://cr@db/cr?" + query.replacingOccurrences(of: "=CA", with: "=" + ca))
        _ = try DatabaseURL.connectionConfiguration("postgres://cr@db/cr?" + query.replacingOccurrences(of: "=CA", with: "=" + ca),
                                                    password: nil)
    }

    /// A file that cannot be read, or holds no certificate, fails with its name (and never the password).
    @Test func aBadRootCertificateFileIsNamed() throws {
        let directory = try TestSupport.makeTemporaryDirectory("database-url")
        defer { try? FileManager.default.removeItem(at: directory) }
        let missing = directory.appendingPathComponent("missing.crt").path
        #expect(throws: DatabaseURL.Failure.invalid("sslrootcert \(missing) cannot be read: No such file or directory")) {
            try DatabaseURL.configuration("postgres://cr:secret@db/cr?sslmode=verify-full&sslrootcert=\(missing)")
        }
        let garbage = directory.appendingPathComponent("garbage.crt")
        try Data("not a certificate\n".utf8).write(to: garbage)
        #expect(throws: DatabaseURL.Failure.invalid("sslrootcert \(garbage.path) holds no PEM certificate")) {
            try DatabaseURL.configuration("postgres://cr:secret@db/cr?sslmode=verify-ca&sslrootcert=\(garbage.path)")
        }
        #expect(throws: DatabaseURL.Failure.invalid("sslrootcert \(garbage.path) holds no PEM certificate")) {
            try DatabaseURL.connectionConfiguration("postgres://cr:secret@db/cr?sslmode=verify-ca&sslrootcert=\(garbage.path)", password: nil)
        }
        // A URL with sslmode=disable never reads it.
        _ = try DatabaseURL.configuration("postgres://cr@db/cr?sslmode=disable&sslrootcert=\(missing)")
    }

    /// sslcert and sslkey, as libpq reads them: both files read at once, the key refused when others may read it
    /// (0600 or less; 0640 when root owns it), an encrypted or missing key, or a pair that does not match, named.
    @Test func clientCertificateFiles() throws {
        let directory = try TestSupport.makeTemporaryDirectory("database-url-client")
        defer { try? FileManager.default.removeItem(at: directory) }
        let authority = try TestPostgres.makeCertificateAuthority(in: directory, name: "ca")
        let ca = try TestPostgres.makeClientCertificate(commonName: "cr", in: directory, authority: authority)
        let other = try TestPostgres.makeClientCertificate(commonName: "other", in: directory, authority: authority)
        func url(_ certificate: String, _ key: String, mode: String = "verify-full") -> String {
            "postgres://cr:secret@db/cr?sslmode=\(mode)&sslrootcert=\(authority.certificate)&sslcert=\(certificate)&sslkey=\(key)"
        }
        chmod(ca.key, 0o600)
        let parts = try DatabaseURL.loaded(DatabaseURL.parts(url(ca.certificate, ca.key)))
        #expect(parts.tls?.certificateChain == [.certificate(try NIOSSLCertificate.fromPEMFile(ca.certificate)[0])])
        #expect(parts.tls?.privateKey != nil)
        _ = try DatabaseURL.configuration(url(ca.certificate, ca.key))
        _ = try DatabaseURL.connectionConfiguration(url(ca.certificate, ca.key), password: nil)
        // Root's key may be group-readable (we run as root here), never world-readable.
        chmod(ca.key, 0o640)
        _ = try DatabaseURL.configuration(url(ca.certificate, ca.key))
        chmod(ca.key, 0o644)
        #expect(throws: DatabaseURL.Failure.invalid("sslkey \(ca.key) has group or world access (mode 644); it must be 0600 or less (0640 or less when owned by root)")) {
            try DatabaseURL.configuration(url(ca.certificate, ca.key))
        }
        chmod(ca.key, 0o600)
        // A key owned by another user: 0640 is too wide for it.
        chmod(other.key, 0o640)
        chown(other.key, 65534, 65534)
        #expect(throws: DatabaseURL.Failure.invalid("sslkey \(other.key) has group or world access (mode 640); it must be 0600 or less (0640 or less when owned by root)")) {
            try DatabaseURL.configuration(url(other.certificate, other.key))
        }
        // Another certificate's key: not a pair.
        chmod(other.key, 0o600)
        #expect(throws: DatabaseURL.Failure.self) { try DatabaseURL.configuration(url(ca.certificate, other.key)) }
        // Missing, garbage, encrypted.
        let missing = directory.appendingPathComponent("missing.key").path
        #expect(throws: DatabaseURL.Failure.invalid("sslkey \(missing) cannot be read: No such file or directory")) {
            try DatabaseURL.configuration(url(ca.certificate, missing))
        }
        #expect(throws: DatabaseURL.Failure.invalid("sslcert \(missing) cannot be read: No such file or directory")) {
            try DatabaseURL.configuration(url(missing, ca.key))
        }
        let garbage = directory.appendingPathComponent("garbage.pem")
        try Data("not PEM\n".utf8).write(to: garbage)
        chmod(garbage.path, 0o600)
        #expect(throws: DatabaseURL.Failure.invalid("sslcert \(garbage.path) holds no PEM certificate")) {
            try DatabaseURL.configuration(url(garbage.path, ca.key))
        }
        #expect(throws: DatabaseURL.Failure.invalid("sslkey \(garbage.path) holds no unencrypted PEM private key (an encrypted key's sslpassword is not supported)")) {
            try DatabaseURL.configuration(url(ca.certificate, garbage.path))
        }
        let encrypted = directory.appendingPathComponent("encrypted.key").path
        let result = try TestSupport.run("/usr/bin/openssl", ["pkey", "-in", ca.key, "-aes256", "-passout", "pass:secret", "-out", encrypted])
        #expect(result.status == 0)
        chmod(encrypted, 0o600)
        #expect(throws: DatabaseURL.Failure.invalid("sslkey \(encrypted) holds no unencrypted PEM private key (an encrypted key's sslpassword is not supported)")) {
            try DatabaseURL.configuration(url(ca.certificate, encrypted))
        }
        // With sslmode=disable neither is read, as libpq ignores them.
        _ = try DatabaseURL.configuration(url(missing, missing, mode: "disable"))
    }

    @Test func redactedHidesThePassword() {
        #expect(DatabaseURL.redacted("postgres://cr:secret@db:5432/cr?sslmode=require") == "postgres://cr:***@db:5432/cr?sslmode=require")
        #expect(DatabaseURL.redacted("postgres://cr:secret@db/cr?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem")
                == "postgres://cr:***@db/cr?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem")
    }
}
