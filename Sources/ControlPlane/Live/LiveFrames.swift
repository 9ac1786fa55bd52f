// The frames of GET /api/ws, both ways. Every frame is JSON text `{"event": NAME, "data": {...}}`; the event
// names and payloads are the Socket.IO contract of the plan (issue 12), kept as they are. Pure: decoding a client
// frame never fails the connection, it yields a command or an error message for an `error` event.
import Foundation
import NIOCore

/// What a client asks for.
enum LiveCommand: Sendable, Equatable {
    case subscribeLogs(LogSubscription)
    /// nil: every log subscription of the connection.
    case unsubscribeLogs(deploymentId: String?)
    case subscribeStatus(deploymentId: String)
    case unsubscribeStatus(deploymentId: String?)
    case subscribeMetrics(deploymentId: String)
    case unsubscribeMetrics(deploymentId: String?)
    case ping
}

/// `subscribe_logs {deploymentId, filter?, tail?, after?}`.
struct LogSubscription: Sendable, Equatable {
    var deploymentId: String
    /// Case-insensitive substring of the message; nil or empty sends every line.
    var filter: String?
    /// How many recent lines to send first (per deployment, merged across instances); 0 sends only new lines.
    var tail: Int
    /// Resume: per instance, the last `seq` the client has. Those instances' lines after it come first, exactly
    /// once; `tail` then applies only to instances not named here.
    var after: [String: UInt64]
    /// `batch: true`: the lines come as `log_batch` events, several to a frame (OutboxQueue says when), instead of
    /// one `log_update` each. Opt-in: a client that does not ask keeps the per-line contract.
    var batch = false

    static let maxTail = 1000
    static let maxFilterBytes = 256
}

enum LiveFrames {
    /// Client frames are small commands; anything bigger is refused before JSON parsing.
    static let maxClientFrameBytes = 16 * 1024
    static let maxDeploymentIdBytes = 128

    private struct Incoming: Decodable {
        var event: String?
        var data: Payload?
    }

    private struct Payload: Decodable {
        var deploymentId: String?
        var filter: String?
        var tail: Int?
        var after: [String: UInt64]?
        var batch: Flag?
    }

    /// A boolean field that may hold anything: a wrong type gets its own message instead of failing the whole frame.
    private enum Flag: Decodable {
        case value(Bool)
        case invalid

        init(from decoder: any Decoder) throws {
            let container = try decoder.singleValueContainer()
            self = (try? container.decode(Bool.self)).map(Flag.value) ?? .invalid
        }
    }

    /// A command, or the message of the `error` event to answer with (the connection stays open).
    static func decode(_ text: String) -> Result<LiveCommand, LiveFrameError> {
        guard text.utf8.count <= maxClientFrameBytes else {
            return .failure(LiveFrameError("frame too large: at most \(maxClientFrameBytes) bytes"))
        }
        let incoming: Incoming
        do { incoming = try JSONDecoder().decode(Incoming.self, from: Data(text.utf8)) } catch {
            return .failure(LiveFrameError("malformed frame: expected JSON {\"event\": NAME, \"data\": {...}}"))
        }
        guard let event = incoming.event else { return .failure(LiveFrameError("malformed frame: \"event\" is required")) }
        let data = incoming.data
        func required() -> Result<String, LiveFrameError> {
            guard let id = data?.deploymentId, !id.isEmpty else {
                return .failure(LiveFrameError("\(event): data.deploymentId is required"))
            }
            guard id.utf8.count <= maxDeploymentIdBytes else {
                return .failure(LiveFrameError("\(event): data.deploymentId is too long"))
            }
            return .success(id)
        }
        func optional() -> Result<String?, LiveFrameError> {
            guard data?.deploymentId != nil else { return .success(nil) }
            return required().map { Optional($0) }
        }
        switch event {
        case "ping":
            return .success(.ping)
        case "subscribe_logs":
            return required().flatMap { id in
                let tail = data?.tail ?? 0
                guard (0...LogSubscription.maxTail).contains(tail) else {
                    return .failure(LiveFrameError("subscribe_logs: data.tail must be from 0 to \(LogSubscription.maxTail)"))
                }
                let filter = data?.filter.flatMap { $0.isEmpty ? nil : $0 }
                if let filter, filter.utf8.count > LogSubscription.maxFilterBytes {
                    return .failure(LiveFrameError("subscribe_logs: data.filter must be at most \(LogSubscription.maxFilterBytes) bytes"))
                }
                let after = data?.after ?? [:]
                guard after.count <= 1000, after.keys.allSatisfy({ !$0.isEmpty && $0.utf8.count <= 128 }) else {
                    return .failure(LiveFrameError("subscribe_logs: data.after must map at most 1000 instance ids to sequence numbers"))
                }
                var batch = false
                switch data?.batch {
                case .none: break
                case .value(let flag)?: batch = flag
                case .invalid?: return .failure(LiveFrameError("subscribe_logs: data.batch must be true or false"))
                }
                return .success(.subscribeLogs(LogSubscription(deploymentId: id, filter: filter, tail: tail, after: after, batch: batch)))
            }
        case "unsubscribe_logs": return optional().map { .unsubscribeLogs(deploymentId: $0) }
        case "subscribe_status": return required().map { .subscribeStatus(deploymentId: $0) }
        case "unsubscribe_status": return optional().map { .unsubscribeStatus(deploymentId: $0) }
        case "subscribe_metrics": return required().map { .subscribeMetrics(deploymentId: $0) }
        case "unsubscribe_metrics": return optional().map { .unsubscribeMetrics(deploymentId: $0) }
        default:
            // The client's text is not echoed in full: it could be anything, of any length.
            return .failure(LiveFrameError("unknown event \"\(event.prefix(64))\""))
        }
    }

