// A forward-only scanner over the bytes of a /proc or cgroup file. Parsing works on bytes, not
// Strings: the sampler reads dozens of files a second and must not allocate per line.

@usableFromInline
struct ByteScanner {
    @usableFromInline let bytes: UnsafeBufferPointer<UInt8>
    @usableFromInline var index: Int

    @inlinable
    init(_ bytes: UnsafeBufferPointer<UInt8>, from index: Int = 0) {
        self.bytes = bytes
        self.index = index
    }

    @inlinable var atEnd: Bool { index >= bytes.count }

    @inlinable
    mutating func skipBlanks() {
        while index < bytes.count, bytes[index] == 0x20 || bytes[index] == 0x09 { index += 1 }
    }

    @inlinable
    mutating func skipWhitespace() {
        while index < bytes.count, isSpace(bytes[index]) { index += 1 }
    }

    /// Skips one whitespace-separated field.
    @inlinable
    mutating func skipField() {
        skipWhitespace()
        while index < bytes.count, !isSpace(bytes[index]) { index += 1 }
    }

    /// Moves past the next newline (or to the end).
    @inlinable
    mutating func skipLine() {
        while index < bytes.count, bytes[index] != 0x0A { index += 1 }
        if index < bytes.count { index += 1 }
    }

    /// The next whitespace-separated field as a range into `bytes`.
    @inlinable
    mutating func field() -> Range<Int>? {
        skipWhitespace()
        let start = index
        while index < bytes.count, !isSpace(bytes[index]) { index += 1 }
        return start < index ? start..<index : nil
    }

    /// An unsigned decimal integer after optional blanks (not newlines).
    @inlinable
    mutating func unsigned() -> UInt64? {
        skipBlanks()
        var value: UInt64 = 0
        let start = index
        while index < bytes.count, bytes[index] &- 0x30 < 10 {
            let (m, o1) = value.multipliedReportingOverflow(by: 10)
            let (a, o2) = m.addingReportingOverflow(UInt64(bytes[index] &- 0x30))
            if o1 || o2 { return nil }
            value = a
            index += 1
        }
        return index > start ? value : nil
    }

    /// A signed decimal integer after optional whitespace (fields of /proc/PID/stat are space separated).
    @inlinable
    mutating func signed() -> Int64? {
        skipWhitespace()
        var negative = false
        if index < bytes.count, bytes[index] == 0x2D { negative = true; index += 1 }
        guard let magnitude = unsigned(), magnitude <= UInt64(Int64.max) else { return nil }
        return negative ? -Int64(magnitude) : Int64(magnitude)
    }

    /// A hexadecimal integer of at most 16 digits.
    @inlinable
    mutating func hex() -> UInt64? {
        var value: UInt64 = 0
        let start = index
        while index < bytes.count, let digit = hexValue(bytes[index]) {
            guard index - start < 16 else { return nil }
            value = value << 4 | UInt64(digit)
            index += 1
        }
        return index > start ? value : nil
    }

    @inlinable
    mutating func expect(_ byte: UInt8) -> Bool {
        guard index < bytes.count, bytes[index] == byte else { return false }
        index += 1
        return true
    }

    /// Whether the bytes at the cursor start with `prefix` (ASCII).
    @inlinable
    func hasPrefix(_ prefix: StaticString) -> Bool {
        let count = prefix.utf8CodeUnitCount
        guard bytes.count - index >= count else { return false }
        let p = prefix.utf8Start
        for k in 0..<count where bytes[index + k] != p[k] { return false }
        return true
    }

    @inlinable
    func string(_ range: Range<Int>) -> String {
        String(decoding: UnsafeBufferPointer(rebasing: bytes[range]), as: UTF8.self)
    }
}

@inlinable func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x0A || b == 0x09 || b == 0x0D }

@inlinable func hexValue(_ b: UInt8) -> UInt8? {
    switch b {
    case 0x30...0x39: return b - 0x30
    case 0x41...0x46: return b - 0x41 + 10
    case 0x61...0x66: return b - 0x61 + 10
    default: return nil
    }
}

/// Runs `body` on the UTF-8 bytes of `text` (contiguous for native strings, copied otherwise).
@inlinable
func withBytes<R>(_ text: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    if let result = text.utf8.withContiguousStorageIfAvailable(body) { return result }
    return Array(text.utf8).withUnsafeBufferPointer(body)
}

/// Finds the value of a `Key:` line (as in /proc/PID/status, /proc/PID/io, /proc/meminfo) and parses
/// the unsigned number after it. Keys match at line starts only.
@inlinable
func keyedUnsigned(_ bytes: UnsafeBufferPointer<UInt8>, key: StaticString) -> UInt64? {
    var s = ByteScanner(bytes)
    while !s.atEnd {
        if s.hasPrefix(key) {
            s.index += key.utf8CodeUnitCount
            return s.unsigned()
        }
        s.skipLine()
    }
    return nil
}
