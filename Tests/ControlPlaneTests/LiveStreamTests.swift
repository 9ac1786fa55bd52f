// GET /api/ws end to end: a controller on a loopback socket, its local executor running a real coderunner-agent
// (CODERUNNER_BIN_DIR) around a real app that writes to stdout and stderr, and a WebSocket client
// (HummingbirdWSClient) speaking the contract's events. Every wait is bounded.
import Foundation
import CodeRunnerWire
import HTTPTypes
import HummingbirdTesting
import HummingbirdWSClient
import Logging
import NIOCore
import NIOWebSocket
import Synchronization
import Testing
import TestSupport
@testable import ControlPlane

/// One frame as the client sees it.
struct LiveEvent: @unchecked Sendable {  // a parsed JSON object, read only after parsing
    let event: String
    let data: [String: Any]
    let raw: String

    init?(_ text: String) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
              let event = object["event"] as? String else { return nil }
        self.event = event
        data = object["data"] as? [String: Any] ?? [:]
        raw = text
    }

    func string(_ key: String) -> String? { data[key] as? String }
    func int(_ key: String) -> Int? { (data[key] as? NSNumber)?.intValue }
}

/// Reads a socket's frames in order, with deadlines.
struct LiveReader {
    var iterator: WebSocketInboundMessageStream.AsyncIterator
    /// Every frame read so far, for the assertions that look back.
    var seen: [LiveEvent] = []

    /// The next frame whose event is one of `events` (others are kept in `seen` and skipped).
    mutating func next(_ events: Set<String>, within limit: Duration = .seconds(20)) async throws -> LiveEvent {
        let deadline = ContinuousClock.now.advanced(by: limit)
        while ContinuousClock.now < deadline {
            guard let message = try await iterator.next() else { throw LiveTestError.closed(seen.map(\.raw).suffix(5).joined()) }
            guard case .text(let text) = message, let event = LiveEvent(text) else { continue }
            seen.append(event)
            if events.contains(event.event) { return event }
        }
        throw LiveTestError.timeout(events.sorted().joined(separator: ","))
    }

    /// Reads until the server closes the socket.
    mutating func untilClosed() async throws {
        while let message = try await iterator.next() {
            if case .text(let text) = message, let event = LiveEvent(text) { seen.append(event) }
        }
    }
}

/// What the client's handler hands back to the test.
final class Box<T: Sendable>: Sendable {
    let value = Mutex<T?>(nil)
}

enum LiveTestError: Error { case closed(String), timeout(String) }

func send(_ outbound: WebSocketOutboundWriter, _ object: [String: Any]) async throws {
    let data = try JSONSerialization.data(withJSONObject: object)
    try await outbound.write(.text(String(decoding: data, as: UTF8.self)))
}

/// A user's session, a deployment of theirs running `command` on one local agent.
extension Client {
    func runningDeployment(_ email: String, command: String, instances: Int = 1) async throws -> (token: String, deployment: String) {
        let (token, project) = try await signUpWithProject(email)
        let created = try await call(.post, "/api/deployments", token: token,
                                     json: json(["projectId": project, "environment": "production", "command": command]))
        #expect(created.status == .created, "\(created.text)")
        let deployment = try #require(created.string("id"))
        let scaled = try await call(.post, "/api/deployments/\(deployment)/scaling/override", token: token, json: #"{"instances": \#(instances)}"#)
        #expect(scaled.status == .ok, "\(scaled.text)")
        return (token, deployment)
    }
}

@Suite("Live streams", .serialized) struct LiveStreamTests {
    /// Writes a numbered INFO line to stdout and an ERROR line to stderr ten times a second.
    static let app = #"i=0; while :; do i=$((i+1)); echo "INFO tick $i"; echo "ERROR boom $i" >&2; sleep 0.1; done"#

