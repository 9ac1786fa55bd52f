// A throwaway PostgreSQL server for a test: Debian's binaries (apt `postgresql`, never its packaged cluster),
// initdb into a temporary directory as an unprivileged system user (PostgreSQL refuses to run as root), a free
// loopback port, its unix socket in that directory, trust authentication for loopback only. `stop()` stops the
// server and removes the directory. pg_ctl daemonises the server and waits for it, so nothing here holds a child.
// With `tls`, the server also speaks TLS with a certificate signed by a throwaway CA made with the openssl CLI
// (`caFile`), and can be made to refuse loopback connections without it (pg_hba.conf `hostssl` only).
public import Foundation
import Synchronization

public final class TestPostgres: Sendable {
    /// Where Debian 12 installs PostgreSQL 15's server binaries; CODERUNNER_PG_BIN overrides it.
    public static let binDir = ProcessInfo.processInfo.environment["CODERUNNER_PG_BIN"] ?? "/usr/lib/postgresql/15/bin"
    /// The unprivileged system user the server runs as.
    public static let systemUser = "coderunner-pgtest"
    /// The database superuser initdb creates (trust auth: loopback and the private socket only).
    public static let superuser = "postgres"

    /// The TLS a server speaks.
    public struct TLS: Sendable {
        /// The server certificate's subjectAltName entries (openssl's syntax).
        public var subjectAltNames: [String]
        /// pg_hba.conf accepts loopback TCP only over TLS (`hostssl`): a plain connection is refused.
        public var only: Bool
        /// Loopback TCP only over TLS and with a client certificate signed by the CA whose common name is the user's
        /// (pg_hba.conf `cert` authentication); `makeClientCertificate` makes one.
        public var clientCertificates: Bool

        public init(subjectAltNames: [String] = ["IP:127.0.0.1", "DNS:localhost"], only: Bool = false, clientCertificates: Bool = false) {
            self.subjectAltNames = subjectAltNames
            self.only = only
            self.clientCertificates = clientCertificates
        }
    }

    public let directory: URL
    public let port: Int
    /// With TLS: the PEM file of the CA that signed the server's certificate (a client's sslrootcert).
    public let caFile: String?
    public var host: String { "127.0.0.1" }
    public var socketDirectory: String { directory.path }
    private var dataDirectory: String { directory.appendingPathComponent("data").path }

    public enum Failure: Error, CustomStringConvertible {
        case missing(String)
        case command(String, String)
        public var description: String {
            switch self {
            case .missing(let what): "\(what) is missing: apt-get install -y postgresql (scripts/lib/deps.sh TEST_PACKAGES)"
            case .command(let what, let output): "\(what) failed: \(output)"
            }
        }
    }

    private static let userLock = Mutex(())

