// Browser sessions for the dashboard: a login gives a cookie's token instead of an API token. The token is
// minted and stored like one (256 random bits, only its SHA-256 kept), lives as long, and logout revokes it.
public import Foundation

public struct BrowserSession: Sendable {
    /// The cookie's value; nothing else ever holds it.
    public var token: String
    public var startedAt: Date
    public var expiresAt: Date
    public var user: User

    /// The cookie that carries the token (the dashboard sets it; the live streams' gate reads it too).
    public static let cookieName = "cr_session"

    /// The cookie's Max-Age: the browser forgets it when the server stops honouring it.
    public var maxAgeSeconds: Int { Int(expiresAt.timeIntervalSince(startedAt)) }
}

extension AuthService {
    /// Checks the credentials as `login` does (same timing for unknown e-mails) and opens a browser session.
    public func startBrowserSession(email: String?, password: String?) async throws -> BrowserSession {
        try await startBrowserSession(for: try await verify(email: email, password: password))
    }

    /// A session for a user who just proved who they are (a registration's password).
    public func startBrowserSession(for user: User) async throws -> BrowserSession {
        let token = try Tokens.mint(prefix: Tokens.browserSessionPrefix, random: dependencies.random)
        let now = dependencies.now()
        let expiresAt = now.addingTimeInterval(tokenLifetime.inSeconds)
        try await store.insertBrowserSession(hash: Tokens.hash(token), userId: user.id, expiresAt: expiresAt, now: now)
        return BrowserSession(token: token, startedAt: now, expiresAt: expiresAt, user: user)
    }

    /// The user of an unexpired, unrevoked session; nil for anything else (the page then asks to sign in).
    public func browserSessionUser(token: String) async throws -> User? {
        guard token.hasPrefix(Tokens.browserSessionPrefix), token.utf8.count <= 256 else { return nil }
        return try await store.user(forBrowserSessionHash: Tokens.hash(token), now: dependencies.now())
    }

    /// The same check, also telling when the session expires: the dashboard's live socket closes then.
    public func authenticateBrowserSession(token: String) async throws -> (user: User, expiresAt: Date)? {
        guard token.hasPrefix(Tokens.browserSessionPrefix), token.utf8.count <= 256 else { return nil }
        return try await store.browserSession(forTokenHash: Tokens.hash(token), now: dependencies.now())
    }

    /// Logout: the session ends, and so at once do the live sockets it opened (4401), as a bearer logout's do.
    public func endBrowserSession(token: String) async throws {
        let hash = Tokens.hash(token)
        try await store.revokeBrowserSession(hash: hash, now: dependencies.now())
        revocations.revoke(tokenHash: hash)
    }
}

extension ControlPlane {
    /// Login and registration attempts per client address: the dashboard's forms share the API's limiter, so
    /// that a guesser gains nothing by switching between them.
    public func checkAuthAttempt(from address: String?) throws(ControlPlaneError) {
        try authAttempts.check(address)
    }
}
