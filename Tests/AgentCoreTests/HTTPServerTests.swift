// The HTTP endpoints live on a loopback port: good requests, bad ones, raw malformed bytes, idle
// (slowloris) connections and many connections. Clients are raw sockets so the bytes sent are exact.
import AgentCore
import CodeRunnerWire
import Foundation
import Glibc
import Supervision
import Testing
import TestSupport

/// A raw HTTP/1.x client on 127.0.0.1.
struct RawHTTPClient {
    let fd: Int32

    init(port: UInt16, receiveTimeoutSeconds: Int = 5) throws {
        do {
            fd = try TestSupport.connectLoopback(port, receiveTimeout: receiveTimeoutSeconds)
        } catch {
            throw HTTPTestError.connect(error.code.rawValue)
        }
    }

    func send(_ text: String) { send(Array(text.utf8)) }

    func send(_ bytes: [UInt8]) {
        var sent = 0
        while sent < bytes.count {
            let n = bytes[sent...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if n <= 0 { return }
            sent += n
        }
    }

    /// Reads until the peer closes or the receive timeout passes.
    func readAll() -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if n <= 0 { break }
            out += buffer[0..<n]
        }
        return out
    }

    func close() { Glibc.close(fd) }

    /// One request with `Connection: close`; returns the parsed response.
    static func exchange(port: UInt16, _ request: String) throws -> RawResponse {
        let client = try RawHTTPClient(port: port)
        defer { client.close() }
        client.send(request)
        return try RawResponse(client.readAll())
    }

    static func get(port: UInt16, _ path: String, method: String = "GET", headers: [String] = []) throws -> RawResponse {
        try exchange(port: port, "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
                     + headers.map { $0 + "\r\n" }.joined() + "\r\n")
    }
}

enum HTTPTestError: Error, Equatable { case connect(Int32), noResponse(String) }

struct RawResponse {
    var status: Int
    var headers: [String: String]
    var body: String

    init(_ bytes: [UInt8]) throws {
        let text = String(decoding: bytes, as: UTF8.self)
        guard let split = text.range(of: "\r\n\r\n") else { throw HTTPTestError.noResponse(text) }
        let head = text[..<split.lowerBound].split(separator: "\r\n")
        let statusLine = head.first.map(String.init) ?? ""
        status = Int(statusLine.split(separator: " ").dropFirst().first ?? "") ?? 0
        headers = [:]
        for line in head.dropFirst() {
            if let colon = line.firstIndex(of: ":") {
                headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
            }
        }
        body = String(text[split.upperBound...])
    }
}

/// A server on 127.0.0.1:0 around fixed figures and a real log ring; stopped on deinit.
final class LiveServer {
    let server: HTTPServer
    let logs = LogRing(capacity: 8)
    var port: UInt16 { server.address.port }

    init(token: BearerToken? = nil, limits: HTTPServerLimits = HTTPServerLimits()) throws {
        let observations = AgentObservations(
            identity: AgentIdentity(deployment: "dep-1", instance: "i-1", version: "0.1.0"),
            snapshot: { MetricsExpositionTests.snapshot }, logs: logs, selfUsage: { MetricsExpositionTests.agentUsage })
        observations.publish(MetricsExpositionTests.sample)
        server = try HTTPServer(listen: HTTPListenAddress(host: "127.0.0.1", port: 0),
                                router: HTTPRouter(observations: observations, token: token), limits: limits)
    }

    deinit { server.stop() }
}

