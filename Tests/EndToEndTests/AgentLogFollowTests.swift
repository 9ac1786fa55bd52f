// Following a real app's output through the built agent's /v1/logs?wait= (CODERUNNER_BIN_DIR): a held request
// answers as soon as the app writes, answers no lines at its deadline, and the agent holds at most 16.
import CodeRunnerWire
import Foundation
import Glibc
import Testing
import TestSupport

@Suite(.serialized)
struct AgentLogFollowTests {
    /// A GET on its own connection, sent at once and read later, so that several can be held together.
    struct HeldGet {
        let fd: Int32

        init(port: UInt16, _ path: String, token: String? = nil) throws {
            fd = try TestSupport.connectLoopback(port, receiveTimeout: 20)
            var request = "GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            if let token { request += "Authorization: Bearer \(token)\r\n" }
            let bytes = Array((request + "\r\n").utf8)
            let sent = bytes.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard sent == bytes.count else {
                close(fd)
                throw POSIXError(.EIO)
            }
        }

        /// Status and body, read until the agent closes the connection (each read bounded by the receive timeout).
        func answer() -> (status: Int, body: String) {
            defer { close(fd) }
            var raw: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 65536)
            for _ in 0..<10_000 {
                let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if n <= 0 { break }
                raw += buffer[0..<n]
            }
            let text = String(decoding: raw, as: UTF8.self)
            guard let split = text.range(of: "\r\n\r\n") else { return (0, text) }
            let status = Int(text[..<split.lowerBound].split(separator: " ").dropFirst().first ?? "") ?? 0
            return (status, String(text[split.upperBound...]))
        }

        func logs() throws -> AgentLogs {
            let (status, body) = answer()
            guard status == 200 else { throw AgentProcessError.status(path: "/v1/logs", status, body) }
            return try JSONDecoder().decode(AgentLogs.self, from: Data(body.utf8))
        }
    }

    static func unixNow() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) / 1e9
    }

    @Test func aHeldRequestAnswersWithinMillisecondsOfTheAppWriting() throws {
        // Each line is the time the app wrote it (ns), taken just before the write.
        let agent = try AgentProcess(
            options: ["--restart", "never"],
            command: ["sh", "-c", "i=0; while [ $i -lt 60 ]; do sleep 0.25; date +%s%N; i=$((i+1)); done; exec sleep 60"],
            metricsListen: "127.0.0.1:0")
        defer { agent.cleanUp() }
        let port = try #require(agent.metricsAddress() != nil ? agent.port : nil, "no port announced: \(agent.stderr)")
        // Start from the line written last, so that every answer below was held until the app's next line.
        var after: UInt64 = 0
        try #require(TestSupport.waitUntil {
            after = (try? HeldGet(port: port, "/v1/logs").logs().lastSequence) ?? 0
            return after > 0
        })
        let first = after + 1
        var latencies: [Double] = []
        var sequences: [UInt64] = []
        for _ in 0..<8 {
            let started = ContinuousClock.now
            let held = try HeldGet(port: port, "/v1/logs?after=\(after)&wait=10s&limit=1000")
            let logs = try held.logs()
            let received = Self.unixNow()
            let line = try #require(logs.lines.last, "no line within \(ContinuousClock.now - started): \(logs)")
            let written = try #require(Double(line.text)) / 1e9
            latencies.append((received - written) * 1000)
            sequences += logs.lines.map(\.sequence)
            after = line.sequence
        }
        // Nothing lost or repeated between answers, and every answer came with the line that woke it: the
        // app writes every 250 ms while the requests wait up to 10 s.
        #expect(sequences == Array(first..<first + UInt64(sequences.count)))
        #expect(latencies.allSatisfy { $0 >= 0 && $0 < 100 }, "ms from the app's write to the answer: \(latencies)")
        #expect(agent.stop() == 128 + SIGTERM)
    }

    @Test func aHeldRequestAnswersNoLinesAtItsDeadline() throws {
        let agent = try AgentProcess(options: ["--restart", "never"], command: ["sh", "-c", "echo one; exec sleep 60"],
                                     metricsListen: "127.0.0.1:0")
        defer { agent.cleanUp() }
        let port = try #require(agent.metricsAddress() != nil ? agent.port : nil, "no port announced: \(agent.stderr)")
        try #require(TestSupport.waitUntil { (try? HeldGet(port: port, "/v1/logs").logs().lastSequence) == 1 })
        let start = ContinuousClock.now
        let logs = try HeldGet(port: port, "/v1/logs?after=1&wait=400ms").logs()
        let took = ContinuousClock.now - start
        #expect(logs == AgentLogs(lines: [], lastSequence: 1, oldestSequence: 1))
        #expect(took >= .milliseconds(400) && took < .milliseconds(1400), "answered after \(took)")
        let tail = try HeldGet(port: port, "/v1/logs?tail=3&wait=30s").logs()
        #expect(tail.lines.map(\.text) == ["one"])
        #expect(agent.stop() == 128 + SIGTERM)
    }

    @Test func sixteenAreHeldAtMostAndStoppingTheAgentAnswersThem() throws {
        let dir = try TestSupport.makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let tokenPath = dir.appendingPathComponent("token").path
        try #require(FileManager.default.createFile(atPath: tokenPath, contents: Data("t0ken\n".utf8)))
        let agent = try AgentProcess(options: ["--restart", "never", "--metrics-token-file", tokenPath],
                                     command: ["sh", "-c", "echo one; exec sleep 60"], metricsListen: "127.0.0.1:0", in: dir)
        defer { agent.cleanUp() }
        let port = try #require(agent.metricsAddress() != nil ? agent.port : nil, "no port announced: \(agent.stderr)")
        try #require(TestSupport.waitUntil { (try? HeldGet(port: port, "/v1/logs", token: "t0ken").logs().lastSequence) == 1 })
        #expect(try HeldGet(port: port, "/v1/logs?after=1&wait=30s").answer().status == 401)

        let held = try (0..<16).map { _ in try HeldGet(port: port, "/v1/logs?after=1&wait=30s", token: "t0ken") }
        // A 1 ms probe is held briefly (and answered) while there is room; once the 16 are held it gets 429.
        var refused: (status: Int, body: String)?
        for _ in 0..<100 {
            let probe = try HeldGet(port: port, "/v1/logs?after=1&wait=1ms", token: "t0ken").answer()
            if probe.status == 429 { refused = probe; break }
            usleep(10_000)
        }
        let answer = try #require(refused, "no 429 with 16 requests held")
        #expect(answer.body == "{\"error\":{\"code\":\"too_many_requests\",\"message\":\"16 /v1/logs requests with wait are held already, the most at once; ask without wait, or again later\"}}\n")
        #expect(try HeldGet(port: port, "/v1/logs?after=0", token: "t0ken").logs().lines.map(\.text) == ["one"])

        // SIGTERM: the app stops, then every held request gets its answer (no lines) long before its 30 s.
        let start = ContinuousClock.now
        agent.send(SIGTERM)
        for request in held {
            #expect(try request.logs() == AgentLogs(lines: [], lastSequence: 1, oldestSequence: 1))
        }
        #expect(ContinuousClock.now - start < .seconds(10), "held answers came after \(ContinuousClock.now - start)")
        #expect(agent.waitForExit() == 128 + SIGTERM)
    }
}
