// `coderunner logs -f`: the controller's live stream (GET /api/ws) through swift-websocket's client, since Debian
// 12's libcurl (7.88) has no WebSocket support. A dropped socket is dialled again and the subscription resumes
// after the last line printed (`after`), so no line is lost or printed twice; a controller that refuses the
// upgrade leaves the caller to poll.
import CLICore
import HTTPTypes
import Logging
import Synchronization
import WSClient

enum LiveFollow {
    enum Outcome {
        /// The deadline passed (or the task was cancelled).
        case finished
        /// The upgrade was refused or the socket could not be opened: the caller polls instead.
        case unavailable(String)
    }

    /// The controller's frames are small; a batch of long lines is the biggest.
    static let maxMessageBytes = 4 << 20
    /// Consecutive failed dials after a drop before giving up on the socket.
    static let maxRedials = 8

    /// Prints new lines until `deadline` (nil: until interrupted).
    static func logs(server: String, token: String?, deploymentId: String, filter: LogFilter, instance: String?,
                     cursor: inout LogCursor, deadline: ContinuousClock.Instant?,
                     print: @escaping @Sendable (JSON) -> Void) async throws(CLIError) -> Outcome {
        guard let url = LiveLogs.webSocketURL(server: server) else { return .unavailable("the server URL is not http or https") }
        guard let token else { throw CLIError(.unauthorized, "not logged in: run coderunner login, or set CODERUNNER_TOKEN") }
        let state = Mutex(State(cursor: cursor))
        defer { cursor = state.withLock { $0.cursor } }
        let configuration = WebSocketClientConfiguration(
            maxFrameSize: maxMessageBytes,
            additionalHeaders: [.authorization: "Bearer \(token)", .userAgent: "coderunner-cli/\(CodeRunner.version)"])
        let logger = Logger(label: "coderunner.live") { _ in SwiftLogNoOpLogHandler() }
        let clock = ContinuousClock()
        var failures = 0
        var backoff = Duration.milliseconds(250)
        while !Task.isCancelled, deadline.map({ clock.now < $0 }) ?? true {
            let after = state.withLock { $0.cursor.last }
            // The first subscription sends no tail: the first page came from the logs route already.
            let subscribe = LiveLogs.subscribeFrame(deploymentId: deploymentId, filter: filter.text, tail: 0, after: after)
            let session = Mutex(Session())
            let dial: @Sendable () async throws -> Void = {
                try await WebSocketClient.connect(url: url, configuration: configuration, logger: logger) { inbound, outbound, _ in
                    session.withLock { $0.opened = true }
                    try await outbound.write(.text(subscribe))
                    for try await message in inbound.messages(maxSize: maxMessageBytes) {
                        guard case .text(let text) = message else { continue }
                        switch LiveLogs.decode(text) {
                        case .lines(let lines):
                            for line in lines {
                                if let instance, line["instanceId"]?.string != instance { continue }
                                guard filter.matches(line["message"]?.string ?? "") else { continue }
                                if state.withLock({ $0.cursor.accept(line) }) { print(line) }
                            }
                        case .subscribed:
                            session.withLock { $0.subscribed = true }
                            switch state.withLock({ $0.subscribed() }) {
                            case .first: Terminal.err("following \(deploymentId) live over the WebSocket; Ctrl-C stops\n")
                            case .afterDrop: Terminal.err("reconnected; resuming after the last line printed\n")
                            case .quiet: break
                            }
                        case .dropped(let count):
                            Terminal.err("warning: the controller dropped \(count) line\(count == 1 ? "" : "s") this terminal read too slowly\n")
                        case .refused(let reason):
                            session.withLock { $0.refusal = reason }
                            return
                        case .error(let message):
                            Terminal.err("warning: the controller said: \(message)\n")
                        case .ignored:
                            break
                        }
                    }
                }
            }
            var failure: String?
            do {
                try await withDeadline(deadline, dial)
            } catch {
                failure = "\(error)"
            }
            let ended = session.withLock { $0 }
            if let refusal = ended.refusal { throw CLIError(.notFound, refusal) }
            if Task.isCancelled || deadline.map({ clock.now >= $0 }) == true { break }
            if !ended.opened {
                // Refused at the upgrade (an expired token, an older controller) or not reachable: the logs route
                // says which, and polls while it can.
                if !state.withLock({ $0.everOpened }) { return .unavailable(failure ?? "the connection closed") }
                failures += 1
                if failures > maxRedials { return .unavailable(failure ?? "the connection closed") }
            } else {
                state.withLock { $0.everOpened = true }
                failures = ended.subscribed ? 0 : failures + 1
                backoff = .milliseconds(250)
            }
            if state.withLock({ $0.dropped() }) {
                Terminal.err("the live stream closed\(failure.map { " (\(String($0.prefix(200))))" } ?? ""); reconnecting\n")
            }
            try? await Task.sleep(for: backoff)
            backoff = min(backoff * 2, .seconds(5))
        }
        return .finished
    }

    private struct State {
        var cursor: LogCursor
        var everOpened = false
        var announced = false
        /// Between a drop and the next confirmed subscription.
        var down = false

        enum Note { case first, afterDrop, quiet }

        /// Which note a confirmed subscription deserves: "following" once, "reconnected" after each drop.
        mutating func subscribed() -> Note {
            defer { announced = true; down = false }
            return !announced ? .first : down ? .afterDrop : .quiet
        }

        /// True for the first failure after a working stream: one "reconnecting" note per outage, not per dial.
        mutating func dropped() -> Bool {
            defer { down = true }
            return !down
        }
    }

    /// One dial: whether the upgrade succeeded, the subscription was confirmed, or the deployment refused.
    private struct Session {
        var opened = false
        var subscribed = false
        var refusal: String?
    }

    /// Runs `body` until it returns or the deadline passes (then it is cancelled, which closes the socket).
    private static func withDeadline(_ deadline: ContinuousClock.Instant?, _ body: @escaping @Sendable () async throws -> Void) async throws {
        guard let deadline else { return try await body() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await body() }
            group.addTask { try? await Task.sleep(until: deadline, clock: .continuous) }
            _ = try await group.next()
            group.cancelAll()
        }
    }
}
