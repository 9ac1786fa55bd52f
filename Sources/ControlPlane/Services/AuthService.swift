// Registration, login, session tokens.
import Foundation
import HummingbirdBcrypt
import NIOPosix

public struct AuthService: Sendable {
    let store: any ControlPlaneStore
    let dependencies: Dependencies
    let bcryptCost: UInt8
    let tokenLifetime: Duration
    let adminEmail: String?

    public struct Session: Codable, Sendable {
        public var token: String
        public var expiresAt: Date
        public var user: User
    }

    public func register(email rawEmail: String?, password rawPassword: String?) async throws -> User {
        let email = try Validation.checkEmail(rawEmail)
        let password = try Validation.checkPassword(rawPassword)
        let cost = bcryptCost
        // bcrypt is deliberately slow: run it on NIO's blocking pool, never on an event loop.
        let hash = try await NIOThreadPool.singleton.runIfActive { Bcrypt.hash(password, cost: cost) }
        do {
            return try await store.createUser(id: newID(), email: email, passwordHash: hash, adminEmail: adminEmail,
                                              now: dependencies.now())
        } catch StoreError.conflict {
            throw ControlPlaneError.conflict("a user with this email already exists")
        }
    }

    public func login(email rawEmail: String?, password rawPassword: String?) async throws -> Session {
        guard let rawEmail, let rawPassword, !rawPassword.isEmpty else {
            throw ControlPlaneError.validation(field: rawEmail == nil ? "email" : "password", reason: "is required")
        }
        let invalid = ControlPlaneError.unauthorized("Invalid credentials")
        guard let (user, hash) = try await store.credentials(email: rawEmail.lowercased()),
              rawPassword.utf8.count <= 72
        else { throw invalid }
        let matches = try await NIOThreadPool.singleton.runIfActive { Bcrypt.verify(rawPassword, hash: hash) }
        guard matches else { throw invalid }
        let token = try Tokens.mint(prefix: Tokens.userPrefix, random: dependencies.random)
        let now = dependencies.now()
        let expiresAt = now.addingTimeInterval(Double(tokenLifetime.components.seconds))
        try await store.insertAPIToken(hash: Tokens.hash(token), userId: user.id, expiresAt: expiresAt, now: now)
        return Session(token: token, expiresAt: expiresAt, user: user)
    }

    /// The user a session token belongs to, if it is known, unexpired and not revoked.
    public func authenticate(token: String) async throws -> User {
        guard let user = try await store.user(forTokenHash: Tokens.hash(token), now: dependencies.now()) else {
            throw ControlPlaneError.unauthorized("invalid or expired token")
        }
        return user
    }

    public func logout(token: String) async throws {
        try await store.revokeAPIToken(hash: Tokens.hash(token), now: dependencies.now())
    }
}