@Suite(.serialized)
struct HTTPServerTests {
    @Test func servesMetricsStatusLogsAndHealth() throws {
        let live = try LiveServer()
        #expect(live.port != 0)
        live.logs.append("hello", stream: .stdout, timestamp: 1_795_740_001)
        live.logs.append("oops", stream: .stderr, timestamp: 1_795_740_002)
        live.logs.append("again", stream: .stdout, timestamp: 1_795_740_003)

        let metrics = try RawHTTPClient.get(port: live.port, "/metrics")
        #expect(metrics.status == 200)
        #expect(metrics.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        #expect(metrics.body.contains("coderunner_app_tcp_connections{deployment=\"dep-1\",instance=\"i-1\"} 5\n"))
        let (status, output) = try Promtool.check(metrics.body)
        #expect(status == 0 && output.isEmpty, "promtool: \(output)")

        let statusResponse = try RawHTTPClient.get(port: live.port, "/v1/status")
        #expect(statusResponse.status == 200)
        #expect(statusResponse.headers["content-type"] == "application/json")
        let decoded = try JSONDecoder().decode(AgentStatus.self, from: Data(statusResponse.body.utf8))
        #expect(decoded.state == "running")
        #expect(decoded.pid == 4321)
        #expect(decoded.lastExit == AgentExit(signal: 9, shellCode: 137))
        #expect(decoded.app.tcpConnections == 5)
        #expect(decoded.app.memoryRssBytes == 10_485_760)
        #expect(decoded.agent == MetricsExpositionTests.agentUsage)
        #expect(statusResponse.body.contains("\"lastExit\":{\"shellCode\":137,\"signal\":9}"))

        let logs = try RawHTTPClient.get(port: live.port, "/v1/logs?after=1&limit=1")
        #expect(logs.status == 200)
        let page = try JSONDecoder().decode(AgentLogs.self, from: Data(logs.body.utf8))
        #expect(page == AgentLogs(lines: [AgentLogLine(sequence: 2, timestamp: 1_795_740_002, stream: "stderr", text: "oops")], lastSequence: 3,
                                  oldestSequence: 1))
        let all = try JSONDecoder().decode(AgentLogs.self, from: Data(try RawHTTPClient.get(port: live.port, "/v1/logs").body.utf8))
        #expect(all.lines.map(\.text) == ["hello", "oops", "again"])

        let health = try RawHTTPClient.get(port: live.port, "/healthz")
        #expect(health.status == 200)
        #expect(health.body == "{\"status\":\"ok\"}\n")

        let head = try RawHTTPClient.get(port: live.port, "/healthz", method: "HEAD")
        #expect(head.status == 200)
        #expect(head.body.isEmpty)
    }

    @Test func badRequestsGetClearErrors() throws {
        let live = try LiveServer()
        let notFound = try RawHTTPClient.get(port: live.port, "/nope")
        #expect(notFound.status == 404)
        #expect(notFound.body == "{\"error\":{\"code\":\"not_found\",\"message\":\"no such endpoint: /nope; try /metrics, /v1/status, /v1/logs or /healthz\"}}\n")

        let post = try RawHTTPClient.exchange(port: live.port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello")
        #expect(post.status == 405)
        #expect(post.headers["allow"] == "GET, HEAD")
        #expect(post.body.contains("\"method_not_allowed\""))

        let big = try RawHTTPClient.exchange(port: live.port, "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n")
        #expect(big.status == 413)
        #expect(big.body.contains("\"payload_too_large\""))

        let badAfter = try RawHTTPClient.get(port: live.port, "/v1/logs?after=-3")
        #expect(badAfter.status == 400)
        #expect(badAfter.body.contains("after must be a sequence number (0 or more), got '-3'"))
        let badLimit = try RawHTTPClient.get(port: live.port, "/v1/logs?limit=0")
        #expect(badLimit.status == 400)

        // Headers beyond the per-connection memory limit: libmicrohttpd refuses them itself.
        let hugeHeader = try RawHTTPClient.exchange(port: live.port, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: \(String(repeating: "a", count: 40_000))\r\n\r\n")
        #expect([413, 431].contains(hugeHeader.status), "got \(hugeHeader.status)")
        let hugeURL = try RawHTTPClient.exchange(port: live.port, "GET /\(String(repeating: "a", count: 40_000)) HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect([413, 414].contains(hugeURL.status), "got \(hugeURL.status)")

        // Still healthy afterwards.
        #expect(try RawHTTPClient.get(port: live.port, "/healthz").status == 200)
    }

    /// What libmicrohttpd 0.9.75 (and our Host check) answers to malformed bytes; nil: it closes the
    /// connection without an answer. Either way the server goes on serving.
    @Test(arguments: [
        ("GARBAGE\r\n\r\n", nil),
        ("GET /metrics\r\n\r\n", 400),  // no HTTP version
        ("GET /metrics HTTP/1.1\r\n\r\n", 400),  // HTTP/1.1 without Host
        ("GET /metrics HTTP/1.1\r\nHost: x\r\nBroken header line\r\n\r\n", 400),
        ("GET /metrics HTTP/9.9\r\nHost: x\r\n\r\n", 505),
        ("\u{0}\u{1}\u{2}\u{ff}\r\n\r\n", nil),
    ] as [(String, Int?)])
    func malformedBytesGetAnErrorOrAClosedConnection(_ request: String, _ expected: Int?) throws {
        let live = try LiveServer()
        let client = try RawHTTPClient(port: live.port)
        client.send(request)
        let bytes = client.readAll()
        client.close()
        let status = bytes.isEmpty ? nil : try RawResponse(bytes).status
        #expect(status == expected, "answered \(String(describing: status)) to \(request.debugDescription)")
        #expect(try RawHTTPClient.get(port: live.port, "/healthz").status == 200)
    }

    @Test func tokenIsEnforcedExceptForHealth() throws {
        let token = try #require(BearerToken(fileContents: "s3cret-token\n"))
        let live = try LiveServer(token: token)
        let missing = try RawHTTPClient.get(port: live.port, "/metrics")
        #expect(missing.status == 401)
        #expect(missing.headers["www-authenticate"] == "Bearer realm=\"coderunner-agent\"")
        #expect(missing.body.contains("missing bearer token"))
        let wrong = try RawHTTPClient.get(port: live.port, "/v1/status", headers: ["Authorization: Bearer s3cret-tokem"])
        #expect(wrong.status == 401)
        #expect(wrong.body.contains("wrong bearer token"))
        #expect(try RawHTTPClient.get(port: live.port, "/v1/status", headers: ["Authorization: Bearer s3cret-token-longer"]).status == 401)
        #expect(try RawHTTPClient.get(port: live.port, "/v1/status", headers: ["Authorization: Basic czNjcmV0LXRva2Vu"]).status == 401)
        #expect(try RawHTTPClient.get(port: live.port, "/metrics", headers: ["Authorization: Bearer s3cret-token"]).status == 200)
        #expect(try RawHTTPClient.get(port: live.port, "/v1/logs", headers: ["Authorization: bearer s3cret-token"]).status == 200)
        #expect(try RawHTTPClient.get(port: live.port, "/healthz").status == 200)
    }

    @Test func tokenFileErrorsAreActionable() throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let empty = dir.appendingPathComponent("empty").path
        try #require(FileManager.default.createFile(atPath: empty, contents: Data("\n".utf8)))
        #expect(throws: HTTPServerError.tokenFile(path: empty, reason: "the file is empty")) { try BearerToken.load(path: empty) }
        let missing = dir.appendingPathComponent("missing").path
        #expect(throws: HTTPServerError.tokenFile(path: missing, reason: "No such file or directory")) { try BearerToken.load(path: missing) }
        let good = dir.appendingPathComponent("token").path
        try #require(FileManager.default.createFile(atPath: good, contents: Data("  abc \n".utf8)))
        #expect(try BearerToken.load(path: good).accepts(authorization: "Bearer abc"))
    }

    @Test func idleSlowlorisConnectionsAreClosedAndDoNotStallOthers() throws {
        var limits = HTTPServerLimits()
        limits.connectionTimeoutSeconds = 1
        let live = try LiveServer(limits: limits)
        let slow = try RawHTTPClient(port: live.port, receiveTimeoutSeconds: 10)
        defer { slow.close() }
        slow.send("GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ")  // and never finish
        #expect(try RawHTTPClient.get(port: live.port, "/healthz").status == 200)
        let clock = ContinuousClock()
        let start = clock.now
        let leftover = slow.readAll()  // returns when the server closes the idle connection
        let waited = clock.now - start
        #expect(leftover.isEmpty || (try? RawResponse(leftover).status) == 408, "\(leftover.count) bytes")
        #expect(waited < .seconds(5), "idle connection held for \(waited)")
    }

    @Test func manyConnectionsBeyondTheLimitDoNotStallTheServer() throws {
        var limits = HTTPServerLimits()
        limits.connectionLimit = 16
        limits.connectionTimeoutSeconds = 1
        let live = try LiveServer(limits: limits)
        var idle: [RawHTTPClient] = []
        defer { idle.forEach { $0.close() } }
        for _ in 0..<48 { idle.append(try RawHTTPClient(port: live.port, receiveTimeoutSeconds: 1)) }
        // Within a bounded time (idle ones time out), a real request gets through.
        var answered = 0
        #expect(TestSupport.waitUntil(timeout: .seconds(10), interval: .milliseconds(100)) {
            answered = (try? RawHTTPClient.get(port: live.port, "/healthz").status) ?? 0
            return answered == 200
        }, "last status \(answered)")
        // 64 quick requests in a row all succeed.
        var ok = 0
        for _ in 0..<64 where (try? RawHTTPClient.get(port: live.port, "/metrics").status) == 200 { ok += 1 }
        #expect(ok == 64)
    }

    @Test func listenAddressesParse() throws {
        #expect(try HTTPListenAddress.parse("127.0.0.1:9464") == HTTPListenAddress(host: "127.0.0.1", port: 9464))
        #expect(try HTTPListenAddress.parse("[::1]:0") == HTTPListenAddress(host: "::1", port: 0))
        #expect(try HTTPListenAddress.parse("localhost:80") == HTTPListenAddress(host: "localhost", port: 80))
        #expect(try HTTPListenAddress.parse("off") == nil)
        #expect(try HTTPListenAddress.parse("OFF") == nil)
        #expect(HTTPListenAddress.metricsDefault.description == "127.0.0.1:9464")
        let shape = ValueError("must be HOST:PORT, [IPv6]:PORT or off")
        let port = ValueError("needs a port from 0 to 65535 (0 takes a free port)")
        for (bad, error) in [("9464", shape), ("127.0.0.1", shape), ("::1:80", shape), ("[::1]80", shape),
                             ("127.0.0.1:99999", port), ("host:port", port), (":80", ValueError("needs a host, such as 127.0.0.1:9464"))] {
            #expect(throws: error) { try HTTPListenAddress.parse(bad) }
        }
        #expect(HTTPServerError.invalidListenAddress("x").description
                == "invalid --metrics-listen 'x': expected HOST:PORT (e.g. 127.0.0.1:9464, [::1]:0) or 'off'")
    }

    @Test func portInUseIsAnError() throws {
        let live = try LiveServer()
        let observations = AgentObservations(identity: AgentIdentity(version: "0"), snapshot: { SupervisorSnapshot(state: .starting) }, logs: nil)
        #expect(throws: HTTPServerError.bind(address: "127.0.0.1:\(live.port)", errno: EADDRINUSE)) {
            try HTTPServer(listen: HTTPListenAddress(host: "127.0.0.1", port: live.port), router: HTTPRouter(observations: observations, token: nil))
        }
    }

    @Test func stopClosesTheListeningSocket() throws {
        let live = try LiveServer()
        let port = live.port
        #expect(try RawHTTPClient.get(port: port, "/healthz").status == 200)
        live.server.stop()
        #expect(throws: HTTPTestError.connect(ECONNREFUSED)) { try RawHTTPClient(port: port) }
    }

    @Test func ipv6LoopbackWorks() throws {
        let observations = AgentObservations(identity: AgentIdentity(version: "0"), snapshot: { SupervisorSnapshot(state: .starting) }, logs: nil)
        let server = try HTTPServer(listen: HTTPListenAddress(host: "::1", port: 0), router: HTTPRouter(observations: observations, token: nil))
        defer { server.stop() }
        #expect(server.address.port != 0)
        #expect(server.address.description == "[::1]:\(server.address.port)")
    }
}
