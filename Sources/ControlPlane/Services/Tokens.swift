// Bearer tokens: 256 random bits, shown once, stored only as their SHA-256.
import Foundation
import Sealing

public enum Tokens {
    /// Prefixes tell a leaked token's kind at a glance (and let secret scanners match them).
    public static let userPrefix = "crt_"
    public static let agentPrefix = "cra_"
    public static let invitePrefix = "cri_"
    /// The dashboard's session cookie.
    public static let browserSessionPrefix = "crs_"

    /// A new token: prefix + 64 hex digits from `random(32)`.
    public static func mint(prefix: String, random: @Sendable (Int) throws -> [UInt8]) throws -> String {
        let bytes = try random(32)
        let hex = bytes.map { byte in
            let digits = Array("0123456789abcdef")
            return String([digits[Int(byte >> 4)], digits[Int(byte & 0x0f)]])
        }.joined()
        return prefix + hex
    }

    /// What the database stores and looks tokens up by.
    public static func hash(_ token: String) -> String {
        Digest.sha256Hex(Array(token.utf8))
    }

    /// The token of an `Authorization: Bearer <token>` header, or nil.
    public static func bearer(_ header: String?) -> String? {
        guard let header else { return nil }
        let parts = header.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        let token = parts[1].trimmingCharacters(in: .whitespaces)
        return token.isEmpty || token.count > 256 ? nil : token
    }
}
