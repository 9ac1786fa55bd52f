// The controller's typed errors. Each maps once, in ErrorMiddleware, to a status and an envelope.

public enum ControlPlaneError: Error, Equatable, Sendable {
    /// 400. The message always starts with "validation failed" and names the field.
    case validation(field: String, reason: String)
    /// 400. Every required template variable that got no value, listed at once.
    case missingRequired([String])
    /// 409. A registration the database refused as a duplicate, in words that do not say the address has an
    /// account. (The status still differs from a success: what protects addresses is that registration is not
    /// open to anyone by default, and that attempts are rate-limited. 409 keeps existing clients working.)
    case registrationFailed
    /// 401.
    case unauthorized(String)
    /// 403.
    case forbidden(String)
    /// 404. `resource` is e.g. "project"; the message is "<resource> not found".
    case notFound(String)
    /// 409.
    case conflict(String)
    /// 409. A stored ciphertext failed authentication: it is never served.
    case corrupted(String)
    /// 413.
    case payloadTooLarge
    /// 429, with a Retry-After of `retryAfter` seconds.
    case tooManyRequests(String, retryAfter: Int)
    /// The controller is shutting down; the client should retry later (another controller, or this one back).
    case unavailable(String)

    public var status: Int {
        switch self {
        case .validation, .missingRequired: 400
        case .unauthorized: 401
        case .forbidden: 403
        case .notFound: 404
        case .conflict, .corrupted, .registrationFailed: 409
        case .payloadTooLarge: 413
        case .tooManyRequests: 429
        case .unavailable: 503
        }
    }

    public var message: String {
        switch self {
        case .validation(let field, let reason): "validation failed: \(field) \(reason)"
        case .missingRequired(let keys): "validation failed: missing required variables: \(keys.joined(separator: ", "))"
        case .registrationFailed: "registration failed: this e-mail address cannot be registered; if you have an account, sign in"
        case .unauthorized(let reason): reason
        case .forbidden(let reason): reason
        case .notFound(let resource): "\(resource) not found"
        case .conflict(let reason): reason
        case .corrupted(let reason): "corrupted: \(reason)"
        case .payloadTooLarge: "request body exceeds the 1 MiB limit"
        case .tooManyRequests(let reason, _): reason
        case .unavailable(let reason): reason
        }
    }
}
