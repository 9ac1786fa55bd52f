// `coderunner logs -f` over the controller's live stream (GET /api/ws, docs/live.md): where the socket is, the
// frames the CLI sends and reads, and which lines it has printed, so that a reconnect resumes exactly after them.
// Pure; the executable holds the socket.

public enum LiveLogs {
    /// The controller's live stream for its http:// or https:// URL (ws:// or wss://, path /api/ws); nil for any
    /// other scheme.
    public static func webSocketURL(server: String) -> String? {
        var base = server
        while base.hasSuffix("/") { base.removeLast() }
        let lowered = base.lowercased()
        if lowered.hasPrefix("http://") { return "ws://" + base.dropFirst(7) + "/api/ws" }
        if lowered.hasPrefix("https://") { return "wss://" + base.dropFirst(8) + "/api/ws" }
        return nil
    }

    /// The controller refuses a longer filter (LogSubscription.maxFilterBytes).
    public static let maxFilterBytes = 256

    /// `subscribe_logs` in batches: `tail` recent lines of the instances not in `after`, then, for each instance in
    /// `after`, only its lines after that sequence number (a resume), then every new line.
    public static func subscribeFrame(deploymentId: String, filter: String?, tail: Int, after: [String: UInt64]) -> String {
        var data: [(String, JSON)] = [("deploymentId", .string(deploymentId)), ("tail", .number(String(tail))), ("batch", .bool(true))]
        if let filter, !filter.isEmpty { data.append(("filter", .string(filter))) }
        if !after.isEmpty {
            data.append(("after", .object(after.sorted { $0.key < $1.key }.map { ($0.key, .number(String($0.value))) })))
        }
        return JSON.object([("event", .string("subscribe_logs")), ("data", .object(data))]).serialized()
    }

    /// What a frame from the controller means to a follower.
    public enum Event: Sendable, Equatable {
        /// Log lines (`log_update` or `log_batch`), each the object the logs route returns.
        case lines([JSON])
        case subscribed
        /// The controller dropped this many lines for a reader too slow to take them.
        case dropped(Int)
        /// `subscription_error`: the deployment is not there (or not the caller's).
        case refused(String)
        /// `error`: the controller's message; the socket stays open.
        case error(String)
        /// Another stream's event, or a frame that is not JSON: nothing for the follower.
        case ignored
    }

    public static func decode(_ text: String) -> Event {
        guard let frame = try? JSONParser.parse(text), let event = frame["event"]?.string else { return .ignored }
        let data = frame["data"]
        switch event {
        case "log_update": return data.map { .lines([$0]) } ?? .ignored
        case "log_batch": return .lines(data?["lines"]?.array ?? [])
        case "subscription_confirmed": return data?["type"]?.string == "logs" ? .subscribed : .ignored
        case "logs_dropped": return .dropped(data?["count"]?.int ?? 0)
        case "subscription_error": return .refused(data?["message"]?.string ?? "subscription refused")
        case "error": return .error(data?["message"]?.string ?? "unknown error")
        default: return .ignored
        }
    }
}

/// The lines printed so far: per instance, the highest sequence number. A line at or below it is one the follower
/// already has (the first page and the stream overlap; a resumed stream may repeat the line it resumed after).
public struct LogCursor: Sendable, Equatable {
    public private(set) var last: [String: UInt64] = [:]

    public init() {}

    /// Records the line and says whether it is new. A line without an instance or a sequence number is always new.
    public mutating func accept(_ line: JSON) -> Bool {
        guard let instance = line["instanceId"]?.string, let seq = line["seq"]?.int, seq >= 0 else { return true }
        let sequence = UInt64(seq)
        if let seen = last[instance], sequence <= seen { return false }
        last[instance] = sequence
        return true
    }
}

/// `--filter`: the controller's rule (a case-insensitive substring of the message), applied to the first page too.
public struct LogFilter: Sendable, Equatable {
    public let text: String?
    private let lowered: String?

    public init(_ text: String?) {
        self.text = (text?.isEmpty ?? true) ? nil : text
        lowered = self.text?.lowercased()
    }

    public func matches(_ message: String) -> Bool {
        guard let lowered else { return true }
        return message.lowercased().contains(lowered)
    }
}
