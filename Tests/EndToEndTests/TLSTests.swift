// The agent's https path to the controller, end to end: test CAs and certificates made with openssl(1), the real
// controller (plain HTTP) behind a real TLS terminator (socat) on loopback, and real agents verifying it with
// libcurl. Each test has its own PKI, controller and terminator; the suite is serialized like HotReloadTests.
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

/// Certificates made with openssl(1) in `directory`: `ca.pem` signs `server.pem` (SAN IP:127.0.0.1) and
/// `wrong-name.pem` (SAN DNS:example.invalid only); `other-ca.pem` is an unrelated CA that signs nothing.
struct TestPKI {
    let directory: URL

    func path(_ file: String) -> String { directory.appendingPathComponent(file).path }

    static func make(in directory: URL) throws -> TestPKI {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let pki = TestPKI(directory: directory)
        try pki.authority("ca")
        try pki.authority("other-ca")
        try pki.server("server", subjectAltName: "IP:127.0.0.1")
        try pki.server("wrong-name", subjectAltName: "DNS:example.invalid")
        return pki
    }

    private func authority(_ name: String) throws {
        try openssl(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", path("\(name)-key.pem"), "-out", path("\(name).pem"), "-days", "2", "-subj", "/CN=CodeRunner test \(name)",
                     "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"])
    }

    private func server(_ name: String, subjectAltName: String) throws {
        try openssl(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                     "-keyout", path("\(name)-key.pem"), "-out", path("\(name).csr"), "-subj", "/CN=\(name)"])
        try Data("subjectAltName=\(subjectAltName)\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n".utf8)
            .write(to: directory.appendingPathComponent("\(name).ext"))
        try openssl(["x509", "-req", "-in", path("\(name).csr"), "-CA", path("ca.pem"), "-CAkey", path("ca-key.pem"),
                     "-set_serial", String(UInt32.random(in: 1...UInt32.max)), "-days", "2",
                     "-extfile", path("\(name).ext"), "-out", path("\(name).pem")])
    }

    func openssl(_ arguments: [String]) throws {
        let p = try Spawned("/usr/bin/openssl", arguments)
        let status = p.waitForExit(timeout: .seconds(30))
        guard status == 0 else { throw E2EError.failed("openssl \(arguments.joined(separator: " ")): status \(status.map(String.init) ?? "timeout"): \(p.text)") }
    }
}

/// socat terminating TLS on a loopback port and forwarding each connection to the controller's plain HTTP port.
final class TLSTerminator {
    let port: Int
    let process: Spawned
    var base: String { "https://127.0.0.1:\(port)" }

    /// Returns once a TLS client that trusts `ca` for `serverName` gets the controller's /healthz through it, so a
    /// refusal later is the verifier's doing, not a terminator that is not up yet or a broken certificate.
    init(certificate: String, key: String, upstream: Int, ca: String, serverName: String) throws {
        port = TestSupport.freeLoopbackPort()
        process = try Spawned("/usr/bin/socat", [
            "OPENSSL-LISTEN:\(port),bind=127.0.0.1,reuseaddr,fork,cert=\(certificate),key=\(key),verify=0",
            "TCP:127.0.0.1:\(upstream)",
        ])
        let probe = ["--cacert", ca, "--resolve", "\(serverName):\(port):127.0.0.1"]
        let up = TestSupport.waitUntil(timeout: .seconds(20), interval: .milliseconds(50)) { [port] in
            (try? HTTP.call("GET", "https://\(serverName):\(port)/healthz", timeout: 2, curlOptions: probe).status) == 200
        }
        guard up else {
            process.hardKill()
            throw E2EError.failed("socat did not serve TLS on \(port): \(process.text)")
        }
    }

    /// Kills the listener and the children it forked for connections still open (by pid, read before it goes).
    /// SIGKILL: socat holds no state worth a graceful stop.
    func stop() {
        let children = ((try? String(contentsOfFile: "/proc/\(process.pid)/task/\(process.pid)/children", encoding: .utf8)) ?? "")
            .split(separator: " ").compactMap { Int32($0) }
        process.hardKill()
        for child in children { kill(child, SIGKILL) }
    }
}

