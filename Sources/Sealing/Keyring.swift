import Synchronization

/// A data key as stored: its version, the key wrapped (AES-GCM sealed) by the master key with AAD binding the version,
/// its usage count, and whether it is retired (no longer decrypts).
///
/// `wrappedKey` uses the same layout as every sealed value (README.md, Encryption at rest): 65 bytes, with the
/// data key's own version in the header and "coderunner-datakey-v<version>" as the AAD. In JSON it is base64.
public struct StoredDataKey: Sendable, Equatable, Codable {
    public var version: UInt32
    public var wrappedKey: [UInt8]
    /// Seals performed with this key (each used one random nonce).
    public var encryptions: UInt64
    public var retired: Bool
    /// Seconds since 1970 (the caller's clock).
    public var createdAt: Double

    public init(version: UInt32, wrappedKey: [UInt8], encryptions: UInt64, retired: Bool, createdAt: Double) {
        self.version = version
        self.wrappedKey = wrappedKey
        self.encryptions = encryptions
        self.retired = retired
        self.createdAt = createdAt
    }

    private enum CodingKeys: String, CodingKey { case version, wrappedKey, encryptions, retired, createdAt }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        version = try c.decode(UInt32.self, forKey: .version)
        do {
            wrappedKey = try Base64.decode(try c.decode(String.self, forKey: .wrappedKey))
        } catch let error as SealingError {
            throw DecodingError.dataCorruptedError(forKey: .wrappedKey, in: c, debugDescription: error.description)
        }
        encryptions = try c.decode(UInt64.self, forKey: .encryptions)
        retired = try c.decode(Bool.self, forKey: .retired)
        createdAt = try c.decode(Double.self, forKey: .createdAt)
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encode(Base64.encode(wrappedKey), forKey: .wrappedKey)
        try c.encode(encryptions, forKey: .encryptions)
        try c.encode(retired, forKey: .retired)
        try c.encode(createdAt, forKey: .createdAt)
    }

    /// The AAD under which the master key wraps data key `version`: it stops a wrapped key being swapped
    /// into another version's row.
    static func wrappingAAD(_ version: UInt32) -> [UInt8] { Array("coderunner-datakey-v\(version)".utf8) }
}

/// The keyring: versioned data keys wrapped by the master key. Thread-safe (Mutex). Encrypts with the newest version,
/// decrypts with any non-retired version named in the ciphertext.
///
/// Like Vault transit: `addVersion` rotates, `rewrap` moves ciphertext to the newest version without the
/// plaintext leaving the keyring, and `retire` is the `min_decryption_version` step. The keyring never persists
/// anything: after `addVersion`, `retire`, or seals (the usage counter), the caller stores `keys`.
/// Persist a new version before sealing anything with it, or that data will not open after a restart.
public final class Keyring: Sendable {
    /// Rotate after 2^24 (16,777,216) seals with one key.
    ///
    /// NIST SP 800-38D caps random-nonce GCM at 2^32 invocations per key, which keeps the chance of a
    /// repeated nonce below 2^-32 (Vault rotates its barrier at 0.9 × 2^32). The collision chance after q seals
    /// is about q^2 / 2^97; at 2^24 that is 2^-49, and the 256× margin below the cap absorbs counts lost when the
    /// process stops before the caller persisted them. Kubernetes' "rotate every 200,000 writes" for aesgcm is
    /// stricter still; a config service seals only on secret writes, so 2^24 rarely forces a rotation while
    /// staying far inside the bound. Pass a smaller threshold to the initializer to rotate sooner.
    public static let defaultRotationThreshold: UInt64 = 1 << 24
    /// NIST SP 800-38D §8.3: at most 2^32 invocations of GCM with random 96-bit nonces per key. Sealing stops here.
    public static let hardUsageLimit: UInt64 = 1 << 32

    private struct Entry {
        var stored: StoredDataKey
        /// nil once retired: the raw key is dropped (and wiped) so it can no longer decrypt.
        var key: SecretBytes?
    }

    private struct State {
        var entries: [UInt32: Entry] = [:]
        /// 0 when the keyring holds no usable key.
        var current: UInt32 = 0
    }

    private let master: MasterKey
    private let state: Mutex<State>
    public let rotationThreshold: UInt64

