// The dashboard's browser sessions. They change nothing agents' configs are built from, so they write through
// the pool directly (like InstanceRegistry), not through the publishing write path.
public import Foundation
import GRDB

extension SQLiteStore {
    public func insertBrowserSession(hash: String, userId: String, expiresAt: Date, now: Date) async throws {
        try await pool.write { db in
            try db.execute(
                sql: "INSERT INTO browser_sessions (token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
                arguments: [hash, userId, now, expiresAt])
        }
    }

    public func user(forBrowserSessionHash hash: String, now: Date) async throws -> User? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT u.id, u.email, u.is_admin, u.created_at FROM browser_sessions s JOIN users u ON u.id = s.user_id
                WHERE s.token_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ?
                """, arguments: [hash, now]).map { row in
                User(id: row["id"], email: row["email"], isAdmin: row["is_admin"], createdAt: row["created_at"])
            }
        }
    }

    /// The user and the expiry of an unexpired, unrevoked session (a live socket closes at the expiry).
    public func browserSession(forTokenHash hash: String, now: Date) async throws -> (user: User, expiresAt: Date)? {
        try await pool.read { db in
            try Row.fetchOne(db, sql: """
                SELECT u.id, u.email, u.is_admin, u.created_at, s.expires_at AS session_expires_at
                FROM browser_sessions s JOIN users u ON u.id = s.user_id
                WHERE s.token_hash = ? AND s.revoked_at IS NULL AND s.expires_at > ?
                """, arguments: [hash, now]).map { row in
                (User(id: row["id"], email: row["email"], isAdmin: row["is_admin"], createdAt: row["created_at"]),
                 row["session_expires_at"] as Date)
            }
        }
    }

    public func revokeBrowserSession(hash: String, now: Date) async throws {
        try await pool.write { db in
            // Expired rows of any user go too: a table that only grows would keep every login forever.
            try db.execute(sql: "DELETE FROM browser_sessions WHERE expires_at <= ?", arguments: [now])
            try db.execute(sql: "UPDATE browser_sessions SET revoked_at = ? WHERE token_hash = ? AND revoked_at IS NULL",
                           arguments: [now, hash])
        }
    }
}
