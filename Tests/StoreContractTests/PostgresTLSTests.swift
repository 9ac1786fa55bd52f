// TLS to PostgreSQL, for real: a TestPostgres server with ssl=on and a certificate from a throwaway CA (openssl CLI),
// and the database URL's sslmode and sslrootcert as the store, the leadership and the change listener use them.
// What each session really is comes from the server's own pg_stat_ssl, read through psql on the unix socket.
import ControlPlane
import Foundation
import Logging
import PostgresNIO
@testable import PostgresStore
import Testing
import TestSupport

@Suite("PostgreSQL over TLS", .serialized)
struct PostgresTLSTests {
    static let logger = Logger(label: "test.tls")

    /// A server speaking TLS (`tls`), stopped and removed after `body`.
    static func withServer(_ tls: TestPostgres.TLS = .init(), _ body: (TestPostgres, String) async throws -> Void) async throws {
        let server = try TestPostgres.start(tls: tls)
        do {
            try await body(server, try #require(server.caFile))
        } catch {
            server.stop()
            throw error
        }
        server.stop()
    }

    static func url(_ server: TestPostgres, _ query: String, host: String = "127.0.0.1") -> String {
        "postgres://\(TestPostgres.superuser)@\(host):\(server.port)/coderunner?\(query)"
    }

    /// Opens a store on `url`, checks that it migrated and writes, and runs `body` while its pool is open.
    static func withStore(_ url: String, _ body: (PostgresStore) async throws -> Void = { _ in }) async throws {
        let store = try await PostgresStore(configuration: DatabaseURL.configuration(url), logger: logger, startTimeout: .seconds(20))
        do {
            #expect(try await store.appliedMigrations() == PostgresMigrations.all.map(\.name))
            try await store.makeUser("alice")
            #expect(try await store.makeProject("p1", owner: "alice").ownerId == "alice")
            try await body(store)
        } catch {
            await store.shutdown()
            throw error
        }
        await store.shutdown()
    }

    /// One dedicated connection (the kind the leadership and the listener hold) on `url`: nil when it connected,
    /// else the error, with its details (PSQLError's description hides them).
    static func refusal(_ url: String) async throws -> (error: any Error, details: String)? {
        let configuration = try DatabaseURL.connectionConfiguration(url, password: nil)
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 1, logger: logger)
            try await connection.close()
            return nil
        } catch {
            return (error, String(reflecting: error))
        }
    }

    /// Why a store (as serve opens it: probing the URL once when its start is slow) cannot start on `url`.
    static func startFailure(_ url: String) async throws -> String? {
        do {
            let store = try await PostgresStore(configuration: DatabaseURL.configuration(url), logger: logger, startTimeout: .seconds(2),
                                                probe: DatabaseURL.connectionConfiguration(url, password: nil))
            await store.shutdown()
            return nil
        } catch let unreachable as PostgresUnreachable {
            return unreachable.description
        }
    }

    static func refused(_ server: TestPostgres, _ reason: String) -> String {
        "PostgreSQL at 127.0.0.1:\(server.port) refused the connection (database coderunner, user postgres): \(reason)"
    }

    /// The client sessions of database coderunner but psql's own (on the unix socket, never TLS): how many,
    /// how many without TLS, and their TLS versions.
    static func sessions(_ server: TestPostgres) throws -> (all: Int, plain: Int, versions: String) {
        let answer = try server.psql("coderunner", """
            SELECT count(*) || '|' || count(*) FILTER (WHERE NOT s.ssl) || '|' || coalesce(string_agg(DISTINCT s.version, ','), '')
            FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
            WHERE a.datname = 'coderunner' AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
            """).trimmingCharacters(in: .whitespacesAndNewlines)
        let fields = answer.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        guard fields.count == 3, let all = Int(fields[0]), let plain = Int(fields[1]) else {
            Issue.record("unexpected pg_stat_ssl answer: \(answer)")
            return (0, 0, "")
        }
        return (all, plain, fields[2])
    }

    @Test("sslmode=require: the store works, and every one of its sessions is TLS 1.2 or 1.3")
    func requireEncrypts() async throws {
        try await Self.withServer { server, _ in
            try await Self.withStore(Self.url(server, "sslmode=require")) { _ in
                let sessions = try Self.sessions(server)
                #expect(sessions.all >= 1)
                #expect(sessions.plain == 0)
                #expect(["TLSv1.2", "TLSv1.3"].contains(sessions.versions), "versions: \(sessions.versions)")
            }
        }
    }

    @Test("verify-full with sslrootcert = the server's CA: works; with another CA: refused, the certificate not verified")
    func verifyFullChecksTheChain() async throws {
        try await Self.withServer { server, ca in
            try await Self.withStore(Self.url(server, "sslmode=verify-full&sslrootcert=\(ca)")) { _ in
                let sessions = try Self.sessions(server)
                #expect(sessions.plain == 0)
            }
            #expect(try await Self.refusal(Self.url(server, "sslmode=verify-full&sslrootcert=\(ca)")) == nil)

            let other = try TestSupport.makeTemporaryDirectory("coderunner-other-ca")
            defer { try? FileManager.default.removeItem(at: other) }
            let stranger = try TestPostgres.makeCertificateAuthority(in: other, name: "stranger").certificate
            for mode in ["verify-full", "verify-ca", "require"] {
                let refused = try #require(await Self.refusal(Self.url(server, "sslmode=\(mode)&sslrootcert=\(stranger)")), "\(mode)")
                #expect(refused.details.contains("CERTIFICATE_VERIFY_FAILED"), "\(mode): \(refused.details)")
            }
            // Without sslrootcert, verify-full trusts the system's store, which never signed the throwaway CA.
            let system = try #require(await Self.refusal(Self.url(server, "sslmode=verify-full")))
            #expect(system.details.contains("CERTIFICATE_VERIFY_FAILED"), "\(system.details)")
            // The store's start gives up instead of retrying a failing handshake forever, and says why.
            #expect(try await Self.startFailure(Self.url(server, "sslmode=verify-full&sslrootcert=\(stranger)")) == Self.refused(server,
                    "the server's certificate could not be verified (CERTIFICATE_VERIFY_FAILED): is sslrootcert its CA?"))
        }
    }

    @Test("a certificate for DNS:localhost only, reached at 127.0.0.1: verify-full refused, verify-ca accepted")
    func verifyFullChecksTheName() async throws {
        try await Self.withServer(.init(subjectAltNames: ["DNS:localhost"])) { server, ca in
            // The chain verifies; the name check fails (PostgresNIO sends no name for an IP address: NIOSSL checks the
            // peer's address against the certificate's IP entries, of which there is none).
            let refused = try #require(await Self.refusal(Self.url(server, "sslmode=verify-full&sslrootcert=\(ca)")))
            #expect(refused.details.contains("NIOSSLExtraError.failedToValidateHostname"), "\(refused.details)")
            #expect(try await Self.startFailure(Self.url(server, "sslmode=verify-full&sslrootcert=\(ca)")) == Self.refused(server,
                    "the server's certificate is not for 127.0.0.1 (sslmode=verify-full checks the name; verify-ca does not)"))
            #expect(try await Self.refusal(Self.url(server, "sslmode=verify-ca&sslrootcert=\(ca)")) == nil)
            try await Self.withStore(Self.url(server, "sslmode=verify-ca&sslrootcert=\(ca)")) { _ in
                let sessions = try Self.sessions(server)
                #expect(sessions.plain == 0)
            }
        }
    }

    @Test("a server that takes loopback only over TLS: sslmode=disable refused with PostgreSQL's reason, prefer works over TLS")
    func aTLSOnlyServer() async throws {
        try await Self.withServer(.init(only: true)) { server, _ in
            let refused = try #require(await Self.refusal(Self.url(server, "sslmode=disable")))
            let psql = try #require(refused.error as? PSQLError, "\(refused.details)")
            #expect(psql.serverInfo?[.message]
                    == "no pg_hba.conf entry for host \"127.0.0.1\", user \"postgres\", database \"coderunner\", no encryption")
            #expect(try await Self.startFailure(Self.url(server, "sslmode=disable")) == Self.refused(server,
                    "no pg_hba.conf entry for host \"127.0.0.1\", user \"postgres\", database \"coderunner\", no encryption"))
            #expect(try await Self.refusal(Self.url(server, "sslmode=prefer")) == nil)
            try await Self.withStore(Self.url(server, "sslmode=prefer")) { _ in
                let sessions = try Self.sessions(server)
                #expect(sessions.all >= 1)
                #expect(sessions.plain == 0)
            }
        }
    }

    @Test("client certificates (sslcert, sslkey) for a server with cert authentication: the store and a cluster node connect as the certificate's user; without one, with another user's or another CA's, refused with the reason")
    func clientCertificates() async throws {
        try await Self.withServer(.init(clientCertificates: true)) { server, ca in
            let folder = try TestSupport.makeTemporaryDirectory("coderunner-client-cert")
            defer { try? FileManager.default.removeItem(at: folder) }
            let mine = try server.makeClientCertificate(commonName: TestPostgres.superuser, in: folder)
            let query = "sslmode=verify-full&sslrootcert=\(ca)&sslcert=\(mine.certificate)&sslkey=\(mine.key)"
            try await Self.withStore(Self.url(server, query)) { _ in
                let answer = try server.psql("coderunner", """
                    SELECT count(*) || '|' || count(*) FILTER (WHERE s.client_dn = '/CN=\(TestPostgres.superuser)')
                    FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
                    WHERE a.datname = 'coderunner' AND a.backend_type = 'client backend' AND a.pid <> pg_backend_pid()
                    """).trimmingCharacters(in: .whitespacesAndNewlines)
                let counts = answer.split(separator: "|").compactMap { Int($0) }
                #expect(counts.count == 2 && counts[0] >= 1 && counts[0] == counts[1], "sessions | with the client certificate: \(answer)")
            }
            let node = try await ClusterNode(url: Self.url(server, query), password: nil,
                                             node: .init(name: "cert-node", capacityCores: 1, capacityMemoryBytes: 1 << 30),
                                             interval: .milliseconds(200), logger: Self.logger)
            do {
                try await node.listen(timeout: .seconds(20)) { _ in }
                #expect(await eventually(.seconds(10)) { node.leadership.status == .leading(epoch: 1) })
            } catch {
                await node.stop()
                throw error
            }
            await node.stop()

            // No certificate: PostgreSQL's own reason, at the start's probe too.
            let none = try #require(await Self.refusal(Self.url(server, "sslmode=verify-full&sslrootcert=\(ca)")))
            #expect((none.error as? PSQLError)?.serverInfo?[.message] == "connection requires a valid client certificate", "\(none.details)")
            #expect(try await Self.startFailure(Self.url(server, "sslmode=verify-full&sslrootcert=\(ca)"))
                    == Self.refused(server, "connection requires a valid client certificate"))
            // Another user's certificate: the server's CA signed it, but cert authentication wants the user's name.
            let other = try server.makeClientCertificate(commonName: "someone-else", in: folder)
            let theirs = try #require(await Self.refusal(Self.url(server, "sslmode=verify-full&sslrootcert=\(ca)&sslcert=\(other.certificate)&sslkey=\(other.key)")))
            #expect((theirs.error as? PSQLError)?.serverInfo?[.message] == "certificate authentication failed for user \"postgres\"", "\(theirs.details)")
            // A certificate another CA signed: the server ends the handshake.
            let strangerCA = try TestPostgres.makeCertificateAuthority(in: folder, name: "stranger")
            let forged = try server.makeClientCertificate(commonName: TestPostgres.superuser, in: folder, authority: strangerCA)
            let forgedURL = Self.url(server, "sslmode=verify-full&sslrootcert=\(ca)&sslcert=\(forged.certificate)&sslkey=\(forged.key)")
            let unknown = try #require(await Self.refusal(forgedURL))
            #expect(unknown.details.contains("TLSV1_ALERT_UNKNOWN_CA"), "\(unknown.details)")
            #expect(try await Self.startFailure(forgedURL) == Self.refused(server,
                    "the server refused the client certificate (TLSV1_ALERT_UNKNOWN_CA): is sslcert signed by a CA in the server's ssl_ca_file?"))
            #expect(try await Self.startFailure(Self.url(server, "sslmode=verify-full&sslrootcert=\(ca)&sslcert=\(other.certificate)&sslkey=\(other.key)"))
                    == Self.refused(server, "certificate authentication failed for user \"postgres\""))
        }
    }

    @Test("a cluster node on a verify-full URL: its leadership and its change listener hold TLS sessions")
    func clusterConnectionsUseTLS() async throws {
        try await Self.withServer(.init(only: true)) { server, ca in
            let node = try await ClusterNode(url: Self.url(server, "sslmode=verify-full&sslrootcert=\(ca)"), password: nil,
                                             node: .init(name: "tls-node", capacityCores: 1, capacityMemoryBytes: 1 << 30),
                                             interval: .milliseconds(200), logger: Self.logger)
            do {
                try await node.listen(timeout: .seconds(20)) { _ in }
                #expect(await eventually(.seconds(10)) { node.leadership.status == .leading(epoch: 1) })
                let sessions = try Self.sessions(server)
                #expect(sessions.all >= 2)
                #expect(sessions.plain == 0)
            } catch {
                await node.stop()
                throw error
            }
            await node.stop()
        }
    }
}