    /// Unwraps every stored key with `master`. A key that does not unwrap means the wrong master key
    /// (`wrongMasterKey`); nothing is half-loaded. Empty `keys` is allowed: call `addVersion` before sealing.
    public init(master: MasterKey, keys: [StoredDataKey], rotationThreshold: UInt64 = defaultRotationThreshold) throws(SealingError) {
        guard rotationThreshold >= 1 && rotationThreshold <= Self.hardUsageLimit else {
            throw .invalidRotationThreshold(rotationThreshold)
        }
        var loaded = State()
        for stored in keys {
            guard loaded.entries[stored.version] == nil else { throw .duplicateKeyVersion(stored.version) }
            let parts: SealedHeader.Parts
            do {
                parts = try SealedHeader.parse(stored.wrappedKey)
            } catch {
                throw .malformedCiphertext("stored data key version \(stored.version): \(error.description)")
            }
            guard parts.header.keyVersion == stored.version else {
                throw .malformedCiphertext(
                    "stored data key version \(stored.version) names version \(parts.header.keyVersion) in its header")
            }
            var raw: [UInt8]
            do {
                raw = try master.secret.withBytes { (k) throws(SealingError) in
                    try SealedHeader.open(key: k, parts: parts, aad: StoredDataKey.wrappingAAD(stored.version))
                }
            } catch .authenticationFailed {
                throw .wrongMasterKey(version: stored.version)
            }
            defer { wipe(&raw) }
            guard raw.count == AESGCM.keyLength else {
                throw .malformedCiphertext("stored data key version \(stored.version) unwraps to \(raw.count) bytes, not 32")
            }
            loaded.entries[stored.version] = Entry(stored: stored, key: stored.retired ? nil : SecretBytes(raw))
            if !stored.retired { loaded.current = max(loaded.current, stored.version) }
        }
        self.master = master
        self.rotationThreshold = rotationThreshold
        self.state = Mutex(loaded)
    }

    /// The version new seals use; 0 if the keyring has no usable key yet.
    public var currentVersion: UInt32 { state.withLock { $0.current } }

    /// Every key, wrapped only, ordered by version: what the caller persists.
    public var keys: [StoredDataKey] {
        state.withLock { s in s.entries.values.map(\.stored).sorted { $0.version < $1.version } }
    }

    /// One stored key, e.g. to persist the current key's usage counter after a seal.
    public func storedKey(version: UInt32) -> StoredDataKey? {
        state.withLock { $0.entries[version]?.stored }
    }

    /// The master key's loggable fingerprint.
    public var masterKeyFingerprint: String { master.fingerprint }

    /// Rotate: a fresh random data key, wrapped by the master key, becomes current. Persist the result.
    @discardableResult
    public func addVersion(now: Double) -> StoredDataKey {
        var raw = SecureRandom.bytes(AESGCM.keyLength)
        defer { wipe(&raw) }
        let secret = SecretBytes(raw)
        return state.withLock { s in
            let highest = s.entries.keys.max() ?? 0
            precondition(highest < UInt32.max, "key versions exhausted")
            let version = highest + 1
            // Wrapping under the master key cannot fail: both lengths are right by construction.
            let wrapped = try! master.secret.withBytes { (k) throws(SealingError) in
                try SealedHeader.seal(key: k, keyVersion: version, plaintext: raw, aad: StoredDataKey.wrappingAAD(version))
            }
            let stored = StoredDataKey(version: version, wrappedKey: wrapped, encryptions: 0, retired: false, createdAt: now)
            s.entries[version] = Entry(stored: stored, key: secret)
            s.current = version
            return stored
        }
    }

    /// Stops `version` from decrypting (Vault's min_decryption_version). Rewrap its data first.
    /// Retiring the current version is refused; retiring a retired version is a no-op.
    public func retire(version: UInt32) throws(SealingError) {
        try state.withLock { (s) throws(SealingError) in
            guard s.entries[version] != nil else { throw .unknownKeyVersion(version) }
            guard version != s.current else { throw .cannotRetireCurrentVersion(version) }
            s.entries[version]!.stored.retired = true
            s.entries[version]!.key = nil
        }
    }

    /// Seals under the current version with a fresh random nonce and counts the use.
    /// `aad` binds the result to its context (see `aad(configId:key:)`); the same bytes are needed to open.
    public func seal(_ plaintext: [UInt8], aad: [UInt8]) throws(SealingError) -> [UInt8] {
        let (version, key) = try reserveCurrent()
        return try key.withBytes { (k) throws(SealingError) in
            try SealedHeader.seal(key: k, keyVersion: version, plaintext: plaintext, aad: aad)
        }
    }

