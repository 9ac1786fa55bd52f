// Who may open GET /api/ws, decided on the upgrade request before any WebSocket exists. Pure: the headers in,
// a credential to check or a refusal out.
import HTTPTypes

/// The parts of the upgrade request the gate reads.
struct LiveUpgradeRequest: Sendable, Equatable {
    var path: String
    var authorization: String?
    var origin: String?
    var host: String?
    var cookie: String?
}

/// A refusal at the handshake: an HTTP answer with the envelope's error.
struct LiveRefusal: Error, Sendable, Equatable {
    var status: HTTPResponse.Status
    var message: String

    static let authenticationFailed = LiveRefusal(status: .unauthorized, message: "Authentication failed")
}

enum LiveGate {
    static let path = "/api/ws"

    enum Credential: Sendable, Equatable {
        /// `Authorization: Bearer <session token>` (CLIs, scripts, tests).
        case bearer(String)
    }

    /// The credential to check, or why the upgrade is refused.
    static func credential(_ request: LiveUpgradeRequest) -> Result<Credential, LiveRefusal> {
        guard request.path == path else { return .failure(LiveRefusal(status: .notFound, message: "route not found")) }
        // Cross-site WebSocket hijacking: a browser sends the page's Origin with every upgrade, and a page of another
        // site must not ride on the user's credentials. Clients that are not browsers send no Origin.
        if let origin = request.origin, !sameOrigin(origin, host: request.host) {
            return .failure(LiveRefusal(status: .forbidden, message: "Origin not allowed"))
        }
        if let token = Tokens.bearer(request.authorization) { return .success(.bearer(token)) }
        // Browser sessions (the dashboard's cookie) are accepted here, and only here, once they exist: a cookie
        // alone is what a cross-site page could replay, so it counts only with the Origin check above passed by an
        // Origin that is present (a browser always sends one on an upgrade).
        return .failure(.authenticationFailed)
    }

    /// The Origin names the controller itself: its host and port are the request's Host (any scheme: TLS may end at
    /// a proxy in front). "null" (a sandboxed or file page) is never the controller.
    static func sameOrigin(_ origin: String, host: String?) -> Bool {
        guard let host, !host.isEmpty else { return false }
        let lowered = origin.lowercased()
        let rest: Substring
        if lowered.hasPrefix("https://") {
            rest = lowered.dropFirst("https://".count)
        } else if lowered.hasPrefix("http://") {
            rest = lowered.dropFirst("http://".count)
        } else {
            return false
        }
        guard !rest.contains("/") else { return false }
        let scheme = lowered.hasPrefix("https://") ? "https" : "http"
        return normalized(String(rest), scheme: scheme) == normalized(host.lowercased(), scheme: scheme)
    }

    /// host[:port] without the scheme's default port.
    private static func normalized(_ authority: String, scheme: String) -> String {
        let defaultPort = scheme == "https" ? ":443" : ":80"
        return authority.hasSuffix(defaultPort) ? String(authority.dropLast(defaultPort.count)) : authority
    }
}