@Suite(.serialized)
struct TLSTests {
    static let wait: Duration = .seconds(15)

    /// A PKI, the controller with a tenant (GREETING=hello), and a terminator serving `certificate` in front of it.
    func withTLSController<T>(serving certificate: String = "server", as serverName: String = "127.0.0.1",
                              _ body: (Tenant, TLSTerminator, TestPKI, URL) throws -> T) throws -> T {
        let dir = try TestSupport.makeTemporaryDirectory("e2e-tls")
        defer { try? FileManager.default.removeItem(at: dir) }
        let pki = try TestPKI.make(in: dir.appendingPathComponent("pki"))
        let controller = try ControllerProcess(dataDirectory: dir.appendingPathComponent("controller"))
        defer { controller.kill() }
        let tenant = try Tenant.create(controller, variables: [("GREETING", "hello", false, false)])
        let terminator = try TLSTerminator(certificate: pki.path("\(certificate).pem"), key: pki.path("\(certificate)-key.pem"),
                                           upstream: controller.port, ca: pki.path("ca.pem"), serverName: serverName)
        defer { terminator.stop() }
        return try body(tenant, terminator, pki, dir)
    }

    /// The line the agent logs when its first config request fails.
    static func refusal(_ tls: TLSTerminator, _ reason: String) -> String {
        "controller unreachable: GET \(tls.base)/api/agent/v1/config: \(reason)"
    }

    static let unknownIssuer = "SSL certificate problem: unable to get local issuer certificate"

    @Test("with the CA as --ca-file the agent gets its config over TLS, and a change restarts the app with the new value")
    func verifiedWithCAFile() throws {
        try withTLSController { tenant, tls, pki, dir in
            let agent = try AgentProcess(controller: tls.base, token: tenant.agentToken, directory: dir.appendingPathComponent("a"),
                                         extra: ["--ca-file", pki.path("ca.pem")])
            defer { agent.stop() }
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.appEnvironment["GREETING"] == "hello" }, "\(agent.stderr)")
            let pid = try #require(agent.appPid)

