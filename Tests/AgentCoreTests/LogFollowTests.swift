// /v1/logs for followers: the query's rules (pure), the held requests' list on a virtual clock (pure), and
// held requests against a live in-process server with a real ring (appends come from the test).
import AgentCore
import CodeRunnerWire
import Foundation
import Glibc
import Supervision
import Synchronization
import Testing
import TestSupport

@Suite("/v1/logs query rules")
struct LogQueryTests {
    @Test(arguments: [
        ("500ms", Duration.milliseconds(500)), ("30s", .seconds(30)), ("30", .seconds(30)), ("2.5s", .milliseconds(2500)),
        ("0", .zero), ("0ms", .zero), ("60s", .seconds(60)), ("61s", .seconds(61)), ("1.5ms", .microseconds(1500)),
        ("999999999", .seconds(999_999_999)),
    ] as [(String, Duration)])
    func waitDurationsParse(_ text: String, _ expected: Duration) {
        #expect(HTTPRouter.parseWait(text) == expected)
    }

    @Test(arguments: ["", "s", "ms", "-1s", "1e3", "1e3s", "1.2.3s", ".5s", "5.s", "5m", "5 s", "abc", "1000000000", "+5", "٣s"])
    func badWaitDurationsDoNotParse(_ text: String) {
        #expect(HTTPRouter.parseWait(text) == nil)
    }

    @Test(arguments: [
        ([:], LogQuery(start: .after(0), limit: 100)),
        (["after": "7", "limit": "3"], LogQuery(start: .after(7), limit: 3)),
        (["after": "7", "wait": "30s", "limit": "1000"], LogQuery(start: .after(7), limit: 1000, wait: .seconds(30))),
        (["wait": "250ms"], LogQuery(start: .after(0), limit: 100, wait: .milliseconds(250))),
        (["tail": "50"], LogQuery(start: .tail(50), limit: 50)),
        (["tail": "1000", "wait": "1s"], LogQuery(start: .tail(1000), limit: 1000, wait: .seconds(1))),
    ] as [([String: String], LogQuery)])
    func queriesParse(_ query: [String: String], _ expected: LogQuery) {
        #expect(HTTPRouter.logQuery(query) == .success(expected))
    }

    @Test(arguments: [
        (["after": "-3"], "after must be a sequence number (0 or more), got '-3'"),
        (["limit": "0"], "limit must be between 1 and 1000, got '0'"),
        (["limit": "1001"], "limit must be between 1 and 1000, got '1001'"),
        (["wait": "61s"], "wait must be at most 60s, got '61s'"),
        (["wait": "60001ms"], "wait must be at most 60s, got '60001ms'"),
        (["wait": "soon"], "wait must be a duration such as 500ms, 30s or 2.5s (plain numbers are seconds), got 'soon'"),
        (["wait": "-1s"], "wait must be a duration such as 500ms, 30s or 2.5s (plain numbers are seconds), got '-1s'"),
        (["tail": "0"], "tail must be between 1 and 1000, got '0'"),
        (["tail": "1001"], "tail must be between 1 and 1000, got '1001'"),
        (["tail": "x"], "tail must be between 1 and 1000, got 'x'"),
        (["tail": "5", "after": "2"], "tail and after cannot be combined: tail=N answers the newest N lines, after=SEQ the lines after SEQ"),
        (["tail": "5", "limit": "2"], "tail and limit cannot be combined: tail=N answers at most N lines"),
    ] as [([String: String], String)])
    func badQueriesAreRefusedWithAReason(_ query: [String: String], _ message: String) {
        #expect(HTTPRouter.logQuery(query) == .failure(HTTPRouter.LogQueryError(message: message)))
    }

    static func router(token: BearerToken? = nil, ring: LogRing? = nil) -> HTTPRouter {
        HTTPRouter(observations: AgentObservations(identity: AgentIdentity(version: "0"), snapshot: { SupervisorSnapshot(state: .running) },
                                                   logs: ring, selfUsage: { AgentUsage() }),
                   token: token)
    }

