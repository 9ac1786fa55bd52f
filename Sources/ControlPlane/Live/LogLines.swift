// What a relayed log line carries and the pure rules around it: its level, its ISO 8601 time, the filter, and
// the order of lines from several instances.
import Foundation
import NIOCore

/// One line of one instance, as the agent's /v1/logs gave it.
struct AgentLine: Sendable, Equatable, Decodable {
    var sequence: UInt64
    /// Unix seconds (the agent's clock when it read the line).
    var timestamp: Double
    /// `stdout` or `stderr`.
    var stream: String
    var text: String
}

/// A page of an agent's /v1/logs. `oldestSequence` is newer than the agents that do not send it: nil means
/// unknown (lines before the first one given may or may not still be in the agent's ring).
struct AgentLogPage: Sendable, Equatable, Decodable {
    var lines: [AgentLine]
    var lastSequence: UInt64
    var oldestSequence: UInt64?
}

enum LogLevel {
    static let known: [String: String] = [
        "error": "error", "err": "error", "fatal": "error", "critical": "error", "crit": "error", "panic": "error",
        "warn": "warn", "warning": "warn",
        "info": "info", "notice": "info",
        "debug": "debug", "trace": "debug",
    ]

    private struct LevelField: Decodable { var level: String? }

    /// The line's own level when it carries one: a JSON object's `level` field, or a leading ERROR, WARN (WARNING),
    /// INFO or DEBUG word (any case, optionally in brackets, ending at a non-letter). Else `error` for stderr and
    /// `info` for stdout.
    static func of(_ text: String, stream: String) -> String {
        if let own = ownLevel(text) { return own }
        return stream == "stderr" ? "error" : "info"
    }

    static func ownLevel(_ text: String) -> String? {
        let bytes = text.utf8
        var i = bytes.startIndex
        while i != bytes.endIndex, bytes[i] == 0x20 || bytes[i] == 0x09 { i = bytes.index(after: i) }
        guard i != bytes.endIndex else { return nil }
        if bytes[i] == UInt8(ascii: "{") {
            // Only a line that looks like JSON pays for parsing.
            guard let field = try? JSONDecoder().decode(LevelField.self, from: Data(text.utf8)), let level = field.level else { return nil }
            return known[level.lowercased()]
        }
        if bytes[i] == UInt8(ascii: "[") { i = bytes.index(after: i) }
        var word: [UInt8] = []
        while i != bytes.endIndex, word.count <= 7 {
            let b = bytes[i]
            let lower = b | 0x20
            guard lower >= UInt8(ascii: "a") && lower <= UInt8(ascii: "z") else { break }
            word.append(lower)
            i = bytes.index(after: i)
        }
        // A longer word ("Information", "errors") is not a level.
        if i != bytes.endIndex {
            let b = bytes[i] | 0x20
            if b >= UInt8(ascii: "a") && b <= UInt8(ascii: "z") { return nil }
        }
        switch String(decoding: word, as: UTF8.self) {
        case "error": return "error"
        case "warn", "warning": return "warn"
        case "info": return "info"
        case "debug": return "debug"
        default: return nil
        }
    }
}

enum LiveTime {
    /// ISO 8601 UTC with milliseconds ("2026-12-02T10:05:08.123Z") from Unix seconds; the milliseconds are
    /// truncated, as the agent's clock reading was. Computed, not formatted through a locale-aware formatter:
    /// it runs once per relayed line.
    static func iso8601(_ seconds: Double) -> String {
        let millis = seconds.isFinite ? Int64((seconds * 1000).rounded(.down)) : 0
        var days = millis >= 0 ? millis / 86_400_000 : (millis - 86_399_999) / 86_400_000
        let msOfDay = millis - days * 86_400_000
        // Howard Hinnant's civil_from_days.
        days += 719_468
        let era = (days >= 0 ? days : days - 146_096) / 146_097
        let doe = days - era * 146_097
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100)
        let mp = (5 * doy + 2) / 153
        let day = doy - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yoe + era * 400 + (month <= 2 ? 1 : 0)
        let h = msOfDay / 3_600_000, m = msOfDay / 60_000 % 60, s = msOfDay / 1000 % 60, ms = msOfDay % 1000
        func pad(_ v: Int64, _ width: Int) -> String {
            let text = String(v)
            return text.count >= width ? text : String(repeating: "0", count: width - text.count) + text
        }
        return "\(pad(year, 4))-\(pad(month, 2))-\(pad(day, 2))T\(pad(h, 2)):\(pad(m, 2)):\(pad(s, 2)).\(pad(ms, 3))Z"
    }
}

