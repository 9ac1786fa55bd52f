// Registration, login, session tokens, invites.
public import Foundation
import HummingbirdBcrypt
import NIOPosix
import Synchronization

public struct AuthService: Sendable {
    let store: any ControlPlaneStore
    let dependencies: Dependencies
    let bcryptCost: UInt8
    let tokenLifetime: Duration
    let adminEmail: String?
    let registration: RegistrationMode?
    /// A hash of a password nobody knows, at the configured cost: a login for an unknown e-mail is checked
    /// against it, so that it takes as long as one for a known e-mail and the timing does not tell them apart.
    let dummyHash: String
    /// Logout tells open WebSocket connections of the session through it (they close with 4401).
    public let revocations = SessionRevocations()

    init(store: any ControlPlaneStore, dependencies: Dependencies, bcryptCost: UInt8, tokenLifetime: Duration,
         adminEmail: String?, registration: RegistrationMode?) async throws {
        self.store = store
        self.dependencies = dependencies
        self.bcryptCost = bcryptCost
        self.tokenLifetime = tokenLifetime
        self.adminEmail = adminEmail
        self.registration = registration
        let secret = try Tokens.mint(prefix: "", random: dependencies.random)
        dummyHash = try await Self.offLoop { Bcrypt.hash(secret, cost: bcryptCost) }
    }

    public struct Session: Codable, Sendable {
        public var token: String
        public var expiresAt: Date
        public var user: User
    }

    /// bcrypt is deliberately slow: it runs on NIO's blocking pool, never on an event loop nor on Swift's
    /// cooperative pool (whose few threads also run every request handler).
    static func offLoop<T: Sendable>(_ work: @escaping @Sendable () throws -> T) async throws -> T {
        try await NIOThreadPool.singleton.runIfActive(work)
    }

    public func register(email rawEmail: String?, password rawPassword: String?, inviteCode: String? = nil) async throws -> User {
        // A closed controller refuses before bcrypt's work (the store checks again, in the transaction).
        if registration == .closed { throw Self.refusal(.closed) }
        let email = try Validation.checkEmail(rawEmail)
        let password = try Validation.checkPassword(rawPassword)
        let cost = bcryptCost
        let hash = try await Self.offLoop { Bcrypt.hash(password, cost: cost) }
        let rule = RegistrationRule(registration, inviteCodeHash: inviteCode.map(Tokens.hash))
        do {
            return try await store.createUser(id: newID(), email: email, passwordHash: hash, adminEmail: adminEmail, rule: rule,
                                              now: dependencies.now())
        } catch StoreError.conflict {
            throw ControlPlaneError.registrationFailed
        } catch let refusal as RegistrationRefusal {
            throw Self.refusal(refusal)
        }
    }

    static func refusal(_ refusal: RegistrationRefusal) -> ControlPlaneError {
        switch refusal {
        case .closed:
            .forbidden("registration is closed on this controller; an administrator can change --registration")
        case .firstUserExists:
            .forbidden("registration is closed: it is open only until the first user (the administrator) exists; the operator can start the controller with --registration open or invite")
        case .inviteRequired:
            .forbidden("registration requires an invite: send inviteCode, which an administrator creates with POST /api/auth/invites")
        case .inviteInvalid:
            .forbidden("the invite code is invalid, expired or already used")
        }
    }

    public func login(email rawEmail: String?, password rawPassword: String?) async throws -> Session {
        let user = try await verify(email: rawEmail, password: rawPassword)
        let token = try Tokens.mint(prefix: Tokens.userPrefix, random: dependencies.random)
        let now = dependencies.now()
        let expiresAt = now.addingTimeInterval(tokenLifetime.inSeconds)
        try await store.insertAPIToken(hash: Tokens.hash(token), userId: user.id, expiresAt: expiresAt, now: now)
        return Session(token: token, expiresAt: expiresAt, user: user)
    }

