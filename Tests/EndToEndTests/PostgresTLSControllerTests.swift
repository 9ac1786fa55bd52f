// Issue 16's sslmode, end to end: the real controller (`serve --database '...?sslmode=verify-full&sslrootcert=...'`)
// on a PostgreSQL server that takes loopback only over TLS, with a certificate from a throwaway CA (TestPostgres).
// It serves, every session it holds is TLS (the server's pg_stat_ssl), and a CA it does not trust fails its start
// with the reason; `migrate --to` the same way.
import Foundation
import Testing
import TestSupport

@Suite("Controller on PostgreSQL over TLS", .serialized) struct PostgresTLSControllerTests {
    static func url(_ server: TestPostgres, _ query: String) -> String {
        "postgres://\(TestPostgres.superuser)@\(server.host):\(server.port)/coderunner?\(query)"
    }

    @Test func theControllerServesOverVerifiedTLS() throws {
        let server = try TestPostgres.start(tls: .init(only: true))
        defer { server.stop() }
        let ca = try #require(server.caFile)
        let dir = try TestSupport.makeTemporaryDirectory("pg-tls-controller")
        defer { try? FileManager.default.removeItem(at: dir) }
        let controller = try ControllerProcess(dataDirectory: dir, extra: ["--database", Self.url(server, "sslmode=verify-full&sslrootcert=\(ca)")])
        defer { controller.kill() }
        let tenant = try Tenant.create(controller, variables: [("GREETING", "hello", false, false)])
        #expect(try tenant.set("GREETING", "over TLS") == 200)
        #expect(try server.psql("coderunner", "SELECT count(*) FROM deployments").trimmingCharacters(in: .whitespacesAndNewlines) == "1")
        // The pool's sessions, the leadership's and the change listener's (at least one each): all TLS (psql's own,
        // on the socket, is not).
        func sessions() throws -> [Int] {
            try server.psql("coderunner", """
                SELECT count(*) || '|' || count(*) FILTER (WHERE NOT s.ssl) FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                WHERE a.datname = 'coderunner' AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
                """).trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|").compactMap { Int($0) }
        }
        #expect(TestSupport.waitUntil(timeout: .seconds(10)) { ((try? sessions())?.first ?? 0) >= 3 }, "\((try? sessions()) ?? [])")
        let seen = try sessions()
        #expect(seen.count == 2)
        #expect(seen.last == 0, "\(seen)")
    }

    /// sslcert and sslkey: on a server that authenticates by client certificate (pg_hba.conf `cert`), every session
    /// the controller holds presents the certificate; a key others may read fails the start, named, before it connects.
    @Test func theControllerAuthenticatesWithAClientCertificate() throws {
        let server = try TestPostgres.start(tls: .init(clientCertificates: true))
        defer { server.stop() }
        let ca = try #require(server.caFile)
        let dir = try TestSupport.makeTemporaryDirectory("pg-client-cert-controller")
        defer { try? FileManager.default.removeItem(at: dir) }
        let client = try server.makeClientCertificate(commonName: TestPostgres.superuser, in: dir)
        let url = Self.url(server, "sslmode=verify-full&sslrootcert=\(ca)&sslcert=\(client.certificate)&sslkey=\(client.key)")
        let controller = try ControllerProcess(dataDirectory: dir.appendingPathComponent("data"), extra: ["--database", url])
        defer { controller.kill() }
        let tenant = try Tenant.create(controller, variables: [("GREETING", "hello", false, false)])
        #expect(try tenant.set("GREETING", "by certificate") == 200)
        func sessions() throws -> [Int] {
            try server.psql("coderunner", """
                SELECT count(*) || '|' || count(*) FILTER (WHERE s.client_dn = '/CN=\(TestPostgres.superuser)')
                FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                WHERE a.datname = 'coderunner' AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
                """).trimmingCharacters(in: .whitespacesAndNewlines).split(separator: "|").compactMap { Int($0) }
        }
        #expect(TestSupport.waitUntil(timeout: .seconds(10)) { ((try? sessions())?.first ?? 0) >= 3 }, "\((try? sessions()) ?? [])")
        let seen = try sessions()
        #expect(seen.count == 2 && seen[0] == seen[1], "sessions | with the certificate: \(seen)")
        controller.stop()

        chmod(client.key, 0o644)
        let result = try TestSupport.run(TestSupport.binary("coderunner-controller"), [
            "serve", "--listen", "127.0.0.1:\(TestSupport.freeLoopbackPort())", "--data-dir", dir.appendingPathComponent("other").path,
            "--database", url,
        ], timeout: .seconds(60))
        let stderr = String(decoding: result.stderr, as: UTF8.self)
        #expect(result.status != 0)
        #expect(stderr.contains("sslkey \(client.key) has group or world access (mode 644); it must be 0600 or less"), "\(stderr)")
    }