    @Test func theRouterHandsLogQueriesToTheServerAfterItsChecks() throws {
        let token = try #require(BearerToken(fileContents: "t0ken"))
        let router = Self.router(token: token)
        let auth = "Bearer t0ken"
        #expect(router.route(HTTPRequestHead(method: "GET", path: "/v1/logs", query: ["after": "4", "wait": "30s", "limit": "1000"], authorization: auth))
                == .logs(LogQuery(start: .after(4), limit: 1000, wait: .seconds(30))))
        #expect(router.route(HTTPRequestHead(method: "HEAD", path: "/v1/logs", query: ["tail": "10"], authorization: auth))
                == .logs(LogQuery(start: .tail(10), limit: 10)))
        // The token is checked before anything is held.
        guard case .response(let unauthorized) = router.route(HTTPRequestHead(method: "GET", path: "/v1/logs", query: ["wait": "30s"])) else {
            Issue.record("a request without the token was routed to the logs")
            return
        }
        #expect(unauthorized.status == 401)
        guard case .response(let bad) = router.route(HTTPRequestHead(method: "GET", path: "/v1/logs", query: ["wait": "2m"], authorization: auth)) else {
            Issue.record("a bad wait was routed to the logs")
            return
        }
        #expect(bad.status == 400)
        #expect(bad.bodyText == "{\"error\":{\"code\":\"bad_request\",\"message\":\"wait must be a duration such as 500ms, 30s or 2.5s (plain numbers are seconds), got '2m'\"}}\n")
    }

    @Test func respondAnswersLogsAtOnceWithTheRingsBounds() throws {
        let ring = LogRing(capacity: 2)
        for i in 1...3 { ring.append("l\(i)", stream: .stdout, timestamp: Double(i)) }
        let router = Self.router(ring: ring)
        let tail = router.respond(to: HTTPRequestHead(method: "GET", path: "/v1/logs", query: ["tail": "1", "wait": "30s"]))
        #expect(tail.status == 200)
        #expect(tail.bodyText == "{\"lastSequence\":3,\"lines\":[{\"sequence\":3,\"stream\":\"stdout\",\"text\":\"l3\",\"timestamp\":3}],\"oldestSequence\":2}\n")
        let empty = Self.router().respond(to: HTTPRequestHead(method: "GET", path: "/v1/logs"))
        #expect(empty.bodyText == "{\"lastSequence\":0,\"lines\":[],\"oldestSequence\":1}\n")
    }
}

@Suite("Held /v1/logs requests: the wait list")
struct LogWaitListTests {
    @Test func holdsUpToItsCapacityAndWakesThoseALineIsFor() {
        var list = LogWaitList<Int>(capacity: 3)
        #expect(list.add(1, after: 5, deadline: .seconds(30)) == .held)
        #expect(list.add(2, after: 7, deadline: .seconds(10)) == .held)
        #expect(list.add(3, after: 5, deadline: .seconds(20)) == .held)
        #expect(list.add(4, after: 5, deadline: .seconds(1)) == .full)
        #expect(list.count == 3)
        #expect(list.nextDeadline == .seconds(10))
        #expect(list.wake(lastSequence: 5) == [])
        #expect(list.wake(lastSequence: 6) == [1, 3])
        #expect(list.entries.map(\.id) == [2])
        #expect(list.add(4, after: 6, deadline: .seconds(1)) == .held)
        #expect(list.wake(lastSequence: 8) == [2, 4])
        #expect(list.count == 0)
        #expect(list.nextDeadline == nil)
    }

    @Test func expiresByDeadlineOnAVirtualClock() {
        var list = LogWaitList<Int>(capacity: 16)
        let start = Duration.seconds(1000)
        for (id, wait) in [(1, Duration.milliseconds(500)), (2, .seconds(30)), (3, .milliseconds(500)), (4, .seconds(2))] {
            #expect(list.add(id, after: 0, deadline: start + wait) == .held)
        }
        #expect(list.nextDeadline == start + .milliseconds(500))
        #expect(list.expire(now: start + .milliseconds(499)) == [])
        #expect(list.expire(now: start + .milliseconds(500)) == [1, 3])
        #expect(list.nextDeadline == start + .seconds(2))
        #expect(list.expire(now: start + .seconds(29)) == [4])
        #expect(list.nextDeadline == start + .seconds(30))
        #expect(list.expire(now: start + .seconds(31)) == [2])
        #expect(list.nextDeadline == nil)
    }

