import COpenSSL

/// Raw AES-256-GCM through EVP (EVP_aes_256_gcm, 96-bit IV, 128-bit tag). Verified against NIST vectors.
///
/// Stateless: each call builds and frees its own EVP_CIPHER_CTX, so calls are safe from any thread.
/// Callers choose the nonce; the Keyring always draws a fresh random one.
public enum AESGCM {
    public static let keyLength = 32
    public static let nonceLength = 12
    public static let tagLength = 16

    public static func seal(
        key: [UInt8], nonce: [UInt8], plaintext: [UInt8], aad: [UInt8]
    ) throws(SealingError) -> (ciphertext: [UInt8], tag: [UInt8]) {
        try withRawBytes(key) { (k) throws(SealingError) in
            try seal(key: k, nonce: nonce, plaintext: plaintext, aad: aad)
        }
    }

    public static func open(
        key: [UInt8], nonce: [UInt8], ciphertext: [UInt8], tag: [UInt8], aad: [UInt8]
    ) throws(SealingError) -> [UInt8] {
        try withRawBytes(key) { (k) throws(SealingError) in
            try open(key: k, nonce: nonce, ciphertext: ciphertext, tag: tag, aad: aad)
        }
    }

    // MARK: - EVP plumbing (key passed as a raw buffer so SecretBytes never copies into an Array)

    /// `anyNonceLength` exists only so tests can run the GCM spec's cases 17 and 18 (64- and 480-bit IVs);
    /// everything else uses 96-bit nonces, the only length for which random nonces are safe up to 2^32 uses.
    static func seal(
        key: UnsafeRawBufferPointer, nonce: [UInt8], plaintext: [UInt8], aad: [UInt8], anyNonceLength: Bool = false
    ) throws(SealingError) -> (ciphertext: [UInt8], tag: [UInt8]) {
        guard key.count == keyLength else { throw .invalidKeyLength }
        guard nonce.count == nonceLength || (anyNonceLength && !nonce.isEmpty) else { throw .invalidNonceLength(nonce.count) }
        let ctx = try Context()
        try check(EVP_EncryptInit_ex(ctx.pointer, EVP_aes_256_gcm(), nil, nil, nil), "EVP_EncryptInit_ex")
        try check(EVP_CIPHER_CTX_ctrl(ctx.pointer, EVP_CTRL_GCM_SET_IVLEN, Int32(nonce.count), nil), "set IV length")
        try nonce.withUnsafeBufferPointer { (n) throws(SealingError) in
            try check(
                EVP_EncryptInit_ex(ctx.pointer, nil, nil, key.assumingMemoryBound(to: UInt8.self).baseAddress, n.baseAddress),
                "EVP_EncryptInit_ex(key, iv)")
        }
        try feedAAD(ctx, aad, EVP_EncryptUpdate)
        var ciphertext = [UInt8](repeating: 0, count: plaintext.count)
        try transform(ctx, plaintext, into: &ciphertext, EVP_EncryptUpdate)
        var tail = [UInt8](repeating: 0, count: 16)  // GCM is a stream mode: Final writes nothing.
        var tailLength: Int32 = 0
        try check(EVP_EncryptFinal_ex(ctx.pointer, &tail, &tailLength), "EVP_EncryptFinal_ex")
        var tag = [UInt8](repeating: 0, count: tagLength)
        try check(EVP_CIPHER_CTX_ctrl(ctx.pointer, EVP_CTRL_GCM_GET_TAG, Int32(tagLength), &tag), "get tag")
        return (ciphertext, tag)
    }

