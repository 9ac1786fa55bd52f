/// The byte layout of a sealed value (README.md, Encryption at rest):
///
///     offset 0      1 byte    format version (1)
///     offset 1      4 bytes   key version, unsigned big-endian
///     offset 5      12 bytes  nonce (random per encryption)
///     offset 17     n bytes   AES-256-GCM ciphertext (same length as the plaintext)
///     offset 17+n   16 bytes  GCM tag
///
/// The GCM additional data is the 5 header bytes followed by the caller's AAD, so the format and key
/// version are authenticated too (a changed header cannot select another interpretation of the bytes).
struct SealedHeader: Equatable {
    static let formatVersion: UInt8 = 1
    static let headerLength = 5
    static let overhead = headerLength + AESGCM.nonceLength + AESGCM.tagLength  // 33

    var keyVersion: UInt32

    var bytes: [UInt8] {
        [Self.formatVersion, UInt8(keyVersion >> 24), UInt8((keyVersion >> 16) & 0xff),
         UInt8((keyVersion >> 8) & 0xff), UInt8(keyVersion & 0xff)]
    }

    struct Parts {
        var header: SealedHeader
        var nonce: [UInt8]
        var ciphertext: [UInt8]
        var tag: [UInt8]
    }

    static func parse(_ sealed: [UInt8]) throws(SealingError) -> Parts {
        guard let format = sealed.first else { throw .malformedCiphertext("it is empty") }
        guard format == formatVersion else { throw .unsupportedFormat(format) }
        guard sealed.count >= overhead else {
            throw .malformedCiphertext("\(sealed.count) bytes is shorter than the \(overhead)-byte minimum (header, nonce and tag)")
        }
        let version = sealed[1...4].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
        let nonceEnd = headerLength + AESGCM.nonceLength
        let tagStart = sealed.count - AESGCM.tagLength
        return Parts(
            header: SealedHeader(keyVersion: version),
            nonce: Array(sealed[headerLength..<nonceEnd]),
            ciphertext: Array(sealed[nonceEnd..<tagStart]),
            tag: Array(sealed[tagStart...]))
    }

    static func seal(
        key: UnsafeRawBufferPointer, keyVersion: UInt32, plaintext: [UInt8], aad: [UInt8]
    ) throws(SealingError) -> [UInt8] {
        let header = SealedHeader(keyVersion: keyVersion).bytes
        let nonce = SecureRandom.bytes(AESGCM.nonceLength)
        let (ciphertext, tag) = try AESGCM.seal(key: key, nonce: nonce, plaintext: plaintext, aad: header + aad)
        var out = header
        out.reserveCapacity(overhead + plaintext.count)
        out += nonce
        out += ciphertext
        out += tag
        return out
    }

    static func open(key: UnsafeRawBufferPointer, parts: Parts, aad: [UInt8]) throws(SealingError) -> [UInt8] {
        try AESGCM.open(key: key, nonce: parts.nonce, ciphertext: parts.ciphertext, tag: parts.tag, aad: parts.header.bytes + aad)
    }
}
