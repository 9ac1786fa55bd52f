// A dotenv value as the controller's export and the agent's config file write it: double-quoted, with `\` `"` and
// `$` escaped and \n \r \t by name, which docker compose, python-dotenv and Node's dotenv read back unchanged (and
// the controller's own Dotenv.parse). One writer for both.
public enum DotenvText {
    /// `KEY="value"` and a newline.
    public static func append(key: String, value: String, to out: inout String) {
        out += key
        out += "=\""
        for character in value {
            switch character {
            case "\\": out += "\\\\"
            case "\"": out += "\\\""
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "$": out += "\\$"
            default: out.append(character)
            }
        }
        out += "\"\n"
    }
}