    static func harness(tokenLifetime: Duration? = nil) throws -> Harness {
        let agent = TestSupport.binary("coderunner-agent")
        return try Harness { c in
            c.scaling.agentBinary = agent
            // The sandbox is its own suite's business; here the agent and its app run as the test's user.
            c.scaling.sandbox.enabled = false
            if let tokenLifetime { c.tokenLifetime = tokenLifetime }
            // One test subscribes to 22 deployments of one account, past the default account limit.
            c.maxDeploymentsPerUser = 32
        }
    }

    static func connect<T: Sendable>(_ port: Int, token: String,
                                     _ body: @escaping @Sendable (inout LiveReader, WebSocketOutboundWriter) async throws -> T)
        async throws -> (result: T?, close: WebSocketCloseFrame?) {
        let result = Box<T>()
        let configuration = {
            var c = WebSocketClientConfiguration()
            c.additionalHeaders = [.authorization: "Bearer \(token)"]
            return c
        }()
        let close = try await withThrowingTaskGroup(of: WebSocketCloseFrame?.self) { group in
            group.addTask {
                try await WebSocketClient.connect(url: "ws://127.0.0.1:\(port)/api/ws", configuration: configuration,
                                                  logger: Logger(label: "live-test")) { inbound, outbound, _ in
                    var reader = LiveReader(iterator: inbound.messages(maxSize: 1 << 20).makeAsyncIterator())
                    let value = try await body(&reader, outbound)
                    result.value.withLock { $0 = value }
                }
            }
            group.addTask {
                try await Task.sleep(for: .seconds(120))
                throw LiveTestError.timeout("the whole exchange")
            }
            let first = try await group.next()!
            group.cancelAll()
            return first
        }
        return (result.value.withLock { $0 }, close)
    }

    @Test func handshakeRefusals() async throws {
        try await Self.harness().run(.live) { client in
            let port = try #require(client.client.port)
            let url = "http://127.0.0.1:\(port)/api/ws"
            let upgrade = ["-H", "Upgrade: websocket", "-H", "Connection: Upgrade", "-H", "Sec-WebSocket-Version: 13",
                           "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
            for extra in [[], ["-H", "Authorization: Bearer cr_not_a_session"]] {
                let refused = try HTTP.call("GET", url, curlOptions: upgrade + extra)
                #expect(refused.status == 401, "\(refused.text)")
                let envelope = try refused.envelope(Empty.self)
                #expect(envelope.success == false)
                #expect(envelope.error == "Authentication failed")
            }
            let token = try await client.signUp("origin@example.com")
            let foreign = try HTTP.call("GET", url, curlOptions: upgrade + ["-H", "Authorization: Bearer \(token)", "-H", "Origin: http://evil.example"])
            #expect(foreign.status == 403)
            #expect(try foreign.envelope(Empty.self).error == "Origin not allowed")
            let plain = try HTTP.call("GET", url, token: token)
            #expect(plain.status == 426)
        }
    }

    @Test func aUserHoldsAtMostTheirShareOfLiveConnections() async throws {
        let harness = try Harness { c in c.maxLiveConnectionsPerUser = 2 }
        try await harness.run(.live) { client in
            let port = try #require(client.client.port)
            let url = "http://127.0.0.1:\(port)/api/ws"
            let upgrade = ["-H", "Upgrade: websocket", "-H", "Connection: Upgrade", "-H", "Sec-WebSocket-Version: 13",
                           "-H", "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="]
            let token = try await client.signUp("many@example.com")
            let other = try await client.signUp("other@example.com")
            let user = try await client.controlPlane.auth.authenticateSession(token: token).0.id
            let limit = client.controlPlane.live.connectionLimit
            let releases = (0..<2).map { _ in AsyncStream.makeStream(of: Void.self) }
            let held = Task {
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for (release, _) in releases {
                        group.addTask {
                            _ = try await Self.connect(port, token: token) { reader, outbound in
                                try await send(outbound, ["event": "ping"])
                                _ = try await reader.next(["pong"])
                                for await _ in release {}
                            }
                        }
                    }
                    try await group.waitForAll()
                }
            }
            for _ in 0..<200 where limit.held(by: user) < 2 { try await Task.sleep(for: .milliseconds(25)) }
            #expect(limit.held(by: user) == 2)
            let third = try HTTP.call("GET", url, curlOptions: upgrade + ["-H", "Authorization: Bearer \(token)"])
            #expect(third.status == 429, "\(third.text)")
            #expect(try third.envelope(Empty.self).error == "too many live connections for this user (at most 2); close one first")
            // Another user is not held back by this one's sockets.
            let (pong, _) = try await Self.connect(port, token: other) { reader, outbound in
                try await send(outbound, ["event": "ping"])
                return try await reader.next(["pong"]).event
            }
            #expect(pong == "pong")
            for (_, releaser) in releases { releaser.finish() }
            try await held.value
            for _ in 0..<200 where limit.held(by: user) > 0 { try await Task.sleep(for: .milliseconds(25)) }
            #expect(limit.held(by: user) == 0)
        }
    }