    /// Opens a value sealed under any non-retired version.
    public func open(_ sealed: [UInt8], aad: [UInt8]) throws(SealingError) -> [UInt8] {
        let parts = try SealedHeader.parse(sealed)
        let key = try decryptionKey(parts.header.keyVersion)
        return try key.withBytes { (k) throws(SealingError) in try SealedHeader.open(key: k, parts: parts, aad: aad) }
    }

    /// Re-encrypts under the newest version; the plaintext never leaves the keyring and is wiped.
    /// A value already under the current version is verified and returned unchanged (no nonce spent).
    public func rewrap(_ sealed: [UInt8], aad: [UInt8]) throws(SealingError) -> [UInt8] {
        let parts = try SealedHeader.parse(sealed)
        let key = try decryptionKey(parts.header.keyVersion)
        var plaintext = try key.withBytes { (k) throws(SealingError) in try SealedHeader.open(key: k, parts: parts, aad: aad) }
        defer { wipe(&plaintext) }
        if parts.header.keyVersion == currentVersion { return sealed }
        return try seal(plaintext, aad: aad)
    }

    /// The key version a sealed value names, without opening it (to find values a rewrap must move).
    public static func keyVersion(of sealed: [UInt8]) throws(SealingError) -> UInt32 {
        try SealedHeader.parse(sealed).header.keyVersion
    }

    /// True when the current key's usage reached the threshold (or there is no key): the caller rotates.
    public var needsRotation: Bool {
        state.withLock { s in
            guard let entry = s.entries[s.current] else { return true }
            return entry.stored.encryptions >= rotationThreshold
        }
    }

    /// The canonical AAD binding a ciphertext to its row: the label "coderunner-env-var", the config id and
    /// the variable key, each as a 4-byte big-endian UTF-8 length followed by the bytes. Length prefixes keep
    /// it unambiguous: ("ab", "c") and ("a", "bc") give different AADs.
    public static func aad(configId: String, key: String) -> [UInt8] {
        var out: [UInt8] = []
        for field in ["coderunner-env-var", configId, key] {
            let bytes = Array(field.utf8)
            let n = UInt32(truncatingIfNeeded: bytes.count)
            out += [UInt8(n >> 24), UInt8((n >> 16) & 0xff), UInt8((n >> 8) & 0xff), UInt8(n & 0xff)]
            out += bytes
        }
        return out
    }

    // MARK: - Text-column conveniences (base64 of the sealed bytes)

    /// Seals a UTF-8 string and returns the sealed bytes in base64.
    public func sealString(_ plaintext: String, aad: [UInt8]) throws(SealingError) -> String {
        var bytes = Array(plaintext.utf8)
        defer { wipe(&bytes) }
        return Base64.encode(try seal(bytes, aad: aad))
    }

    /// Opens base64 produced by `sealString`.
    public func openString(_ sealedBase64: String, aad: [UInt8]) throws(SealingError) -> String {
        var bytes = try open(try Base64.decode(sealedBase64), aad: aad)
        defer { wipe(&bytes) }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `rewrap` for base64 text.
    public func rewrapBase64(_ sealedBase64: String, aad: [UInt8]) throws(SealingError) -> String {
        Base64.encode(try rewrap(try Base64.decode(sealedBase64), aad: aad))
    }

    /// `keyVersion(of:)` for base64 text.
    public static func keyVersion(ofBase64 sealedBase64: String) throws(SealingError) -> UInt32 {
        try keyVersion(of: try Base64.decode(sealedBase64))
    }

    // MARK: - Internals

    /// Counts one use of the current key before it is used, so a crash can only over-count.
    private func reserveCurrent() throws(SealingError) -> (UInt32, SecretBytes) {
        try state.withLock { (s) throws(SealingError) -> (UInt32, SecretBytes) in
            guard s.current != 0, let entry = s.entries[s.current], let key = entry.key else { throw .noDataKey }
            guard entry.stored.encryptions < Self.hardUsageLimit else { throw .keyUsageExhausted(s.current) }
            s.entries[s.current]!.stored.encryptions += 1
            return (s.current, key)
        }
    }

    private func decryptionKey(_ version: UInt32) throws(SealingError) -> SecretBytes {
        try state.withLock { (s) throws(SealingError) -> SecretBytes in
            guard let entry = s.entries[version] else { throw .unknownKeyVersion(version) }
            guard let key = entry.key else { throw .retiredKeyVersion(version) }
            return key
        }
    }
}
