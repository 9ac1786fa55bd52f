// Text that goes into a URL the agent, the controller's clients or the CLI build by hand (libcurl takes a URL
// string): one encoder, so that every side escapes a key, an instance name or a query value alike.
public enum URLText {
    /// Percent-encodes a path segment or query value: RFC 3986's unreserved characters stay, every other byte of the
    /// UTF-8 becomes %XX.
    public static func percentEncoded(_ text: String) -> String {
        var out = ""
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
                 UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"), UInt8(ascii: "~"):
                out.unicodeScalars.append(Unicode.Scalar(byte))
            default:
                let hex = String(byte, radix: 16, uppercase: true)
                out += "%" + (hex.count == 1 ? "0" + hex : hex)
            }
        }
        return out
    }
}