    @Test func aUserReadsRecentLinesAtMost60TimesAMinute() async throws {
        try await Self.harness().run(.router) { client in
            let token = try await client.signUp("reader@example.com")
            let other = try await client.signUp("other-reader@example.com")
            // Unknown deployments count too: the limit comes before the lookup, so probing is bounded as well.
            for _ in 0..<LiveHub.logReadsPerMinute {
                #expect(try await client.call(.get, "/api/deployments/no-such/logs", token: token).status == .notFound)
            }
            let limited = try await client.call(.get, "/api/deployments/no-such/logs", token: token)
            #expect(limited.status == .tooManyRequests)
            #expect(limited.error == "too many log reads by this account; retry in 1 s")
            // Per account: another user is not held back.
            #expect(try await client.call(.get, "/api/deployments/no-such/logs", token: other).status == .notFound)
        }
    }

    @Test func aConnectionHoldsAtMost64SubscriptionsAndRefusesOversizedFrames() async throws {
        try await Self.harness().run(.live) { client in
            let port = try #require(client.client.port)
            let (token, project) = try await client.signUpWithProject("subs@example.com")
            var deployments: [String] = []
            for _ in 0..<22 { deployments.append(try await client.createDeployment(token, project: project).0) }
            let ids = deployments
            let (answers, _) = try await Self.connect(port, token: token) { reader, outbound in
                // 22 deployments × 3 kinds = 66 subscriptions: the first 64 are confirmed, the last two refused.
                for id in ids {
                    for kind in ["subscribe_logs", "subscribe_status", "subscribe_metrics"] {
                        try await send(outbound, ["event": kind, "data": ["deploymentId": id]])
                    }
                }
                var confirmed = 0, refused: [String] = []
                while confirmed + refused.count < 66 {
                    let event = try await reader.next(["subscription_confirmed", "error"])
                    if event.event == "error" { refused.append(event.string("message") ?? "") } else { confirmed += 1 }
                }
                try await outbound.write(.text(String(repeating: " ", count: 16 * 1024 + 1)))
                let tooLarge = try await reader.next(["error"]).string("message")
                try await send(outbound, ["event": "ping"])
                let pong = try await reader.next(["pong"]).event
                return (confirmed, refused, tooLarge, pong)
            }
            let (confirmed, refused, tooLarge, pong) = try #require(answers)
            #expect(confirmed == 64)
            #expect(refused == Array(repeating: "too many subscriptions on this connection (at most 64)", count: 2))
            #expect(tooLarge == "frame too large: at most 16384 bytes")
            #expect(pong == "pong")
        }
    }

