// Who may open GET /api/ws, decided on the upgrade request before any WebSocket exists. Pure: the headers in,
// a credential to check or a refusal out.
import Foundation
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
        /// The dashboard's session cookie, sent by a page of the controller itself.
        case browserSession(String)
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
        // A cookie alone is what a cross-site page could replay (the browser attaches it to any upgrade), so it counts
        // only with an Origin that is present, names a page (http or https: a browser always sends its page's) and
        // passed the check above. A client without an Origin, or with the URL it dials as one, is no browser page:
        // it sends its token as a bearer.
        if let origin = request.origin, isPageOrigin(origin),
           let token = cookie(named: BrowserSession.cookieName, in: request.cookie) {
            return .success(.browserSession(token))
        }
        return .failure(.authenticationFailed)
    }

    private static func isPageOrigin(_ origin: String) -> Bool {
        let lowered = origin.lowercased()
        return lowered.hasPrefix("http://") || lowered.hasPrefix("https://")
    }

    /// The first cookie of that name in a Cookie header (RFC 6265 5.4: `name=value` pairs joined by "; "), its
    /// value unquoted; nil when absent, empty or longer than any token.
    static func cookie(named name: String, in header: String?) -> String? {
        guard let header else { return nil }
        for pair in header.split(separator: ";") {
            guard let equals = pair.firstIndex(of: "=") else { continue }
            guard pair[..<equals].trimmingCharacters(in: .whitespaces) == name else { continue }
            var value = pair[pair.index(after: equals)...].trimmingCharacters(in: .whitespaces)
            if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") { value = String(value.dropFirst().dropLast()) }
            return value.isEmpty || value.utf8.count > 256 ? nil : value
        }
        return nil
    }

    /// The Origin names the controller itself: its host and port are the request's Host (any scheme: TLS may end at
    /// a proxy in front). "null" (a sandboxed or file page) is never the controller. A `ws://` or `wss://` Origin is
    /// no page's (browsers send the page's http or https origin); WebSocket client libraries send the URL they
    /// dial, often without its port, so for those the host name alone must match.
    static func sameOrigin(_ origin: String, host: String?) -> Bool {
        guard let host, !host.isEmpty else { return false }
        let lowered = origin.lowercased()
        guard let separator = lowered.range(of: "://") else { return false }
        let scheme = String(lowered[..<separator.lowerBound])
        let rest = String(lowered[separator.upperBound...])
        guard !rest.isEmpty, !rest.contains("/") else { return false }
        switch scheme {
        case "http", "https":
            return normalized(rest, scheme: scheme) == normalized(host.lowercased(), scheme: scheme)
        case "ws", "wss":
            return hostName(rest) == hostName(host.lowercased())
        default:
            return false
        }
    }

    /// The host of host[:port] ([v6]:port too).
    private static func hostName(_ authority: String) -> String {
        if authority.hasPrefix("["), let end = authority.firstIndex(of: "]") { return String(authority[...end]) }
        return String(authority.split(separator: ":", maxSplits: 1).first ?? "")
    }

    /// host[:port] without the scheme's default port.
    private static func normalized(_ authority: String, scheme: String) -> String {
        let defaultPort = scheme == "https" ? ":443" : ":80"
        return authority.hasSuffix(defaultPort) ? String(authority.dropLast(defaultPort.count)) : authority
    }
}
