// A dotenv parser and renderer. Pure: text in, ordered pairs out (or a typed error with a line number).
//
// Accepted syntax, the common subset of docker compose, python-dotenv and Node's dotenv:
//   # comment                 blank lines and comment lines are skipped
//   export KEY=value          an `export ` prefix is ignored
//   KEY=value # note          unquoted: trimmed, ` #` starts a comment
//   KEY='literal $x \n'       single quotes: taken verbatim, no escapes
//   KEY="a\nb \"q\" \\"      double quotes: \n \r \t \" \\ \$ escapes; may span lines
//   KEY=                      empty value

import CodeRunnerWire

public struct DotenvError: Error, Equatable, Sendable, CustomStringConvertible {
    public let line: Int
    public let reason: String
    public var description: String { "line \(line): \(reason)" }
}

public enum Dotenv {
    public static func parse(_ text: String) throws(DotenvError) -> [(key: String, value: String)] {
        // "\r\n" is one Character in Swift, so split on both spellings of a line break.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        var result: [(key: String, value: String)] = []
        var index = 0
        while index < lines.count {
            let lineNumber = index + 1
            var line = lines[index].drop(while: { $0 == " " || $0 == "\t" })
            index += 1
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("export ") || line.hasPrefix("export\t") {
                line = line.dropFirst(7).drop(while: { $0 == " " || $0 == "\t" })
            }
            guard let equals = line.firstIndex(of: "=") else {
                throw DotenvError(line: lineNumber, reason: "expected KEY=VALUE")
            }
            let key = String(line[..<equals]).trimmingSpaces()
            do {
                try Validation.checkKey(key)
            } catch {
                throw DotenvError(line: lineNumber, reason: "invalid key \"\(key.prefix(64))\": must match [A-Za-z_][A-Za-z0-9_]*")
            }
            let rest = line[line.index(after: equals)...].drop(while: { $0 == " " || $0 == "\t" })
            let value: String
            switch rest.first {
            case "'":
                let body = rest.dropFirst()
                guard let close = body.firstIndex(of: "'") else {
                    throw DotenvError(line: lineNumber, reason: "unterminated single-quoted value")
                }
                value = String(body[..<close])
                try checkTrailing(body[body.index(after: close)...], line: lineNumber)
            case "\"":
                // Gather lines until the closing unescaped quote.
                var body = String(rest.dropFirst())
                var decoded = ""
                var closed = false
                var escaping = false
                var currentLine = lineNumber
                var trailing = Substring("")
                scan: while true {
                    var position = body.startIndex
                    while position < body.endIndex {
                        let character = body[position]
                        if escaping {
                            switch character {
                            case "n": decoded.append("\n")
                            case "r": decoded.append("\r")
                            case "t": decoded.append("\t")
                            case "\"", "\\", "$": decoded.append(character)
                            default: decoded.append("\\"); decoded.append(character)
                            }
                            escaping = false
                        } else if character == "\\" {
                            escaping = true
                        } else if character == "\"" {
                            closed = true
                            trailing = body[body.index(after: position)...]
                            break scan
                        } else {
                            decoded.append(character)
                        }
                        position = body.index(after: position)
                    }
                    guard index < lines.count else { break scan }
                    decoded.append("\n")
                    body = String(lines[index])
                    index += 1
                    currentLine += 1
                }
                guard closed else {
                    throw DotenvError(line: lineNumber, reason: "unterminated double-quoted value")
                }
                try checkTrailing(trailing, line: currentLine)
                value = decoded
            default:
                var raw = Substring(rest)
                // An unquoted value ends at a comment introduced by whitespace and `#`.
                if let hash = raw.indices.first(where: { i in
                    raw[i] == "#" && i > raw.startIndex && [" ", "\t"].contains(raw[raw.index(before: i)])
                }) {
                    raw = raw[..<hash]
                }
                value = String(raw).trimmingSpaces()
            }
            guard !value.utf8.contains(0) else {
                throw DotenvError(line: lineNumber, reason: "value holds a NUL byte")
            }
            result.append((key: key, value: value))
        }
        return result
    }

    /// Renders pairs so that `parse` gives them back unchanged: every value double-quoted and escaped.
    public static func render(_ pairs: [(key: String, value: String)]) -> String {
        var out = ""
        for (key, value) in pairs { DotenvText.append(key: key, value: value, to: &out) }
        return out
    }

    private static func checkTrailing(_ rest: Substring, line: Int) throws(DotenvError) {
        let trimmed = rest.drop(while: { $0 == " " || $0 == "\t" })
        guard trimmed.isEmpty || trimmed.hasPrefix("#") else {
            throw DotenvError(line: line, reason: "unexpected text after the closing quote")
        }
    }
}

extension String {
    fileprivate func trimmingSpaces() -> String {
        var slice = Substring(self)
        while let first = slice.first, first == " " || first == "\t" { slice = slice.dropFirst() }
        while let last = slice.last, last == " " || last == "\t" { slice = slice.dropLast() }
        return String(slice)
    }
}