    @Test func closingReleasesEveryRequestAndRefusesNewOnes() {
        var list = LogWaitList<Int>(capacity: 2)
        #expect(list.add(1, after: 0, deadline: .seconds(5)) == .held)
        #expect(list.add(2, after: 3, deadline: .seconds(9)) == .held)
        #expect(list.close() == [1, 2])
        #expect(list.isClosed)
        #expect(list.add(3, after: 0, deadline: .seconds(5)) == .closed)
        #expect(list.count == 0)
        #expect(list.wake(lastSequence: 100) == [])
        #expect(list.close() == [])
    }

    @Test func aListWithNoRoomHoldsNothing() {
        var list = LogWaitList<Int>(capacity: 0)
        #expect(list.add(1, after: 0, deadline: .seconds(5)) == .full)
    }
}

@Suite("The /v1/logs document")
struct LogsJSONTests {
    static func encoderBytes(_ logs: AgentLogs) throws -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return Array(try encoder.encode(logs)) + [0x0A]
    }

    static let allControlCharacters = String(decoding: Array(0..<0x20 as Range<UInt8>), as: UTF8.self)

    @Test(arguments: [
        AgentLogs(lines: [], lastSequence: 0, oldestSequence: 1),
        AgentLogs(lines: [AgentLogLine(sequence: 7, timestamp: 1_796_206_100.61655, stream: "stdout", text: "listening on :8080")],
                  lastSequence: 9, oldestSequence: 3),
        AgentLogs(lines: [
            AgentLogLine(sequence: 1, timestamp: 2, stream: "stderr", text: "quote \" backslash \\ slash / tab \t"),
            AgentLogLine(sequence: 2, timestamp: 0.1, stream: "stdout", text: allControlCharacters + "\u{7f} é € 😀 \u{2028}"),
            AgentLogLine(sequence: 3, timestamp: 1e20, stream: "stdout", text: ""),
            AgentLogLine(sequence: UInt64.max, timestamp: 1e-7, stream: "stdout", text: "{\"level\":\"error\",\"msg\":\"x\"}"),
            AgentLogLine(sequence: 4, timestamp: 1_796_206_100, stream: "stdout", text: "ERROR 5e-324"),
        ], lastSequence: UInt64.max, oldestSequence: 1),
    ])
    func writesTheBytesJSONEncoderWrites(_ logs: AgentLogs) throws {
        let bytes = LogsJSON.render(logs)
        #expect(String(decoding: bytes, as: UTF8.self) == String(decoding: try Self.encoderBytes(logs), as: UTF8.self))
        #expect(try JSONDecoder().decode(AgentLogs.self, from: Data(bytes)) == logs)
    }
}

@Suite("Functions kept for other threads")
struct KeptFunctionTests {
    /// Swift 6.3 wraps a closure kept directly in a Mutex in one more reabstraction thunk each time it is read,
    /// so the n-th call walks n thunks: 20,000 calls took minutes. Boxed, they take milliseconds; the bound
    /// below is a hundred times that, far from either.
    @Test func aRingsWakeUpAndTheStatusProviderCostTheSameOnTheLastCallAsOnTheFirst() {
        let ring = LogRing(capacity: 4)
        let calls = Mutex(0)
        ring.setWake { calls.withLock { $0 += 1 } }
        let observations = AgentObservations(identity: AgentIdentity(version: "0"), snapshot: { SupervisorSnapshot(state: .running) },
                                             logs: ring, selfUsage: { AgentUsage() })
        observations.setConfigStatus {
            AgentConfigStatus(version: 3, checksum: nil, keys: [], source: nil, lastReloadResult: nil, lastReloadVersion: nil,
                              lastReloadReason: nil, controllerUp: true, lastKnownGoodVersion: nil)
        }
        let start = ContinuousClock.now
        var versions: Int64 = 0
        for _ in 0..<20_000 where ContinuousClock.now - start < .seconds(5) {
            ring.armWake()
            ring.append("x", stream: .stdout, timestamp: 0)
            versions += observations.status().config?.version ?? 0
        }
        let took = ContinuousClock.now - start
        #expect(calls.withLock { $0 } == 20_000)
        #expect(versions == 60_000)
        #expect(took < .seconds(5), "20,000 calls took \(took)")
    }
}

