// The live streams' pure parts: the frame codec, the level parser, the time format, the bounded queue with its
// drop counts, the cross-instance order, the upgrade gate, the metrics summary and the logs route's parameters.
import CodeRunnerWire
import Foundation
import HTTPTypes
import NIOCore
import Testing
@testable import ControlPlane

@Suite struct LiveFrameCodecTests {
    @Test func decodesEveryCommand() {
        #expect(LiveFrames.decode(#"{"event":"ping"}"#) == .success(.ping))
        #expect(LiveFrames.decode(#"{"event":"subscribe_logs","data":{"deploymentId":"d1","filter":"Err","tail":50,"after":{"i1":7}}}"#)
            == .success(.subscribeLogs(LogSubscription(deploymentId: "d1", filter: "Err", tail: 50, after: ["i1": 7]))))
        #expect(LiveFrames.decode(#"{"event":"subscribe_logs","data":{"deploymentId":"d1","filter":""}}"#)
            == .success(.subscribeLogs(LogSubscription(deploymentId: "d1", filter: nil, tail: 0, after: [:]))))
        #expect(LiveFrames.decode(#"{"event":"subscribe_logs","data":{"deploymentId":"d1","batch":true}}"#)
            == .success(.subscribeLogs(LogSubscription(deploymentId: "d1", filter: nil, tail: 0, after: [:], batch: true))))
        #expect(LiveFrames.decode(#"{"event":"subscribe_logs","data":{"deploymentId":"d1","batch":false}}"#)
            == .success(.subscribeLogs(LogSubscription(deploymentId: "d1", filter: nil, tail: 0, after: [:], batch: false))))
        #expect(LiveFrames.decode(#"{"event":"unsubscribe_logs","data":{"deploymentId":"d1"}}"#) == .success(.unsubscribeLogs(deploymentId: "d1")))
        #expect(LiveFrames.decode(#"{"event":"unsubscribe_logs"}"#) == .success(.unsubscribeLogs(deploymentId: nil)))
        #expect(LiveFrames.decode(#"{"event":"subscribe_status","data":{"deploymentId":"d2"}}"#) == .success(.subscribeStatus(deploymentId: "d2")))
        #expect(LiveFrames.decode(#"{"event":"unsubscribe_status","data":{}}"#) == .success(.unsubscribeStatus(deploymentId: nil)))
        #expect(LiveFrames.decode(#"{"event":"subscribe_metrics","data":{"deploymentId":"d3"}}"#) == .success(.subscribeMetrics(deploymentId: "d3")))
        #expect(LiveFrames.decode(#"{"event":"unsubscribe_metrics","data":{"deploymentId":"d3"}}"#) == .success(.unsubscribeMetrics(deploymentId: "d3")))
    }

    @Test(arguments: [
        ("not json", "malformed frame: expected JSON {\"event\": NAME, \"data\": {...}}"),
        ("[1,2]", "malformed frame: expected JSON {\"event\": NAME, \"data\": {...}}"),
        (#"{"data":{}}"#, "malformed frame: \"event\" is required"),
        (#"{"event":"subscribe"}"#, "unknown event \"subscribe\""),
        (#"{"event":"subscribe_logs","data":{}}"#, "subscribe_logs: data.deploymentId is required"),
        (#"{"event":"subscribe_status"}"#, "subscribe_status: data.deploymentId is required"),
        (#"{"event":"subscribe_logs","data":{"deploymentId":"d","tail":1001}}"#, "subscribe_logs: data.tail must be from 0 to 1000"),
        (#"{"event":"subscribe_logs","data":{"deploymentId":"d","tail":-1}}"#, "subscribe_logs: data.tail must be from 0 to 1000"),
        (#"{"event":"subscribe_logs","data":{"deploymentId":"d","tail":"5"}}"#, "malformed frame: expected JSON {\"event\": NAME, \"data\": {...}}"),
        (#"{"event":"subscribe_logs","data":{"deploymentId":"d","batch":"yes"}}"#, "subscribe_logs: data.batch must be true or false"),
        (#"{"event":"subscribe_logs","data":{"deploymentId":"d","batch":1}}"#, "subscribe_logs: data.batch must be true or false"),
    ])
    func refusesWithAMessage(_ frame: String, _ message: String) {
        #expect(LiveFrames.decode(frame) == .failure(LiveFrameError(message)))
    }

    @Test func encodesTheContractsShapes() {
        #expect(String(buffer: LiveFrames.confirmed("logs", "d1")) == #"{"data":{"deploymentId":"d1","type":"logs"},"event":"subscription_confirmed"}"#)
        #expect(String(buffer: LiveFrames.notFound("d9")) == #"{"data":{"deploymentId":"d9","message":"Deployment not found"},"event":"subscription_error"}"#)
        #expect(String(buffer: LiveFrames.pong()) == #"{"data":{},"event":"pong"}"#)
        #expect(String(buffer: LiveFrames.dropped("d1", 3)) == #"{"data":{"count":3,"deploymentId":"d1"},"event":"logs_dropped"}"#)
        let line = RelayedLine(deploymentId: "d1", instanceId: "i1",
                               line: AgentLine(sequence: 42, timestamp: 1764669908.123, stream: "stderr", text: "WARN disk at 91%"),
                               stamp: 1764669908.123)
        #expect(String(buffer: line.frame)
            == #"{"data":{"deploymentId":"d1","instanceId":"i1","level":"warn","message":"WARN disk at 91%","seq":42,"stream":"stderr","timestamp":"2025-12-02T10:05:08.123Z"},"event":"log_update"}"#)
        // The line alone is the frame's data, byte for byte, and a batch carries it as it is.
        let update = LiveFrames.LogUpdate(deploymentId: "d1", instanceId: "i1", seq: 42, timestamp: "2025-12-02T10:05:08.123Z",
                                          level: "warn", stream: "stderr", message: "WARN disk at 91%")
        #expect(line.frame == LiveFrames.encode("log_update", update))
        #expect(String(buffer: line.line)
            == #"{"deploymentId":"d1","instanceId":"i1","level":"warn","message":"WARN disk at 91%","seq":42,"stream":"stderr","timestamp":"2025-12-02T10:05:08.123Z"}"#)
        #expect(String(buffer: LiveFrames.logBatch("d1", [ByteBuffer(string: #"{"seq":1}"#), ByteBuffer(string: #"{"seq":2}"#)]))
            == #"{"data":{"deploymentId":"d1","lines":[{"seq":1},{"seq":2}]},"event":"log_batch"}"#)
        #expect(String(buffer: LiveFrames.logBatch("d/\"1", [line.line]))
            == #"{"data":{"deploymentId":"d/\"1","lines":["# + String(buffer: line.line) + #"]},"event":"log_batch"}"#)
        let metrics = LiveFrames.encode("metrics_update", LiveFrames.MetricsUpdate(
            deploymentId: "d1", timestamp: "2025-12-02T10:05:08.123Z",
            metrics: .init(cpu: 12.5, memory: 40, requests: nil, connections: 3, instances: 2)))
        #expect(String(buffer: metrics)
            == #"{"data":{"deploymentId":"d1","metrics":{"connections":3,"cpu":12.5,"instances":2,"memory":40,"requests":null},"timestamp":"2025-12-02T10:05:08.123Z"},"event":"metrics_update"}"#)
    }
}

@Suite struct LogLevelTests {
    @Test(arguments: [
        ("ERROR connection refused", "stdout", "error"),
        ("error: connection refused", "stdout", "error"),
        ("[WARN] low disk", "stdout", "warn"),
        ("WARNING low disk", "stdout", "warn"),
        ("  INFO started", "stderr", "info"),
        ("DEBUG x=1", "stdout", "debug"),
        (#"{"level":"warning","msg":"slow"}"#, "stdout", "warn"),
        (#"{"msg":"no level","level":"ERROR"}"#, "stdout", "error"),
        (#"{"level":"verbose"}"#, "stderr", "error"),
        (#"{"level":3}"#, "stdout", "info"),
        ("{not json", "stdout", "info"),
        ("Information only", "stdout", "info"),
        ("errors were found", "stdout", "info"),
        ("plain line", "stderr", "error"),
        ("plain line", "stdout", "info"),
        ("", "stdout", "info"),
    ])
    func levelOfALine(_ text: String, _ stream: String, _ level: String) {
        #expect(LogLevel.of(text, stream: stream) == level)
    }
}

@Suite struct LiveTimeTests {
    @Test(arguments: [
        (0.0, "1970-01-01T00:00:00.000Z"),
        (1764669908.123, "2025-12-02T10:05:08.123Z"),
        (-0.001, "1969-12-31T23:59:59.999Z"),
        (951782400.5, "2000-02-29T00:00:00.500Z"),
        (4102444799.999, "2099-12-31T23:59:59.999Z"),
    ])
    func iso8601WithMilliseconds(_ seconds: Double, _ text: String) {
        #expect(LiveTime.iso8601(seconds) == text)
    }
}

@Suite struct OutboxQueueTests {
    func frame(_ s: String) -> ByteBuffer { ByteBuffer(string: s) }
    func texts(_ frames: [ByteBuffer]) -> [String] { frames.map { String(buffer: $0) } }

    @Test func dropsWhatOverflowsAndCountsIt() {
        var q = OutboxQueue(logCapacity: 2)
        // The mutating calls happen outside #expect, which evaluates its operands as constants.
        let taken = [q.pushLog("d1", frame("a")), { q.pushControl(frame("c")); return true }(), q.pushLog("d1", frame("b")),
                     q.pushLog("d1", frame("x")), q.pushLog("d2", frame("y"))]
        #expect(taken == [true, true, true, false, false])
        #expect(q.droppedTotal == 2)
        #expect(texts(q.drain()) == ["a", "c", "b", String(buffer: LiveFrames.dropped("d1", 1)), String(buffer: LiveFrames.dropped("d2", 1))])
        #expect(q.isEmpty)
    }

    @Test func theCountComesBeforeTheDeploymentsNextLine() {
        var q = OutboxQueue(logCapacity: 1)
        q.pushLog("d1", frame("a"))
        q.pushLog("d1", frame("x"))
        q.pushLog("d1", frame("y"))
        #expect(texts(q.drain()) == ["a", String(buffer: LiveFrames.dropped("d1", 2))])
        q.pushLog("d1", frame("b"))
        q.pushLog("d1", frame("z"))
        _ = q.drain()
        q.lost("d1", 5)
        q.pushLog("d1", frame("c"))
        #expect(texts(q.drain()) == [String(buffer: LiveFrames.dropped("d1", 5)), "c"])
        #expect(q.droppedTotal == 8)
    }

    @Test func unsubscribingPurgesTheDeploymentOnly() {
        var q = OutboxQueue(logCapacity: 3)
        q.pushLog("d1", frame("a"))
        q.pushLog("d2", frame("b"))
        q.pushControl(frame("c"))
        q.pushLog("d1", frame("d"))
        q.pushLog("d1", frame("e"))
        q.purgeLogs("d1")
        #expect(q.queuedLogs == 1)
        q.pushLog("d2", frame("f"))
        #expect(texts(q.drain()) == ["b", "c", "f"])
    }
}

@Suite struct OutboxBatchTests {
    let t0 = ContinuousClock.now
    func line(_ s: String) -> ByteBuffer { ByteBuffer(string: #"{"m":""# + s + #""}"#) }
    func batch(_ deployment: String, _ lines: [String]) -> String { String(buffer: LiveFrames.logBatch(deployment, lines.map(line))) }
    func texts(_ drained: OutboxQueue.Drained) -> [String] { drained.frames.map { String(buffer: $0) } }

    @Test func packsEachDeploymentsLinesInOrderAndAControlFrameClosesTheBatches() {
        var q = OutboxQueue(logCapacity: 100)
        q.pushBatchLine("d1", line("a"))
        q.pushBatchLine("d2", line("x"))
        q.pushBatchLine("d1", line("b"))
        q.pushLog("d3", ByteBuffer(string: "plain"))
        q.pushBatchLine("d1", line("c"))
        q.pushControl(ByteBuffer(string: "status"))
        q.pushBatchLine("d1", line("d"))
        let drained = q.drain(now: t0)
        #expect(texts(drained) == [batch("d1", ["a", "b", "c"]), batch("d2", ["x"]), "plain", "status", batch("d1", ["d"])])
        #expect(drained.again == nil)
        #expect(q.isEmpty && q.queuedLogs == 0)
        #expect(q.lastBatchAt == t0)
    }

    @Test func batchesAreBoundedInLinesAndBytes() {
        var q = OutboxQueue(logCapacity: 2000)
        for i in 0..<1001 { q.pushBatchLine("d1", line("\(i)")) }
        let sizes = q.drain(now: t0).frames.map { frame -> Int in
            String(buffer: frame).components(separatedBy: #"{"m":"#).count - 1
        }
        #expect(sizes == [500, 500, 1])
        let big = ByteBuffer(string: #"{"m":""# + String(repeating: "x", count: 40_000) + #""}"#)
        q.pushBatchLine("d1", big)
        q.pushBatchLine("d1", big)
        q.pushBatchLine("d1", line("small"))
        // 40 kB fits, a second does not (64 kB at most); a line alone is never refused.
        let bigs = q.drain(now: t0 + .seconds(1)).frames.map(\.readableBytes)
        #expect(bigs == [LiveFrames.logBatch("d1", [big]).readableBytes, LiveFrames.logBatch("d1", [big, line("small")]).readableBytes])
    }

    @Test func oneWriteOfBatchesPer50msWhileLinesKeepComing() {
        var q = OutboxQueue(logCapacity: 100)
        q.pushBatchLine("d1", line("a"))
        let first = q.drain(now: t0)
        #expect(texts(first) == [batch("d1", ["a"])])
        // 10 ms later: a control frame queued before the next lines goes at once, the lines wait for t0 + 50 ms.
        q.pushControl(ByteBuffer(string: "pong"))
        q.pushBatchLine("d1", line("b"))
        q.pushControl(ByteBuffer(string: "status"))
        let early = q.drain(now: t0 + .milliseconds(10))
        #expect(texts(early) == ["pong"])
        #expect(early.again == t0 + .milliseconds(50))
        q.pushBatchLine("d1", line("c"))
        let held = q.drain(now: t0 + .milliseconds(30))
        #expect(held == OutboxQueue.Drained(frames: [], again: t0 + .milliseconds(50)))
        let due = q.drain(now: t0 + .milliseconds(50))
        #expect(texts(due) == [batch("d1", ["b"]), "status", batch("d1", ["c"])])
        #expect(due.again == nil)
        // Frames that are not batched lines never wait.
        q.pushControl(ByteBuffer(string: "pong"))
        q.pushLog("d2", ByteBuffer(string: "plain"))
        let unpaced = q.drain(now: t0 + .milliseconds(60))
        #expect(texts(unpaced) == ["pong", "plain"])
    }

    @Test func theQueueBoundAndTheDropCountsHoldForBatchedLines() {
        var q = OutboxQueue(logCapacity: 2)
        let taken = [q.pushBatchLine("d1", line("a")), q.pushBatchLine("d1", line("b")), q.pushBatchLine("d1", line("c")),
                     q.pushLog("d2", ByteBuffer(string: "plain"))]
        #expect(taken == [true, true, false, false])
        let full = q.drain(now: t0)
        #expect(texts(full) == [batch("d1", ["a", "b"]), String(buffer: LiveFrames.dropped("d1", 1)),
                                String(buffer: LiveFrames.dropped("d2", 1))])
        // A count comes before the deployment's next line, and closes the batch before it.
        q.pushBatchLine("d1", line("d"))
        q.lost("d1", 3)
        q.pushBatchLine("d1", line("e"))
        let counted = q.drain(now: t0 + .seconds(1))
        #expect(texts(counted) == [batch("d1", ["d"]), String(buffer: LiveFrames.dropped("d1", 3)), batch("d1", ["e"])])
        #expect(q.droppedTotal == 5)
    }

    @Test func unsubscribingPurgesBatchedLines() {
        var q = OutboxQueue(logCapacity: 10)
        q.pushBatchLine("d1", line("a"))
        q.pushBatchLine("d2", line("b"))
        q.pushBatchLine("d1", line("c"))
        q.purgeLogs("d1")
        #expect(q.queuedLogs == 1)
        let kept = q.drain(now: t0)
        #expect(texts(kept) == [batch("d2", ["b"])])
    }
}

@Suite struct LogOrderTests {
    func line(_ seq: UInt64, _ t: Double) -> AgentLine { AgentLine(sequence: seq, timestamp: t, stream: "stdout", text: "\(seq)") }

    @Test func timestampsNeverGoBackwards() {
        var order = LogOrder()
        #expect([10.0, 10.5, 10.2, 11.0, 10.9, 11.0].map { order.stamp($0) } == [10.0, 10.5, 10.5, 11.0, 11.0, 11.0])
        #expect(order.watermark == 11.0)
    }

    @Test func mergesByTimeKeepingEachInstancesOrder() {
        let merged = LogOrder.merge([
            "b": [line(1, 10.1), line(2, 10.4)],
            "a": [line(1, 10.0), line(2, 10.3), line(3, 10.2), line(4, 10.5)],
            "c": [],
        ])
        #expect(merged.map { "\($0.instanceId)\($0.line.sequence)" } == ["a1", "b1", "a2", "a3", "b2", "a4"])
        #expect(LogOrder.tail(merged, 2).map { "\($0.instanceId)\($0.line.sequence)" } == ["b2", "a4"])
        #expect(LogOrder.tail(merged, 0).isEmpty)
        // Equal times: instance ids decide, so the result does not depend on dictionary order.
        #expect(LogOrder.merge(["y": [line(1, 5)], "x": [line(1, 5)]]).map(\.instanceId) == ["x", "y"])
    }

    @Test func aLateLineGetsItsOwnFrameRaisedToTheSubscribersLatest() {
        let line = RelayedLine(deploymentId: "d", instanceId: "i", line: AgentLine(sequence: 1, timestamp: 100.25, stream: "stdout", text: "m"),
                               stamp: 100.25)
        let same = line.frame(notBefore: 100.0)
        #expect(same.stamp == 100.25)
        #expect(same.frame == line.frame)
        let raised = line.frame(notBefore: 101.5)
        #expect(raised.stamp == 101.5)
        #expect(String(buffer: raised.frame).contains(#""timestamp":"1970-01-01T00:01:41.500Z""#))
    }
}

@Suite struct LiveGateTests {
    func request(path: String = "/api/ws", authorization: String? = "Bearer cr_abc", origin: String? = nil,
                 host: String? = "127.0.0.1:8480", cookie: String? = nil) -> LiveUpgradeRequest {
        LiveUpgradeRequest(path: path, authorization: authorization, origin: origin, host: host, cookie: cookie)
    }

    @Test func acceptsABearerTokenWithoutOrSameOrigin() {
        #expect(LiveGate.credential(request()) == .success(.bearer("cr_abc")))
        #expect(LiveGate.credential(request(origin: "http://127.0.0.1:8480")) == .success(.bearer("cr_abc")))
        #expect(LiveGate.credential(request(origin: "https://Ctl.Example.com", host: "ctl.example.com:443")) == .success(.bearer("cr_abc")))
        // What WebSocket client libraries send: the URL they dial, without its port.
        #expect(LiveGate.credential(request(origin: "ws://127.0.0.1")) == .success(.bearer("cr_abc")))
        #expect(LiveGate.credential(request(origin: "wss://[::1]:8480", host: "[::1]:8480")) == .success(.bearer("cr_abc")))
    }

    @Test func refuses() {
        #expect(LiveGate.credential(request(authorization: nil)) == .failure(.authenticationFailed))
        #expect(LiveGate.credential(request(authorization: "Basic abc")) == .failure(.authenticationFailed))
        let foreign = LiveRefusal(status: .forbidden, message: "Origin not allowed")
        #expect(LiveGate.credential(request(origin: "http://evil.example")) == .failure(foreign))
        #expect(LiveGate.credential(request(origin: "http://127.0.0.1:8481")) == .failure(foreign))
        #expect(LiveGate.credential(request(origin: "null")) == .failure(foreign))
        #expect(LiveGate.credential(request(origin: "ws://evil.example")) == .failure(foreign))
        #expect(LiveGate.credential(request(origin: "chrome-extension://abc")) == .failure(foreign))
        #expect(LiveGate.credential(request(origin: "http://127.0.0.1:8480", host: nil)) == .failure(foreign))
        #expect(LiveGate.credential(request(path: "/api/other")) == .failure(LiveRefusal(status: .notFound, message: "route not found")))
    }
}

@Suite struct LiveGateCookieTests {
    let page = "http://127.0.0.1:8480"

    func request(authorization: String? = nil, origin: String?, host: String? = "127.0.0.1:8480",
                 cookie: String? = "cr_session=crs_abc") -> LiveUpgradeRequest {
        LiveUpgradeRequest(path: "/api/ws", authorization: authorization, origin: origin, host: host, cookie: cookie)
    }

    @Test func acceptsTheSessionCookieFromTheControllersOwnPage() {
        #expect(LiveGate.credential(request(origin: page)) == .success(.browserSession("crs_abc")))
        #expect(LiveGate.credential(request(origin: "https://ctl.example.com", host: "ctl.example.com:443"))
                == .success(.browserSession("crs_abc")))
        #expect(LiveGate.credential(request(origin: page, cookie: "theme=dark; cr_session=crs_abc; cr_form=xyz"))
                == .success(.browserSession("crs_abc")))
        #expect(LiveGate.credential(request(origin: page, cookie: "cr_session=\"crs_abc\"")) == .success(.browserSession("crs_abc")))
    }

    @Test func aBearerTokenStillWinsOverTheCookie() {
        #expect(LiveGate.credential(request(authorization: "Bearer crt_abc", origin: page)) == .success(.bearer("crt_abc")))
        #expect(LiveGate.credential(request(authorization: "Bearer crt_abc", origin: nil)) == .success(.bearer("crt_abc")))
    }

    @Test func refusesTheCookieWithoutAnOriginOrFromAnotherOne() {
        let foreign = LiveRefusal(status: .forbidden, message: "Origin not allowed")
        // No Origin: not a browser's upgrade, so a cookie it carries proves nothing.
        #expect(LiveGate.credential(request(origin: nil)) == .failure(.authenticationFailed))
        #expect(LiveGate.credential(request(origin: "http://evil.example")) == .failure(foreign))
        #expect(LiveGate.credential(request(origin: "http://127.0.0.1:8481")) == .failure(foreign))
        #expect(LiveGate.credential(request(origin: "null")) == .failure(foreign))
        // The URL a client library dials passes the Origin check, but it names no page: a cookie needs one.
        #expect(LiveGate.credential(request(origin: "ws://127.0.0.1")) == .failure(.authenticationFailed))
        #expect(LiveGate.credential(request(origin: page, host: nil)) == .failure(foreign))
    }

    @Test func refusesWhatIsNotTheSessionCookie() {
        #expect(LiveGate.credential(request(origin: page, cookie: nil)) == .failure(.authenticationFailed))
        #expect(LiveGate.credential(request(origin: page, cookie: "cr_session=")) == .failure(.authenticationFailed))
        #expect(LiveGate.credential(request(origin: page, cookie: "cr_form=crs_abc")) == .failure(.authenticationFailed))
        #expect(LiveGate.credential(request(origin: page, cookie: "xcr_session=crs_abc")) == .failure(.authenticationFailed))
        #expect(LiveGate.credential(request(origin: page, cookie: "cr_session=" + String(repeating: "a", count: 257)))
                == .failure(.authenticationFailed))
    }

    @Test func readsTheFirstCookieOfTheName() {
        #expect(LiveGate.cookie(named: "cr_session", in: "cr_session=one; cr_session=two") == "one")
        #expect(LiveGate.cookie(named: "cr_session", in: "a=1;cr_session=crs_x ") == "crs_x")
        #expect(LiveGate.cookie(named: "cr_session", in: "cr_session") == nil)
        #expect(LiveGate.cookie(named: "cr_session", in: nil) == nil)
    }
}

@Suite struct LiveMetricsTests {
    func result(_ state: String, sampled: Bool, cpu: Double, memory: Double, connections: Int) -> PollResult {
        PollResult(target: PollTarget(deploymentId: "d", instanceId: "i", statusURL: "http://127.0.0.1:1/v1/status"),
                   status: AgentStatus(state: state, sampledAt: sampled ? 1 : nil,
                                       app: AppUsage(cpuUtilizationPercent: cpu, memoryUtilizationPercent: memory, tcpConnections: connections),
                                       agent: AgentUsage()))
    }

    @Test func meanOfTheAnsweringInstancesHeldTo0To100() {
        let summary = LiveMetrics.summary([
            result("running", sampled: true, cpu: 20, memory: 50, connections: 3),
            result("running", sampled: true, cpu: 150, memory: 25.555, connections: 4),
            result("running", sampled: false, cpu: 99, memory: 99, connections: 100),
            result("backoff", sampled: true, cpu: 99, memory: 99, connections: 100),
            PollResult(target: PollTarget(deploymentId: "d", instanceId: "j", statusURL: "x"), status: nil, error: "HTTP 500"),
        ], instances: 5)
        #expect(summary == LiveFrames.Metrics(cpu: 60, memory: 37.78, requests: nil, connections: 7, instances: 5))
        #expect(LiveMetrics.summary([], instances: 0) == LiveFrames.Metrics(cpu: 0, memory: 0, requests: nil, connections: 0, instances: 0))
    }
}

@Suite struct LogsQueryTests {
    @Test func parsesAndRefuses() throws {
        #expect(try LogsQuery.parse(tail: nil, instance: nil, format: nil) == .init(tail: 100, instance: nil, text: false))
        #expect(try LogsQuery.parse(tail: "5", instance: "i-1", format: "text") == .init(tail: 5, instance: "i-1", text: true))
        for (tail, format, field) in [("0", "json", "tail"), ("x", "json", "tail"), ("10001", "json", "tail"), ("5", "xml", "format")] {
            #expect(throws: ControlPlaneError.validation(field: field, reason: field == "tail" ? "must be an integer from 1 to 10000" : "must be json or text")) {
                try LogsQuery.parse(tail: tail, instance: nil, format: format)
            }
        }
        let logs = DeploymentLogs(deploymentId: "d", lines: [
            DeploymentLogLine(instanceId: "i1", seq: 1, timestamp: "2025-12-02T10:05:08.123Z", level: "info", stream: "stdout", message: "hello"),
        ])
        #expect(LogsQuery.text(logs) == "2025-12-02T10:05:08.123Z i1 stdout info hello\n")
    }
}