/// `filter`: a case-insensitive substring of the message.
struct LogFilter: Sendable, Equatable {
    let needle: String

    init?(_ text: String?) {
        guard let text, !text.isEmpty else { return nil }
        needle = text.lowercased()
    }

    /// `lowered` is the message already lowercased (once per line, shared by every filtering subscriber).
    func matches(lowered: String) -> Bool { lowered.contains(needle) }
}

/// A line ready to send: its frame is encoded once and shared by every subscriber that takes it, as a `log_update`
/// or as a line of a `log_batch` (`line`, a slice of the same bytes).
struct RelayedLine: Sendable {
    var deploymentId: String
    var instanceId: String
    var seq: UInt64
    /// The time sent (see LogOrder): the agent's, or raised to the latest already sent.
    var stamp: Double
    var level: String
    var stream: String
    var message: String
    var frame: ByteBuffer
    /// The line's JSON object alone (the `data` of `frame`), for a `log_batch`.
    var line: ByteBuffer

    init(deploymentId: String, instanceId: String, line: AgentLine, stamp: Double) {
        self.deploymentId = deploymentId
        self.instanceId = instanceId
        seq = line.sequence
        self.stamp = stamp
        level = LogLevel.of(line.text, stream: line.stream)
        stream = line.stream
        message = line.text
        frame = ByteBuffer()
        self.line = ByteBuffer()
        (frame, self.line) = encoded(stamp: stamp)
    }

    func encoded(stamp: Double) -> (frame: ByteBuffer, line: ByteBuffer) {
        LiveFrames.logUpdate(LiveFrames.LogUpdate(
            deploymentId: deploymentId, instanceId: instanceId, seq: seq, timestamp: LiveTime.iso8601(stamp), level: level,
            stream: stream, message: message))
    }

    /// This line sent no earlier than `floor`: the shared bytes when its time is not earlier, else its own.
    func frame(notBefore floor: Double) -> (frame: ByteBuffer, line: ByteBuffer, stamp: Double) {
        if stamp >= floor { return (frame, line, stamp) }
        let own = encoded(stamp: floor)
        return (own.frame, own.line, floor)
    }
}

/// The order of lines across instances. Each instance's lines keep their sequence order; across instances a
/// subscription's timestamps never go backwards: a line is sent with its own time unless a line with a later time
/// was already sent, and then with that later time (its instance's agent read it later than the other's line was
/// read, or the two hosts' clocks differ). The times therefore differ from the agents' only by the skew between
/// instances, and only for lines that arrived late.
struct LogOrder: Sendable, Equatable {
    private(set) var watermark: Double = -.infinity

    /// The time to send `timestamp` with, and the new watermark.
    mutating func stamp(_ timestamp: Double) -> Double {
        if timestamp > watermark { watermark = timestamp }
        return watermark
    }

    /// Lines of several instances (each in sequence order) merged by time: repeatedly the earliest head, ties
    /// broken by instance id, so that every instance's order is kept even where its own clock went backwards.
    static func merge(_ perInstance: [String: [AgentLine]]) -> [(instanceId: String, line: AgentLine)] {
        let ids = perInstance.keys.sorted()
        var heads = [Int](repeating: 0, count: ids.count)
        let lists = ids.map { perInstance[$0]! }
        var out: [(instanceId: String, line: AgentLine)] = []
        out.reserveCapacity(lists.reduce(0) { $0 + $1.count })
        while true {
            var best: Int?
            for k in lists.indices where heads[k] < lists[k].count {
                if let b = best {
                    if lists[k][heads[k]].timestamp < lists[b][heads[b]].timestamp { best = k }
                } else {
                    best = k
                }
            }
            guard let b = best else { return out }
            out.append((ids[b], lists[b][heads[b]]))
            heads[b] += 1
        }
    }

    /// The last `count` lines of a merged list (the `tail` a subscriber asked for).
    static func tail<T>(_ merged: [T], _ count: Int) -> [T] {
        count <= 0 ? [] : Array(merged.suffix(count))
    }
}
