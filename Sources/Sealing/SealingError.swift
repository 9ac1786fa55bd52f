/// Everything that can go wrong sealing or opening. Descriptions are safe to log: they never hold key bytes
/// or plaintext.
public enum SealingError: Error, Equatable, CustomStringConvertible, Sendable {
    /// A key (master or data) that is not exactly 32 bytes.
    case invalidKeyLength
    /// A nonce that is not 12 bytes (96 bits, the only size this module accepts).
    case invalidNonceLength(Int)
    /// A GCM tag that is not 16 bytes.
    case invalidTagLength(Int)
    /// The sealed bytes cannot be parsed (too short, empty, wrong size for a wrapped key, ...).
    case malformedCiphertext(String)
    /// The first byte names a format this build does not read.
    case unsupportedFormat(UInt8)
    /// The ciphertext names a key version the keyring does not hold.
    case unknownKeyVersion(UInt32)
    /// The ciphertext names a key version that was retired.
    case retiredKeyVersion(UInt32)
    /// GCM tag verification failed: tampered bytes, wrong AAD (moved to another row) or wrong key.
    case authenticationFailed
    /// A stored data key did not unwrap: the master key is not the one that wrapped it.
    case wrongMasterKey(version: UInt32)
    /// The keyring holds no usable data key yet.
    case noDataKey
    /// The current version is the one encrypting; retiring it would leave nothing to seal with.
    case cannotRetireCurrentVersion(UInt32)
    /// Two stored keys claim the same version.
    case duplicateKeyVersion(UInt32)
    /// The current key reached the NIST SP 800-38D limit for random nonces; sealing refuses until a rotation.
    case keyUsageExhausted(UInt32)
    /// A rotation threshold of zero or above the hard limit.
    case invalidRotationThreshold(UInt64)
    /// Text that is not valid base64.
    case invalidBase64
    /// OpenSSL reported an error we did not expect (out of memory, a broken provider).
    case openssl(String)

    public var description: String {
        switch self {
        case .invalidKeyLength:
            return "an AES-256 key must be exactly 32 bytes (256 bits)"
        case .invalidNonceLength(let n):
            return "an AES-GCM nonce must be 12 bytes (96 bits); got \(n)"
        case .invalidTagLength(let n):
            return "an AES-GCM tag must be 16 bytes (128 bits); got \(n)"
        case .malformedCiphertext(let detail):
            return "the sealed value is malformed: \(detail)"
        case .unsupportedFormat(let v):
            return "unsupported ciphertext format version \(v) (this build reads version \(SealedHeader.formatVersion)): "
                + "the value is not a CodeRunner ciphertext or was written by a newer release"
        case .unknownKeyVersion(let v):
            return "key version \(v) is not in the keyring: the data-key table is missing rows, "
                + "or the value comes from another installation"
        case .retiredKeyVersion(let v):
            return "key version \(v) is retired: values sealed under it no longer open; rewrap data before retiring a version"
        case .authenticationFailed:
            return "ciphertext was tampered with or the key is wrong (or it was copied from another row, so its AAD does not match)"
        case .wrongMasterKey(let v):
            return "data key version \(v) cannot be unwrapped: the master key is not the one that wrapped it "
                + "(check --master-key-file or CODERUNNER_MASTER_KEY), or the stored key was altered"
        case .noDataKey:
            return "the keyring has no data key yet: add a key version (rotate) before sealing"
        case .cannotRetireCurrentVersion(let v):
            return "key version \(v) is the current encryption key and cannot be retired: rotate first, rewrap, then retire it"
        case .duplicateKeyVersion(let v):
            return "key version \(v) appears more than once in the stored keys"
        case .keyUsageExhausted(let v):
            return "key version \(v) reached the 2^32-encryption limit of NIST SP 800-38D for random nonces: rotate the keyring"
        case .invalidRotationThreshold(let n):
            return "rotation threshold \(n) is out of range: it must be between 1 and \(Keyring.hardUsageLimit)"
        case .invalidBase64:
            return "the value is not valid base64"
        case .openssl(let message):
            return "OpenSSL failed: \(message)"
        }
    }
}
