// Tables for people: a header and rows, columns padded to their widest cell (by characters), the header bold
// only when colour is on (a terminal, and NO_COLOR unset: https://no-color.org).

public struct Column: Sendable {
    public var title: String
    /// A dotted path into each row's object.
    public var path: String

    public init(_ title: String, _ path: String) {
        self.title = title
        self.path = path
    }
}

public enum Table {
    /// Whether to colour: only on a terminal, and never when NO_COLOR is set to anything non-empty.
    public static func useColour(isTerminal: Bool, noColor: String?) -> Bool {
        isTerminal && (noColor ?? "").isEmpty
    }

    public static func render(_ rows: [JSON], columns: [Column], colour: Bool) -> String {
        render(header: columns.map(\.title),
               rows: rows.map { row in columns.map { row.value(at: $0.path)?.cellText ?? "" } }, colour: colour)
    }

    /// Each line ends with "\n"; the last column is not padded. Newlines inside a cell are shown as "\n".
    public static func render(header: [String], rows: [[String]], colour: Bool) -> String {
        let clean = rows.map { $0.map { $0.replacingNewlines() } }
        var widths = header.map(\.count)
        for row in clean {
            for (i, cell) in row.enumerated() where i < widths.count { widths[i] = max(widths[i], cell.count) }
        }
        func line(_ cells: [String]) -> String {
            var out = ""
            for (i, cell) in cells.enumerated() {
                if i == cells.count - 1 { out += cell } else { out += cell + String(repeating: " ", count: widths[i] - cell.count + 2) }
            }
            while out.last == " " { out.removeLast() }
            return out
        }
        var out = colour ? "\u{1B}[1m" + line(header) + "\u{1B}[0m\n" : line(header) + "\n"
        for row in clean { out += line(row) + "\n" }
        return out
    }

    /// Key and value pairs, one a line, keys padded ("show" commands).
    public static func details(_ pairs: [(String, String)], colour: Bool) -> String {
        let width = pairs.map(\.0.count).max() ?? 0
        return pairs.map { key, value in
            let k = key + ":" + String(repeating: " ", count: width - key.count + 1)
            return (colour ? "\u{1B}[1m\(k)\u{1B}[0m" : k) + value.replacingNewlines() + "\n"
        }.joined()
    }
}

extension String {
    func replacingNewlines() -> String {
        guard contains(where: { $0 == "\n" || $0 == "\r" }) else { return self }
        return split(separator: "\n", omittingEmptySubsequences: false).joined(separator: "\\n")
            .split(separator: "\r", omittingEmptySubsequences: false).joined(separator: "\\r")
    }
}