    @Test func aCertificateFromAnotherCAFailsTheStartWithTheReason() throws {
        let server = try TestPostgres.start(tls: .init(only: true))
        defer { server.stop() }
        let dir = try TestSupport.makeTemporaryDirectory("pg-tls-controller")
        defer { try? FileManager.default.removeItem(at: dir) }
        let stranger = try TestPostgres.makeCertificateAuthority(in: dir, name: "stranger").certificate
        let started = ContinuousClock.now
        let result = try TestSupport.run(TestSupport.binary("coderunner-controller"), [
            "serve", "--listen", "127.0.0.1:\(TestSupport.freeLoopbackPort())", "--data-dir", dir.appendingPathComponent("data").path,
            "--database", Self.url(server, "sslmode=verify-full&sslrootcert=\(stranger)"),
        ], timeout: .seconds(60))
        let stderr = String(decoding: result.stderr, as: UTF8.self)
        #expect(result.status == 1, "\(stderr)")
        // A refusal is final: the start says so after its probe (2 s), not after the 20 s a silent server gets.
        #expect(ContinuousClock.now - started < .seconds(12), "\(ContinuousClock.now - started)")
        #expect(stderr.contains("coderunner-controller: --database: PostgreSQL at 127.0.0.1:\(server.port) refused the connection "
                                + "(database coderunner, user postgres): the server's certificate could not be verified "
                                + "(CERTIFICATE_VERIFY_FAILED): is sslrootcert its CA?"), "\(stderr)")
    }

    @Test func migrateMovesAnInstallOverVerifiedTLSAndSaysWhyAnotherCAIsRefused() throws {
        let server = try TestPostgres.start(tls: .init(only: true))
        defer { server.stop() }
        let ca = try #require(server.caFile)
        let dir = try TestSupport.makeTemporaryDirectory("pg-tls-migrate")
        defer { try? FileManager.default.removeItem(at: dir) }
        let data = dir.appendingPathComponent("data")
        let sqlite = try ControllerProcess(dataDirectory: data)
        defer { sqlite.kill() }
        _ = try Tenant.create(sqlite, variables: [("GREETING", "on sqlite", false, false)])
        sqlite.stop()

        let stranger = try TestPostgres.makeCertificateAuthority(in: dir, name: "stranger").certificate
        let refused = try TestSupport.run(TestSupport.binary("coderunner-controller"), [
            "migrate", "--from", "sqlite:\(data.path)", "--to", Self.url(server, "sslmode=verify-full&sslrootcert=\(stranger)"),
        ], timeout: .seconds(60))
        let stderr = String(decoding: refused.stderr, as: UTF8.self)
        #expect(refused.status == 1, "\(stderr)")
        #expect(stderr.contains("error: PostgreSQL at 127.0.0.1:\(server.port) refused the connection (database coderunner, "
                                + "user postgres): the server's certificate could not be verified (CERTIFICATE_VERIFY_FAILED): "
                                + "is sslrootcert its CA?; nothing was copied"), "\(stderr)")

        let moved = try TestSupport.run(TestSupport.binary("coderunner-controller"), [
            "migrate", "--from", "sqlite:\(data.path)", "--to", Self.url(server, "sslmode=verify-full&sslrootcert=\(ca)"),
        ], timeout: .seconds(60))
        let stdout = String(decoding: moved.stdout, as: UTF8.self)
        #expect(moved.status == 0, "\(String(decoding: moved.stderr, as: UTF8.self))")
        #expect(stdout.hasPrefix("migrated "), "\(stdout)")
        #expect(try server.psql("coderunner", "SELECT count(*) FROM users").trimmingCharacters(in: .whitespacesAndNewlines) == "1")
    }
}