            try tenant.set("GREETING", "world")
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.appEnvironment["GREETING"] == "world" }, "\(agent.stderr)")
            #expect(agent.appPid != pid && agent.appPid != nil)

            let status = try agent.status()
            #expect(status.state == "running")
            #expect(status.config?.source == "controller")
            #expect(status.config?.keys == ["GREETING"])
            #expect(status.config?.controllerUp == true)
            #expect(agent.reloads("applied") == 2)
            #expect(agent.metric("coderunner_controller_up") == 1)
            #expect(agent.metric("coderunner_controller_errors_total") == 0)
            // Registration and heartbeats go through the same verified TLS path.
            #expect(TestSupport.waitUntil(timeout: Self.wait) {
                let list = (try? tenant.instances()) ?? []
                return list.count == 1 && list[0].state == "running"
            })
        }
    }

    struct Refusal: Sendable, CustomTestStringConvertible {
        let testDescription: String
        /// The certificate the terminator serves.
        let certificate: String
        /// The name that certificate is valid for (to check it is otherwise good).
        let serverName: String
        /// `--ca-file`, a file of the PKI; nil for the system's trust store.
        let caFile: String?
        /// libcurl's reason, as the agent logs it.
        let reason: String
    }

    static let refusals = [
        Refusal(testDescription: "no --ca-file: the system trust store does not know the test CA",
                certificate: "server", serverName: "127.0.0.1", caFile: nil, reason: unknownIssuer),
        Refusal(testDescription: "--ca-file holds an unrelated CA",
                certificate: "server", serverName: "127.0.0.1", caFile: "other-ca.pem", reason: unknownIssuer),
        Refusal(testDescription: "the right CA, but the certificate is for DNS:example.invalid, not 127.0.0.1",
                certificate: "wrong-name", serverName: "example.invalid", caFile: "ca.pem",
                reason: "SSL: no alternative certificate subject name matches target host name '127.0.0.1'"),
    ]

    @Test("the agent refuses a controller it cannot verify: the app does not start and the controller shows as down",
          arguments: refusals)
    func refused(_ refusal: Refusal) throws {
        try withTLSController(serving: refusal.certificate, as: refusal.serverName) { tenant, tls, pki, dir in
            let agent = try AgentProcess(controller: tls.base, token: tenant.agentToken, directory: dir.appendingPathComponent("a"),
                                         extra: refusal.caFile.map { ["--ca-file", pki.path($0)] } ?? [])
            defer { agent.stop() }
            let line = Self.refusal(tls, refusal.reason)
            #expect(TestSupport.waitUntil(timeout: Self.wait) { agent.stderr.contains(line) }, "\(agent.stderr)")
            #expect(TestSupport.waitUntil(timeout: Self.wait) {
                agent.metric("coderunner_controller_up") == 0 && (agent.metric("coderunner_controller_errors_total") ?? 0) >= 1
            }, "\(agent.metrics())")
            let errors = agent.metric("coderunner_controller_errors_total") ?? 0
            #expect(TestSupport.waitUntil(timeout: Self.wait) { (agent.metric("coderunner_controller_errors_total") ?? 0) > errors },
                    "the agent keeps retrying, and keeps failing")

            let status = try agent.status()
            #expect(status.state == "waiting_for_config")
            #expect(status.pid == nil && agent.appPid == nil, "the app never started")
            #expect(status.config?.controllerUp == false)
            #expect(status.config?.version == nil)
            #expect(agent.stderr.contains("waiting for config"))
            #expect(try tenant.instances().isEmpty, "not even the registration got through")
        }
    }

    /// Root can give one process its own view of /etc/ssl/certs (a private mount namespace); others skip the test.
    static let canMountPrivately: Bool = {
        guard geteuid() == 0, let p = try? Spawned("/usr/bin/unshare", ["--mount", "--propagation", "private", "true"]) else { return false }
        return p.waitForExit(timeout: .seconds(10)) == 0
    }()

    @Test("--ca-file pins the CA: the system's CA directory is not consulted, even when it trusts the server",
          .enabled(if: TLSTests.canMountPrivately, "needs root for a private mount namespace"))
    func caFilePins() throws {
        try withTLSController { tenant, tls, pki, dir in
            // A system store as libcurl reads it on Debian (the bundle file, then the hashed directory), mounted over
            // /etc/ssl/certs for the agent only: the bundle holds the unrelated CA, the directory also the test CA.
            let store = dir.appendingPathComponent("system-store")
            try FileManager.default.createDirectory(at: store, withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: pki.path("other-ca.pem"), toPath: store.appendingPathComponent("ca-certificates.crt").path)
            try FileManager.default.copyItem(atPath: pki.path("ca.pem"), toPath: store.appendingPathComponent("coderunner-test-ca.pem").path)
            try pki.openssl(["rehash", store.path])
            let inNamespace = ["/usr/bin/unshare", "--mount", "--propagation", "private",
                               "/bin/sh", "-c", #"mount --bind "$1" /etc/ssl/certs && shift && exec "$@""#, "sh", store.path]

            // Without --ca-file, that directory is what trusts the server.
            let system = try AgentProcess(controller: tls.base, token: tenant.agentToken, directory: dir.appendingPathComponent("system"),
                                          wrapper: inNamespace)
            defer { system.stop() }
            #expect(TestSupport.waitUntil(timeout: Self.wait) { system.appEnvironment["GREETING"] == "hello" }, "\(system.stderr)")

            // With --ca-file, only that file counts.
            let pinned = try AgentProcess(controller: tls.base, token: tenant.agentToken, directory: dir.appendingPathComponent("pinned"),
                                          extra: ["--ca-file", pki.path("other-ca.pem")], wrapper: inNamespace)
            defer { pinned.stop() }
            let line = Self.refusal(tls, Self.unknownIssuer)
            #expect(TestSupport.waitUntil(timeout: Self.wait) { pinned.stderr.contains(line) }, "\(pinned.stderr)")
            #expect(try pinned.status().state == "waiting_for_config")
            #expect(pinned.appPid == nil)
        }
    }
}