    static func open(
        key: UnsafeRawBufferPointer, nonce: [UInt8], ciphertext: [UInt8], tag: [UInt8], aad: [UInt8], anyNonceLength: Bool = false
    ) throws(SealingError) -> [UInt8] {
        guard key.count == keyLength else { throw .invalidKeyLength }
        guard nonce.count == nonceLength || (anyNonceLength && !nonce.isEmpty) else { throw .invalidNonceLength(nonce.count) }
        guard tag.count == tagLength else { throw .invalidTagLength(tag.count) }
        let ctx = try Context()
        try check(EVP_DecryptInit_ex(ctx.pointer, EVP_aes_256_gcm(), nil, nil, nil), "EVP_DecryptInit_ex")
        try check(EVP_CIPHER_CTX_ctrl(ctx.pointer, EVP_CTRL_GCM_SET_IVLEN, Int32(nonce.count), nil), "set IV length")
        try nonce.withUnsafeBufferPointer { (n) throws(SealingError) in
            try check(
                EVP_DecryptInit_ex(ctx.pointer, nil, nil, key.assumingMemoryBound(to: UInt8.self).baseAddress, n.baseAddress),
                "EVP_DecryptInit_ex(key, iv)")
        }
        try feedAAD(ctx, aad, EVP_DecryptUpdate)
        var plaintext = [UInt8](repeating: 0, count: ciphertext.count)
        try transform(ctx, ciphertext, into: &plaintext, EVP_DecryptUpdate)
        var expected = tag
        try check(EVP_CIPHER_CTX_ctrl(ctx.pointer, EVP_CTRL_GCM_SET_TAG, Int32(tagLength), &expected), "set tag")
        var tail = [UInt8](repeating: 0, count: 16)
        var tailLength: Int32 = 0
        // DecryptFinal is where GCM compares tags; failure is authentication, not an OpenSSL fault.
        guard EVP_DecryptFinal_ex(ctx.pointer, &tail, &tailLength) == 1 else {
            ERR_clear_error()
            wipe(&plaintext)  // never hand out unauthenticated plaintext, not even in memory we drop
            throw .authenticationFailed
        }
        return plaintext
    }

    private typealias Update = (
        OpaquePointer?, UnsafeMutablePointer<UInt8>?, UnsafeMutablePointer<Int32>?, UnsafePointer<UInt8>?, Int32
    ) -> Int32

    /// EVP lengths are Int32: feed large inputs in chunks.
    private static let chunk = 1 << 30

    private static func feedAAD(_ ctx: Context, _ aad: [UInt8], _ update: Update) throws(SealingError) {
        try aad.withUnsafeBufferPointer { (a) throws(SealingError) in
            var offset = 0
            while offset < a.count {
                let n = min(chunk, a.count - offset)
                var written: Int32 = 0
                try check(update(ctx.pointer, nil, &written, a.baseAddress! + offset, Int32(n)), "AAD update")
                offset += n
            }
        }
    }

    private static func transform(
        _ ctx: Context, _ input: [UInt8], into output: inout [UInt8], _ update: Update
    ) throws(SealingError) {
        try input.withUnsafeBufferPointer { (i) throws(SealingError) in
            try output.withUnsafeMutableBufferPointer { (o) throws(SealingError) in
                var offset = 0
                while offset < i.count {
                    let n = min(chunk, i.count - offset)
                    var written: Int32 = 0
                    try check(update(ctx.pointer, o.baseAddress! + offset, &written, i.baseAddress! + offset, Int32(n)), "update")
                    guard Int(written) == n else { throw .openssl("GCM update wrote \(written) of \(n) bytes") }
                    offset += n
                }
            }
        }
    }

    /// Owns one EVP_CIPHER_CTX; freeing it also cleanses the expanded key schedule.
    private final class Context {
        let pointer: OpaquePointer
        init() throws(SealingError) {
            guard let p = EVP_CIPHER_CTX_new() else { throw .openssl("EVP_CIPHER_CTX_new: \(OpenSSLError.drain())") }
            pointer = p
        }
        deinit { EVP_CIPHER_CTX_free(pointer) }
    }

    private static func check(_ rc: Int32, _ what: String) throws(SealingError) {
        guard rc == 1 else { throw .openssl("\(what): \(OpenSSLError.drain())") }
    }
}

