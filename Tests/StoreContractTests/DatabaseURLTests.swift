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
        ("postgres://cr@localhost/cr?connect_timeout=3", "unknown parameter connect_timeout; only sslmode and sslrootcert are understood"),
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

    @Test func redactedHidesThePassword() {
        #expect(DatabaseURL.redacted("postgres://cr:secret@db:5432/cr?sslmode=require") == "postgres://cr:***@db:5432/cr?sslmode=require")
        #expect(DatabaseURL.redacted("postgres://cr:secret@db/cr?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem")
                == "postgres://cr:***@db/cr?sslmode=verify-full&sslrootcert=/etc/ssl/db-ca.pem")
    }
}