/// A raw GET sent at once and read later, so that several requests can be held at the same time.
private struct PendingGet {
    let client: RawHTTPClient

    init(port: UInt16, _ path: String, headers: [String] = [], receiveTimeoutSeconds: Int = 10) throws {
        client = try RawHTTPClient(port: port, receiveTimeoutSeconds: receiveTimeoutSeconds)
        client.send("GET \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers.map { $0 + "\r\n" }.joined() + "\r\n")
    }

    /// The whole answer (the server closes after it), and how long it took from this call.
    func answer() throws -> (RawResponse, Duration) {
        let start = ContinuousClock.now
        defer { client.close() }
        let response = try RawResponse(client.readAll())
        return (response, ContinuousClock.now - start)
    }

    /// The logs document of a 200 answer.
    func logs() throws -> (AgentLogs, Duration) {
        let (response, took) = try answer()
        guard response.status == 200 else { throw HTTPTestError.noResponse("\(response.status): \(response.body)") }
        return (try JSONDecoder().decode(AgentLogs.self, from: Data(response.body.utf8)), took)
    }
}

@Suite("Held /v1/logs requests on a live server", .serialized)
struct HeldLogRequestTests {
    @Test func aHeldRequestAnswersWhenALineIsAppended() throws {
        let live = try LiveServer()
        live.logs.append("first", stream: .stdout, timestamp: 1)
        let held = try PendingGet(port: live.port, "/v1/logs?after=1&wait=20s")
        // The request is held (no answer yet) while no line comes.
        Now.sleep(.milliseconds(150))
        var probe = pollfd(fd: held.client.fd, events: Int16(POLLIN), revents: 0)
        #expect(poll(&probe, 1, 0) == 0, "answered before any line was appended")
        live.logs.append("second", stream: .stderr, timestamp: 2)
        let (logs, took) = try held.logs()
        #expect(logs == AgentLogs(lines: [AgentLogLine(sequence: 2, timestamp: 2, stream: "stderr", text: "second")],
                                  lastSequence: 2, oldestSequence: 1))
        #expect(took < .seconds(5), "took \(took): the append did not wake it")
        // Other requests are served while one is held: MHD's thread never waits.
        let other = try PendingGet(port: live.port, "/v1/logs?after=2&wait=20s")
        #expect(try RawHTTPClient.get(port: live.port, "/healthz").status == 200)
        live.logs.append("third", stream: .stdout, timestamp: 3)
        #expect(try other.logs().0.lines.map(\.text) == ["third"])
    }

    @Test func aHeldRequestAnswersNoLinesAtItsDeadline() throws {
        let live = try LiveServer()
        live.logs.append("only", stream: .stdout, timestamp: 1)
        let (logs, took) = try PendingGet(port: live.port, "/v1/logs?after=1&wait=300ms").logs()
        #expect(logs == AgentLogs(lines: [], lastSequence: 1, oldestSequence: 1))
        #expect(took >= .milliseconds(250) && took < .seconds(5), "took \(took)")
    }

    @Test func requestsWithSomethingToSayAreNotHeld() throws {
        let live = try LiveServer()
        for i in 1...3 { live.logs.append("l\(i)", stream: .stdout, timestamp: Double(i)) }
        let (lines, _) = try PendingGet(port: live.port, "/v1/logs?after=1&wait=20s&limit=1").logs()
        #expect(lines == AgentLogs(lines: [AgentLogLine(sequence: 2, timestamp: 2, stream: "stdout", text: "l2")], lastSequence: 3, oldestSequence: 1))
        let (tail, _) = try PendingGet(port: live.port, "/v1/logs?tail=2&wait=20s").logs()
        #expect(tail.lines.map(\.sequence) == [2, 3])
        // A cursor ahead of the ring (an earlier run of the agent) is answered at once: lastSequence < after.
        let (ahead, _) = try PendingGet(port: live.port, "/v1/logs?after=40&wait=20s").logs()
        #expect(ahead == AgentLogs(lines: [], lastSequence: 3, oldestSequence: 1))
    }

    @Test func aTailOfAnEmptyRingWaitsForTheFirstLines() throws {
        let live = try LiveServer()
        let held = try PendingGet(port: live.port, "/v1/logs?tail=5&wait=20s")
        Now.sleep(.milliseconds(100))
        live.logs.append("hello", stream: .stdout, timestamp: 7)
        let (logs, took) = try held.logs()
        #expect(logs == AgentLogs(lines: [AgentLogLine(sequence: 1, timestamp: 7, stream: "stdout", text: "hello")], lastSequence: 1, oldestSequence: 1))
        #expect(took < .seconds(5))
    }

    @Test func connectionsStayOpenBetweenRequestsSoAFollowerReusesOne() throws {
        let live = try LiveServer()
        live.logs.append("one", stream: .stdout, timestamp: 1)
        let client = try RawHTTPClient(port: live.port, receiveTimeoutSeconds: 10)
        defer { client.close() }
        // Two requests on one connection, the first held: the second is answered after it, on the same connection.
        client.send("GET /v1/logs?after=1&wait=20s HTTP/1.1\r\nHost: x\r\n\r\nGET /v1/logs?tail=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        Now.sleep(.milliseconds(100))
        live.logs.append("two", stream: .stdout, timestamp: 2)
        let text = String(decoding: client.readAll(), as: UTF8.self)
        let answers = text.components(separatedBy: "HTTP/1.1 ").dropFirst()
        #expect(answers.count == 2, "\(text)")
        #expect(answers.allSatisfy { $0.hasPrefix("200 OK\r\n") })
        #expect(answers.first?.contains("Connection: close") == false)
        #expect(answers.allSatisfy { $0.hasSuffix("{\"lastSequence\":2,\"lines\":[{\"sequence\":2,\"stream\":\"stdout\",\"text\":\"two\",\"timestamp\":2}],\"oldestSequence\":1}\n") })
    }

    @Test func beyondTheBoundRequestsGet429AndStopAnswersTheHeldOnes() throws {
        var limits = HTTPServerLimits()
        limits.heldLogRequests = 3
        let token = try #require(BearerToken(fileContents: "s3cret"))
        let live = try LiveServer(token: token, limits: limits)
        let auth = ["Authorization: Bearer s3cret"]
        // Without the token nothing is held: 401 at once.
        #expect(try PendingGet(port: live.port, "/v1/logs?wait=20s").answer().0.status == 401)
        let held = try (0..<3).map { _ in try PendingGet(port: live.port, "/v1/logs?after=0&wait=30s", headers: auth) }
        // Once the three are held (a 1 ms probe is held briefly and answered until then), the next gets 429.
        var refused: RawResponse?
        for _ in 0..<100 {
            let probe = try PendingGet(port: live.port, "/v1/logs?after=0&wait=1ms", headers: auth).answer().0
            if probe.status == 429 { refused = probe; break }
            Now.sleep(.milliseconds(10))
        }
        let answer = try #require(refused)
        #expect(answer.headers["retry-after"] == "1")
        #expect(answer.body == "{\"error\":{\"code\":\"too_many_requests\",\"message\":\"3 /v1/logs requests with wait are held already, the most at once; ask without wait, or again later\"}}\n")
        // Requests without wait are still served.
        #expect(try PendingGet(port: live.port, "/v1/logs", headers: auth).answer().0.status == 200)
        let start = ContinuousClock.now
        live.server.stop()
        for request in held {
            let (logs, _) = try request.logs()
            #expect(logs == AgentLogs(lines: [], lastSequence: 0, oldestSequence: 1))
        }
        #expect(ContinuousClock.now - start < .seconds(5), "stop took \(ContinuousClock.now - start)")
    }
}
