/// The key-encryption key: it wraps (AES-256-GCM) every data key and never encrypts user data itself.
///
/// Its description shows only a fingerprint, so printing or logging one does not leak it.
public struct MasterKey: Sendable, CustomStringConvertible {
    let secret: SecretBytes

    public init(bytes: [UInt8]) throws(SealingError) {
        guard bytes.count == AESGCM.keyLength else { throw .invalidKeyLength }
        secret = SecretBytes(bytes)
    }

    /// 32 fresh bytes from the CSPRNG.
    public static func generate() -> MasterKey {
        var bytes = SecureRandom.bytes(AESGCM.keyLength)
        defer { wipe(&bytes) }
        return try! MasterKey(bytes: bytes)  // cannot fail: the length is right by construction
    }

    /// The key in standard base64, for writing the key file (mode 0600) or CODERUNNER_MASTER_KEY.
    public var base64: String {
        var bytes = secret.copy()
        defer { wipe(&bytes) }
        return Base64.encode(bytes)
    }

    /// Reads the base64 form; surrounding whitespace is ignored (key files end with a newline).
    public init(base64: String) throws(SealingError) {
        var bytes = try Base64.decode(base64)
        defer { wipe(&bytes) }
        try self.init(bytes: bytes)
    }

    /// A short, stable identifier safe to log: the first 8 bytes of HMAC-SHA-256(key, label), in hex.
    /// It tells operators which master key a controller loaded without revealing anything about it.
    public var fingerprint: String {
        let mac = secret.withBytes { Digest.hmacSHA256(key: $0, data: Array("coderunner-master-key-fingerprint".utf8)) }
        return Digest.hex(Array(mac.prefix(8)))
    }

    /// A secret every holder of this key computes alike: HMAC-SHA-256(key, label, NUL, data) in hex. `label` names
    /// the use, so that no two uses share a value. The controllers of one cluster derive the bearer token of a local
    /// agent of any node with it.
    public func derive(_ label: String, _ data: String) -> String {
        let message = Array(label.utf8) + [0] + Array(data.utf8)
        return Digest.hex(secret.withBytes { Digest.hmacSHA256(key: $0, data: message) })
    }

    public var description: String { "MasterKey(fingerprint: \(fingerprint))" }
}