    @Test func anExpiredSessionClosesTheSocketWith4401() async throws {
        let harness = try Self.harness(tokenLifetime: .seconds(2))
        try await harness.run(.live) { client in
            let port = try #require(client.client.port)
            let token = try await client.signUp("expiry@example.com")
            let (_, close) = try await Self.connect(port, token: token) { reader, outbound in
                try await send(outbound, ["event": "ping"])
                _ = try await reader.next(["pong"])
                // The store's clock passes the token's expiry; the connection notices within its next check.
                client.harness.now.advance(3)
                try await reader.untilClosed()
            }
            #expect(close?.closeCode == .unknown(4401))
            #expect(close?.reason == "session expired or revoked")
        }
    }

    @Test func everyEventAgainstARealAgent() async throws {
        try await Self.harness().run(.live) { client in
            do {
                try await Self.everyEvent(client)
            } catch {
                await client.controlPlane.scaling.localExecutor?.shutdown()
                throw error
            }
            await client.controlPlane.scaling.localExecutor?.shutdown()
        }
    }

    static func everyEvent(_ client: Client) async throws {
        do {
            let port = try #require(client.client.port)
            let (token, deployment) = try await client.runningDeployment("owner@example.com", command: Self.app)
            let (_, othersDeployment) = try await client.runningDeployment("other@example.com", command: "sleep 600", instances: 0)

            // The REST export of the same lines: merged, newest last, in both formats; bad parameters are 400s.
            var recent: [String] = []
            for _ in 0..<40 where recent.count < 4 {  // within the 60 reads a minute a user has
                let answer = try await client.call(.get, "/api/deployments/\(deployment)/logs?tail=4&format=text", token: token)
                #expect(answer.status == .ok)
                recent = answer.text.split(separator: "\n").map(String.init)
                if recent.count < 4 { try await Task.sleep(for: .milliseconds(250)) }
            }
            #expect(recent.count == 4)
            #expect(recent.allSatisfy { $0.contains(" stdout info INFO tick ") || $0.contains(" stderr error ERROR boom ") }, "\(recent)")
            let json = try await client.call(.get, "/api/deployments/\(deployment)/logs?tail=2", token: token)
            #expect((json.data["lines"] as? [[String: Any]])?.count == 2)
            #expect(try await client.call(.get, "/api/deployments/\(deployment)/logs?tail=0", token: token).error
                == "validation failed: tail must be an integer from 1 to 10000")
            #expect(try await client.call(.get, "/api/deployments/\(othersDeployment)/logs", token: token).status == .notFound)

            let (_, close) = try await Self.connect(port, token: token) { reader, outbound in
                try await send(outbound, ["event": "ping"])
                #expect(try await reader.next(["pong"]).event == "pong")

                // A malformed frame and an unknown event get an error; the connection stays open.
                try await outbound.write(.text("{not json"))
                #expect(try await reader.next(["error"]).string("message") == #"malformed frame: expected JSON {"event": NAME, "data": {...}}"#)
                try await send(outbound, ["event": "subscribe_everything"])
                #expect(try await reader.next(["error"]).string("message") == #"unknown event "subscribe_everything""#)

                // Another user's deployment and an unknown one: the same answer.
                try await send(outbound, ["event": "subscribe_logs", "data": ["deploymentId": othersDeployment]])
                let foreign = try await reader.next(["subscription_error", "subscription_confirmed"])
                #expect(foreign.event == "subscription_error")
                #expect(foreign.string("deploymentId") == othersDeployment)
                #expect(foreign.string("message") == "Deployment not found")
                try await send(outbound, ["event": "subscribe_status", "data": ["deploymentId": "no-such-deployment"]])
                let unknown = try await reader.next(["subscription_error", "subscription_confirmed"])
                #expect(unknown.event == "subscription_error")
                #expect(unknown.string("message") == "Deployment not found")

                // Status: at once, and RUNNING with one instance once the agent registered.
                try await send(outbound, ["event": "subscribe_status", "data": ["deploymentId": deployment]])
                let statusConfirmed = try await reader.next(["subscription_confirmed"])
                #expect(statusConfirmed.string("type") == "status")
                #expect(statusConfirmed.string("deploymentId") == deployment)
                var status = try await reader.next(["status_update"])
                while status.string("status") != "RUNNING" { status = try await reader.next(["status_update"]) }
                #expect(status.int("instances") == 1)
                #expect(status.string("deploymentId") == deployment)

                // Metrics: within 2 s of each other.
                try await send(outbound, ["event": "subscribe_metrics", "data": ["deploymentId": deployment]])
                #expect(try await reader.next(["subscription_confirmed"]).string("type") == "metrics")
                let first = try await reader.next(["metrics_update"], within: .seconds(3))
                let firstAt = ContinuousClock.now
                let second = try await reader.next(["metrics_update"], within: .seconds(3))
                #expect(firstAt.duration(to: .now) <= .seconds(2))
                for update in [first, second] {
                    let metrics = try #require(update.data["metrics"] as? [String: Any])
                    #expect(metrics["instances"] as? Int == 1)
                    let cpu = try #require(metrics["cpu"] as? Double)
                    let memory = try #require(metrics["memory"] as? Double)
                    #expect((0...100).contains(cpu) && (0...100).contains(memory))
                    #expect(metrics["connections"] as? Int == 0)
                    #expect(metrics.keys.contains("requests"))
                }
                try await send(outbound, ["event": "unsubscribe_metrics"])

                // Logs: the last 3 lines, then live ones, only those the filter matches, each instance's in order.
                try await send(outbound, ["event": "subscribe_logs", "data": ["deploymentId": deployment, "filter": "boom", "tail": 3]])
                #expect(try await reader.next(["subscription_confirmed"]).string("type") == "logs")
                var lines: [LiveEvent] = []
                while lines.count < 8 { lines.append(try await reader.next(["log_update"])) }
                var lastSeq = 0
                var lastTime = ""
                for line in lines {
                    #expect(line.string("deploymentId") == deployment)
                    #expect(line.string("message")?.hasPrefix("ERROR boom ") == true, "\(line.raw)")
                    #expect(line.string("level") == "error")
                    #expect(line.string("stream") == "stderr")
                    let seq = try #require(line.int("seq"))
                    #expect(seq > lastSeq)
                    lastSeq = seq
                    let time = try #require(line.string("timestamp"))
                    #expect(time.count == 24 && time.hasSuffix("Z") && time >= lastTime, "\(time)")
                    lastTime = time
                }
                // The app numbers its lines: consecutive live lines, nothing lost or repeated.
                let numbers = lines.compactMap { $0.string("message").flatMap { Int($0.dropFirst("ERROR boom ".count)) } }
                #expect(numbers == Array(numbers[0]..<(numbers[0] + numbers.count)), "\(numbers)")

                // Unsubscribed: nothing more, even what was already queued.
                try await send(outbound, ["event": "unsubscribe_logs", "data": ["deploymentId": deployment]])
                try await send(outbound, ["event": "ping"])
                _ = try await reader.next(["pong"])
                let mark = reader.seen.count
                try await Task.sleep(for: .milliseconds(600))
                try await send(outbound, ["event": "ping"])
                _ = try await reader.next(["pong"])
                #expect(!reader.seen[mark...].contains { $0.event == "log_update" })
                #expect(await client.controlPlane.live.relayedDeployments.logs.isEmpty)

                // Logout ends the session: the socket closes with 4401.
                let logout = try await client.call(.post, "/api/auth/logout", token: token)
                #expect(logout.status == .ok)
                try await reader.untilClosed()
            }
            #expect(close?.closeCode == .unknown(4401))
            // The closed connection left nothing running.
            #expect(TestSupport.waitUntil(timeout: .seconds(5), interval: .milliseconds(50)) {
                client.controlPlane.auth.revocations.watcherCount(tokenHash: Tokens.hash(token)) == 0
            })
            let relays = await client.controlPlane.live.relayedDeployments
            #expect(relays.logs.isEmpty && relays.metrics.isEmpty)
        }
    }
}
