#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Standard base64 (RFC 4648, with padding) for storing sealed bytes and keys in text columns and files.
public enum Base64 {
    public static func encode(_ bytes: [UInt8]) -> String {
        Data(bytes).base64EncodedString()
    }

    /// Strict decoding; surrounding whitespace (a trailing newline in a key file) is ignored.
    public static func decode(_ text: String) throws(SealingError) -> [UInt8] {
        let trimmed = text.utf8.drop { isSpace($0) }.reversed().drop { isSpace($0) }.reversed()
        guard let data = Data(base64Encoded: Data(trimmed)) else { throw .invalidBase64 }
        return [UInt8](data)
    }

    private static func isSpace(_ c: UInt8) -> Bool { c == 0x20 || c == 0x0a || c == 0x0d || c == 0x09 }
}
