// The per-request context: the authenticated user (set by AuthMiddleware) and the peer address for audit.
public import Hummingbird
import NIOCore

public struct ControlPlaneContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    public var user: User?
    /// Bearer token of the session, kept so that logout can revoke exactly it.
    public var sessionToken: String?
    public let remoteAddress: String?

    public init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        remoteAddress = source.channel.remoteAddress?.ipAddress
    }

    /// The 1 MiB request limit (also enforced up front from Content-Length by BodyLimitMiddleware).
    public var maxUploadSize: Int { HTTPLimits.maxBodyBytes }

    func requireUser() throws(ControlPlaneError) -> User {
        guard let user else { throw .unauthorized("authentication required") }
        return user
    }
}

enum HTTPLimits {
    static let maxBodyBytes = 1 << 20
}
