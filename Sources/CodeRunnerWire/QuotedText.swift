// A quoted string as JSON (RFC 8259) and TOML's basic strings write it: `"` and `\` escaped, \n \r \t by name, the
// other control characters as \u00XX. One writer for the agent's config files and the CLI's JSON and config.toml.
public enum QuotedText {
    /// `escapingDelete`: also DEL (0x7F), which TOML forbids raw in a basic string and JSON allows.
    public static func append(_ s: String, to out: inout String, escapingDelete: Bool = false) {
        out += "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case let c where c.value < 0x20 || (escapingDelete && c.value == 0x7F):
                let hex = String(c.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        out += "\""
    }

    public static func quoted(_ s: String, escapingDelete: Bool = false) -> String {
        var out = ""
        append(s, to: &out, escapingDelete: escapingDelete)
        return out
    }
}