    /// Creates the cluster, starts it and creates `database`. For each of `links` (a test's own network namespace,
    /// `NetworkNamespace`), it also listens on the link's host address and trusts the namespace's. With `tls`, it
    /// speaks TLS too.
    public static func start(database: String = "coderunner", links: [NetworkNamespace.Link] = [],
                             tls: TLS? = nil) throws -> TestPostgres {
        guard FileManager.default.isExecutableFile(atPath: binDir + "/initdb") else { throw Failure.missing(binDir + "/initdb") }
        let (uid, gid) = try ensureSystemUser()
        let directory = try TestSupport.makeTemporaryDirectory("coderunner-pg")
        guard chown(directory.path, uid, gid) == 0 else { throw Failure.command("chown \(directory.path)", String(cString: strerror(errno))) }
        let server = TestPostgres(directory: directory, port: TestSupport.freeLoopbackPort(),
                                  caFile: tls == nil ? nil : directory.appendingPathComponent("tls/ca.crt").path)
        do {
            try server.asUser("initdb", ["-D", server.dataDirectory, "-U", superuser, "-A", "trust", "-E", "UTF8",
                                         "--locale=C", "--no-sync", "--no-instructions"], timeout: .seconds(120))
            var ssl = ""
            if let tls {
                let (certificate, key) = try server.makeServerCertificate(tls, uid: uid, gid: gid)
                ssl = " -c ssl=on -c ssl_cert_file=\(certificate) -c ssl_key_file=\(key)"
                if tls.clientCertificates {
                    ssl += " -c ssl_ca_file=\(server.directory.appendingPathComponent("tls/ca.crt").path)"
                    try Self.write("local all all trust\nhostssl all all 127.0.0.1/32 cert\n",
                                   to: server.dataDirectory + "/pg_hba.conf", uid: uid, gid: gid, mode: 0o600)
                } else if tls.only {
                    // The unix socket for psql and nothing but TLS on loopback: a plain TCP session finds no entry.
                    try Self.write("local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
                                   to: server.dataDirectory + "/pg_hba.conf", uid: uid, gid: gid, mode: 0o600)
                }
            }
            if !links.isEmpty {
                let hba = server.dataDirectory + "/pg_hba.conf"
                let lines = links.map { "\(tls?.only == true ? "hostssl" : "host") all all \($0.namespaceAddress)/32 trust\n" }.joined()
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: hba))
                try handle.seekToEnd()
                try handle.write(contentsOf: Data(lines.utf8))
                try handle.close()
            }
            // Loopback (and the test's own links) only; fsync off because the cluster is thrown away.
            let listen = (["127.0.0.1"] + links.map(\.hostAddress)).joined(separator: ",")
            let options = "-p \(server.port) -k \(server.socketDirectory) -c listen_addresses=\(listen) -c fsync=off "
                + "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200" + ssl
            try server.asUser("pg_ctl", ["-D", server.dataDirectory, "-l", server.directory.appendingPathComponent("server.log").path,
                                         "-o", options, "-w", "-t", "60", "start"], timeout: .seconds(90))
            try server.createDatabase(database)
        } catch {
            server.stop()
            throw error
        }
        return server
    }

    private init(directory: URL, port: Int, caFile: String?) {
        self.directory = directory
        self.port = port
        self.caFile = caFile
    }

    /// A throwaway certificate authority made with the openssl CLI: `name`.crt and `name`.key in `directory`
    /// (P-256, valid 2 days). Returns the certificate's and the key's paths.
    @discardableResult
    public static func makeCertificateAuthority(in directory: URL, name: String = "ca") throws -> (certificate: String, key: String) {
        let certificate = directory.appendingPathComponent(name + ".crt").path
        let key = directory.appendingPathComponent(name + ".key").path
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", key,
                     "-out", certificate, "-days", "2", "-subj", "/CN=coderunner test \(name)",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
        return (certificate, key)
    }

    /// The CA (`caFile`) and the server's certificate and key, signed by it, in the directory's `tls`: the key is
    /// the system user's, mode 0600, as PostgreSQL demands. The CA's key is removed once it has signed.
    private func makeServerCertificate(_ tls: TLS, uid: uid_t, gid: gid_t) throws -> (certificate: String, key: String) {
        let folder = directory.appendingPathComponent("tls")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: false)
        let ca = try Self.makeCertificateAuthority(in: folder)
        let path = { (name: String) in folder.appendingPathComponent(name).path }
        try Self.openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                          "-keyout", path("server.key"), "-out", path("server.csr"), "-subj", "/CN=coderunner test server"])
        let extensions = "subjectAltName=\(tls.subjectAltNames.joined(separator: ","))\nbasicConstraints=critical,CA:FALSE\n"
            + "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n"
        try Self.write(extensions, to: path("server.ext"), uid: 0, gid: 0, mode: 0o600)
        try Self.openssl(["x509", "-req", "-in", path("server.csr"), "-CA", ca.certificate, "-CAkey", ca.key, "-set_serial", "2",
                          "-days", "2", "-extfile", path("server.ext"), "-out", path("server.crt")])
        // Kept only while client certificates are to be signed with it.
        if !tls.clientCertificates { try FileManager.default.removeItem(atPath: ca.key) }
        for file in ["server.key", "server.crt"] {
            guard chown(path(file), uid, gid) == 0, chmod(path(file), 0o600) == 0 else {
                throw Failure.command("chown \(path(file))", String(cString: strerror(errno)))
            }
        }
        return (path("server.crt"), path("server.key"))
    }

    /// A client certificate for `commonName` (the database user it authenticates as) and its key, mode 0600, in
    /// `directory`, signed by `authority` (this server's CA by default; another CA's makes one the server refuses).
    public func makeClientCertificate(commonName: String, in directory: URL,
                                      authority: (certificate: String, key: String)? = nil) throws -> (certificate: String, key: String) {
        let folder = self.directory.appendingPathComponent("tls")
        return try Self.makeClientCertificate(commonName: commonName, in: directory, authority: authority
            ?? (folder.appendingPathComponent("ca.crt").path, folder.appendingPathComponent("ca.key").path))
    }

    /// The same, signed by any CA (`makeCertificateAuthority`).
    public static func makeClientCertificate(commonName: String, in directory: URL,
                                             authority ca: (certificate: String, key: String)) throws -> (certificate: String, key: String) {
        let name = "client-\(commonName)-\(UUID().uuidString.prefix(8))"
        let path = { (suffix: String) in directory.appendingPathComponent(name + suffix).path }
        try openssl(["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", path(".key"), "-out", path(".csr"), "-subj", "/CN=\(commonName)"])
        try write("basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n",
                       to: path(".ext"), uid: 0, gid: 0, mode: 0o600)
        try openssl(["x509", "-req", "-in", path(".csr"), "-CA", ca.certificate, "-CAkey", ca.key, "-set_serial", "\(UInt32.random(in: 3...UInt32.max))",
                     "-days", "2", "-extfile", path(".ext"), "-out", path(".crt")])
        guard chmod(path(".key"), 0o600) == 0 else { throw Failure.command("chmod \(path(".key"))", String(cString: strerror(errno))) }
        return (path(".crt"), path(".key"))
    }

    private static func openssl(_ arguments: [String]) throws {
        let result = try TestSupport.run("/usr/bin/openssl", arguments)
        guard result.status == 0 else {
            throw Failure.command("openssl \(arguments.first ?? "")", String(decoding: result.stdout + result.stderr, as: UTF8.self))
        }
    }

    private static func write(_ text: String, to path: String, uid: uid_t, gid: gid_t, mode: mode_t) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        guard chown(path, uid, gid) == 0, chmod(path, mode) == 0 else {
            throw Failure.command("chown \(path)", String(cString: strerror(errno)))
        }
    }

    public func createDatabase(_ name: String) throws {
        // On the private socket: a server may take loopback TCP only with a client certificate.
        try asUser("createdb", ["-h", socketDirectory, "-p", String(port), "-U", Self.superuser, name])
    }

    /// Runs SQL through psql on the private socket (for tests that inspect or damage the database directly).
    @discardableResult
    public func psql(_ database: String, _ sql: String) throws -> String {
        try asUser("psql", ["-h", socketDirectory, "-p", String(port), "-U", Self.superuser, "-d", database,
                            "-v", "ON_ERROR_STOP=1", "-At", "-c", sql])
    }

    /// The server's log, for a failing test's message.
    public func log() -> String {
        (try? String(contentsOfFile: directory.appendingPathComponent("server.log").path, encoding: .utf8)) ?? ""
    }

    /// Stops the server (fast: sessions are ended) and removes its directory.
    public func stop() {
        if FileManager.default.fileExists(atPath: dataDirectory + "/postmaster.pid") {
            _ = try? asUser("pg_ctl", ["-D", dataDirectory, "-m", "fast", "-w", "-t", "30", "stop"], timeout: .seconds(40))
        }
        try? FileManager.default.removeItem(at: directory)
    }

    @discardableResult
    private func asUser(_ tool: String, _ arguments: [String], timeout: Duration = .seconds(30)) throws -> String {
        let result = try TestSupport.run("/usr/sbin/runuser", ["-u", Self.systemUser, "--", Self.binDir + "/" + tool] + arguments,
                                         timeout: timeout)
        let output = String(decoding: result.stdout, as: UTF8.self)
        guard result.status == 0 else {
            throw Failure.command(tool, output + String(decoding: result.stderr, as: UTF8.self))
        }
        return output
    }

    /// The system user's uid and gid, creating the user (no home, no login shell) on first use.
    private static func ensureSystemUser() throws -> (uid_t, gid_t) {
        try userLock.withLock { _ in
            if let entry = getpwnam(systemUser) { return (entry.pointee.pw_uid, entry.pointee.pw_gid) }
            let result = try TestSupport.run("/usr/sbin/useradd", ["--system", "--user-group", "--no-create-home",
                                                                   "--shell", "/usr/sbin/nologin", systemUser])
            // Another test process may have created it at the same moment.
            guard let entry = getpwnam(systemUser) else {
                throw Failure.command("useradd \(systemUser)", String(decoding: result.stderr, as: UTF8.self))
            }
            return (entry.pointee.pw_uid, entry.pointee.pw_gid)
        }
    }
}