enum OpenSSLError {
    /// Empties this thread's OpenSSL error queue, returning the oldest message.
    static func drain() -> String {
        let code = ERR_get_error()
        defer { ERR_clear_error() }
        guard code != 0 else { return "unknown error" }
        var buffer = [CChar](repeating: 0, count: 256)
        ERR_error_string_n(code, &buffer, buffer.count)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// `Array.withUnsafeBytes` only rethrows untyped errors; this keeps `SealingError` typed through it.
func withRawBytes<R>(
    _ bytes: [UInt8], _ body: (UnsafeRawBufferPointer) throws(SealingError) -> R
) throws(SealingError) -> R {
    let result: Result<R, SealingError> = bytes.withUnsafeBytes { p in
        Result { () throws(SealingError) -> R in try body(p) }
    }
    return try result.get()
}

/// Overwrites bytes with zeros in a way the optimiser may not remove.
func wipe(_ bytes: inout [UInt8]) {
    bytes.withUnsafeMutableBytes { b in
        if let base = b.baseAddress { OPENSSL_cleanse(base, b.count) }
    }
}

/// Bytes from OpenSSL's CSPRNG (RAND_bytes, seeded from getrandom).
public enum SecureRandom {
    /// Traps only if the CSPRNG fails: continuing with weak nonces or keys would be worse than stopping.
    public static func bytes(_ count: Int) -> [UInt8] {
        precondition(count >= 0 && count <= Int(Int32.max), "SecureRandom.bytes: count out of range")
        var out = [UInt8](repeating: 0, count: count)
        guard count > 0 else { return out }
        let rc = out.withUnsafeMutableBufferPointer { RAND_bytes($0.baseAddress, Int32(count)) }
        guard rc == 1 else { fatalError("RAND_bytes failed: \(OpenSSLError.drain())") }
        return out
    }
}

/// SHA-256, HMAC-SHA-256 and constant-time comparison (the controller hashes tokens and chains audit rows).
public enum Digest {
    public static func sha256(_ data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        data.withUnsafeBufferPointer { d in
            // SHA256() with a NULL pointer and length 0 is defined; a non-NULL dummy is clearer to sanitizers.
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1) { dummy in
                _ = SHA256(d.baseAddress ?? UnsafePointer(dummy.baseAddress!), d.count, &out)
            }
        }
        return out
    }

    public static func sha256Hex(_ data: [UInt8]) -> String { hex(sha256(data)) }

    public static func hmacSHA256(key: [UInt8], data: [UInt8]) -> [UInt8] {
        key.withUnsafeBytes { k in hmacSHA256(key: k, data: data) }
    }

    static func hmacSHA256(key: UnsafeRawBufferPointer, data: [UInt8]) -> [UInt8] {
        var out = [UInt8](repeating: 0, count: Int(EVP_MAX_MD_SIZE))
        var length: UInt32 = 0
        let ok = withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 1) { dummy -> Bool in
            data.withUnsafeBufferPointer { d in
                HMAC(
                    EVP_sha256(), key.baseAddress ?? UnsafeRawPointer(dummy.baseAddress!), Int32(key.count),
                    d.baseAddress ?? UnsafePointer(dummy.baseAddress!), d.count, &out, &length) != nil
            }
        }
        // HMAC-SHA-256 only fails if the process cannot allocate a few hundred bytes.
        guard ok else { fatalError("HMAC-SHA-256 failed: \(OpenSSLError.drain())") }
        return Array(out.prefix(Int(length)))
    }

    /// Compares in time that depends only on the lengths (CRYPTO_memcmp), never on where the bytes differ.
    public static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        guard a.count == b.count else { return false }
        guard !a.isEmpty else { return true }
        return a.withUnsafeBytes { x in
            b.withUnsafeBytes { y in CRYPTO_memcmp(x.baseAddress, y.baseAddress, a.count) == 0 }
        }
    }

    public static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out = [UInt8]()
        out.reserveCapacity(bytes.count * 2)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0f)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