    // MARK: Server → client

    private struct Outgoing<Data: Encodable>: Encodable {
        var event: String
        var data: Data
    }

    struct SubscriptionConfirmed: Encodable, Equatable { var type: String; var deploymentId: String }
    struct SubscriptionError: Encodable, Equatable { var deploymentId: String; var message: String }
    struct LogUpdate: Encodable, Equatable {
        var deploymentId: String
        var instanceId: String
        var seq: UInt64
        var timestamp: String
        var level: String
        var stream: String
        var message: String
    }
    struct StatusUpdate: Encodable, Equatable {
        var deploymentId: String
        var status: String
        var timestamp: String
        var instances: Int
        /// The current rollout, else the last one; absent for a deployment that never had one.
        var rollout: Rollout?
    }
    /// A rollout's state as `status_update` carries it: `in_progress`, `halted`, `complete` or `rolled_back` (with
    /// the reason and the instance that failed).
    struct Rollout: Encodable, Equatable {
        var version: Int
        var state: String
        var reason: String?
        var failedInstance: String?
    }
    struct Metrics: Encodable, Equatable {
        var cpu: Double
        var memory: Double
        /// Requests per second once agents count them; null until then (they do not yet), never a made-up 0.
        var requests: Double?
        var connections: Int
        var instances: Int

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(cpu, forKey: .cpu)
            try c.encode(memory, forKey: .memory)
            try c.encode(requests, forKey: .requests)  // explicit null: the field is part of the contract
            try c.encode(connections, forKey: .connections)
            try c.encode(instances, forKey: .instances)
        }
        enum CodingKeys: String, CodingKey { case cpu, memory, requests, connections, instances }
    }
    struct MetricsUpdate: Encodable, Equatable { var deploymentId: String; var timestamp: String; var metrics: Metrics }
    struct LogsDropped: Encodable, Equatable { var deploymentId: String; var count: Int }
    struct ErrorMessage: Encodable, Equatable { var message: String }
    struct Empty: Encodable, Equatable {}

    /// One frame's bytes; shared frames (a log line sent to many subscribers) are encoded once.
    static func encode<D: Encodable>(_ event: String, _ data: D) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        // The payloads are plain strings and numbers: encoding cannot fail short of a bug.
        let bytes = (try? encoder.encode(Outgoing(event: event, data: data))) ?? Data(#"{"event":"error","data":{"message":"encoding failed"}}"#.utf8)
        return ByteBuffer(bytes: bytes)
    }

    /// A `log_update` frame, `{"data":LINE,"event":"log_update"}` (the bytes `encode` gives, keys sorted), and the
    /// line's own JSON object within it: a `log_batch` carries the same object without encoding the line again.
    static func logUpdate(_ update: LogUpdate) -> (frame: ByteBuffer, line: ByteBuffer) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes, .sortedKeys]
        let object = (try? encoder.encode(update)) ?? Data("{}".utf8)
        var frame = ByteBuffer()
        frame.reserveCapacity(object.count + logUpdatePrefix.utf8.count + logUpdateSuffix.utf8.count)
        frame.writeString(logUpdatePrefix)
        frame.writeBytes(object)
        frame.writeString(logUpdateSuffix)
        // A slice shares the frame's storage: the line costs no copy until a batch is assembled.
        let line = frame.getSlice(at: frame.readerIndex + logUpdatePrefix.utf8.count, length: object.count) ?? ByteBuffer()
        return (frame, line)
    }
    private static let logUpdatePrefix = #"{"data":"#
    private static let logUpdateSuffix = #","event":"log_update"}"#

    /// `log_batch {deploymentId, lines: [LINE, ...]}`, each line the object a `log_update` carries as its data (as
    /// `logUpdate` gave it). Assembled per connection when its queue is written, by copying bytes.
    static func logBatch(_ deploymentId: String, _ lines: [ByteBuffer]) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.withoutEscapingSlashes]
        let id = (try? encoder.encode(deploymentId)) ?? Data("\"\"".utf8)
        var frame = ByteBuffer()
        frame.reserveCapacity(lines.reduce(64 + id.count) { $0 + $1.readableBytes + 1 })
        frame.writeString(#"{"data":{"deploymentId":"#)
        frame.writeBytes(id)
        frame.writeString(#","lines":["#)
        for (i, line) in lines.enumerated() {
            if i > 0 { frame.writeString(",") }
            frame.writeImmutableBuffer(line)
        }
        frame.writeString(#"]},"event":"log_batch"}"#)
        return frame
    }

    static func confirmed(_ type: String, _ deploymentId: String) -> ByteBuffer {
        encode("subscription_confirmed", SubscriptionConfirmed(type: type, deploymentId: deploymentId))
    }
    /// The same answer for an unknown deployment and for another user's.
    static func notFound(_ deploymentId: String) -> ByteBuffer {
        encode("subscription_error", SubscriptionError(deploymentId: deploymentId, message: "Deployment not found"))
    }
    static func error(_ message: String) -> ByteBuffer { encode("error", ErrorMessage(message: message)) }
    static func pong() -> ByteBuffer { encode("pong", Empty()) }
    static func dropped(_ deploymentId: String, _ count: Int) -> ByteBuffer {
        encode("logs_dropped", LogsDropped(deploymentId: deploymentId, count: count))
    }
}

struct LiveFrameError: Error, Equatable, Sendable {
    var message: String
    init(_ message: String) { self.message = message }
}
