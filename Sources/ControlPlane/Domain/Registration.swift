// Who may create an account: an operator's choice (`serve --registration`).

/// `open`: anyone; `closed`: nobody; `invite`: whoever holds an unused invite code an administrator created.
/// Unset, registration is open only until the first user (the administrator) exists.
public enum RegistrationMode: String, Sendable, CaseIterable {
    case open, closed, invite
}

/// What the store enforces inside the transaction that inserts the user, so that two concurrent first
/// registrations cannot both find the table empty (and both become administrators).
public enum RegistrationRule: Sendable, Equatable {
    /// Only while no user exists (the default).
    case firstUserOnly
    case open
    case closed
    /// A valid invite's code hash is required once a user exists (the first user needs none: nobody could invite).
    case invite(codeHash: String?)

    init(_ mode: RegistrationMode?, inviteCodeHash: String?) {
        switch mode {
        case nil: self = .firstUserOnly
        case .open: self = .open
        case .closed: self = .closed
        case .invite: self = .invite(codeHash: inviteCodeHash)
        }
    }
}

/// Why the store refused a registration.
public enum RegistrationRefusal: Error, Sendable, Equatable {
    case closed
    /// Closed because a user exists (the default mode).
    case firstUserExists
    case inviteRequired
    case inviteInvalid
}

/// An invite as its creator sees it, once: the code is stored only as its hash.
public struct RegistrationInvite: Codable, Sendable, Equatable {
    public var id: String
    public var code: String
    public var expiresAt: Date
}

public import Foundation