    /// The user whose e-mail and password these are, or "Invalid credentials" whichever of the two is wrong.
    func verify(email rawEmail: String?, password rawPassword: String?) async throws -> User {
        guard let rawEmail, let rawPassword, !rawPassword.isEmpty else {
            throw ControlPlaneError.validation(field: rawEmail == nil ? "email" : "password", reason: "is required")
        }
        let invalid = ControlPlaneError.unauthorized("Invalid credentials")
        let record = try await store.credentials(email: rawEmail.lowercased())
        // Unknown address or over-long password: verify against the dummy hash anyway (see dummyHash).
        let usable = record != nil && rawPassword.utf8.count <= 72
        let hash = usable ? record!.passwordHash : dummyHash
        let candidate = String(decoding: Array(rawPassword.utf8.prefix(72)), as: UTF8.self)
        let matches = try await Self.offLoop { Bcrypt.verify(candidate, hash: hash) }
        guard usable, matches, let user = record?.user else { throw invalid }
        return user
    }

    /// The user a session token belongs to, if it is known, unexpired and not revoked.
    public func authenticate(token: String) async throws -> User {
        guard let user = try await store.user(forTokenHash: Tokens.hash(token), now: dependencies.now()) else {
            throw ControlPlaneError.unauthorized("invalid or expired token")
        }
        return user
    }

    /// The same check, also telling when the session expires (a WebSocket connection closes then).
    public func authenticateSession(token: String) async throws -> (user: User, expiresAt: Date) {
        guard let session = try await store.session(forTokenHash: Tokens.hash(token), now: dependencies.now()) else {
            throw ControlPlaneError.unauthorized("invalid or expired token")
        }
        return session
    }

    public func logout(token: String) async throws {
        let hash = Tokens.hash(token)
        try await store.revokeAPIToken(hash: hash, now: dependencies.now())
        revocations.revoke(tokenHash: hash)
    }

    /// A single-use invite code (administrators only), shown once; audited.
    public func createInvite(actor: Actor, isAdmin: Bool) async throws -> RegistrationInvite {
        guard isAdmin, let userId = actor.userId else { throw ControlPlaneError.forbidden("administrator role required") }
        let code = try Tokens.mint(prefix: Tokens.invitePrefix, random: dependencies.random)
        let now = dependencies.now()
        let invite = RegistrationInvite(
            id: newID(), code: code,
            expiresAt: now.addingTimeInterval(ControllerConfiguration.defaultInviteLifetime.inSeconds))
        try await store.createInvite(
            id: invite.id, codeHash: Tokens.hash(code), createdBy: userId, expiresAt: invite.expiresAt,
            audit: AuditDraft(userId: userId, projectId: nil, action: "create", resourceType: "invite", resourceId: invite.id,
                              changes: ["expiresAt": Timestamps.format(invite.expiresAt)], ipAddress: actor.ipAddress,
                              userAgent: actor.userAgent, timestamp: now))
        return invite
    }
}

/// Attempts per key (a client address, a user) on a TokenBucketLimiter over the monotonic clock; `refusal` words the
/// 429's reason from the seconds to wait.
final class AttemptLimiter: Sendable {
    private let state: Mutex<TokenBucketLimiter>
    private let now: @Sendable () -> Duration
    private let refusal: @Sendable (Int) -> String

    /// Login and registration attempts per client address.
    static func authentication(_ policy: TokenBucketLimiter.Policy, now: (@Sendable () -> Duration)? = nil) -> AttemptLimiter {
        AttemptLimiter(policy: policy, now: now) {
            "too many login or registration attempts from this address; retry in \($0) s"
        }
    }

    init(policy: TokenBucketLimiter.Policy, now: (@Sendable () -> Duration)? = nil,
         refusal: @escaping @Sendable (Int) -> String) {
        state = Mutex(TokenBucketLimiter(policy: policy))
        let origin = ContinuousClock.now
        self.now = now ?? { origin.duration(to: .now) }
        self.refusal = refusal
    }

    func check(_ key: String?) throws(ControlPlaneError) {
        let time = now()
        switch state.withLock({ $0.take(key ?? "unknown", now: time) }) {
        case .allowed:
            return
        case .limited(let seconds):
            throw .tooManyRequests(refusal(seconds), retryAfter: seconds)
        }
    }
}
