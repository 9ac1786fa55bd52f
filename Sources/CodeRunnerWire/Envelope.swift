// The response envelope every controller endpoint answers with: success, data or error, message, timestamp.
// No Foundation: the agent decodes it too, and the timestamp travels as an ISO 8601 string.

/// `{success, data, error, message, timestamp}`. `data` is present on success, `error` on failure.
/// Encodable or Decodable as its payload is: the controller sends some payloads it never reads back.
public struct Envelope<T: Sendable>: Sendable {
    public var success: Bool
    public var data: T?
    public var error: String?
    public var message: String?
    /// ISO 8601 UTC instant at which the controller produced the response.
    public var timestamp: String

    public init(success: Bool, data: T? = nil, error: String? = nil, message: String? = nil, timestamp: String) {
        self.success = success
        self.data = data
        self.error = error
        self.message = message
        self.timestamp = timestamp
    }
}

extension Envelope: Encodable where T: Encodable {}
extension Envelope: Decodable where T: Decodable {}

/// The payload of an envelope that carries no data (errors, deletes).
public struct Empty: Codable, Sendable, Equatable {
    public init() {}
}
