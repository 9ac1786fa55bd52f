// A posted HTML form (application/x-www-form-urlencoded), read at the edge into named strings.
import Foundation

struct FormData: Sendable, Equatable {
    private(set) var fields: [String: String] = [:]

    init(_ fields: [String: String] = [:]) {
        self.fields = fields
    }

    /// Parses `a=1&b=two+words`; a repeated name keeps its first value (no form here repeats one).
    init(urlEncoded text: String) {
        for pair in text.split(separator: "&", omittingEmptySubsequences: true) {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            guard let name = Self.decode(parts[0]), !name.isEmpty else { continue }
            let value = parts.count > 1 ? Self.decode(parts[1]) ?? "" : ""
            if fields[name] == nil { fields[name] = value }
        }
    }

    subscript(_ name: String) -> String? { fields[name] }

    /// The field, or nil when it is missing or empty (an optional input left blank).
    func nonEmpty(_ name: String) -> String? {
        guard let value = fields[name], !value.isEmpty else { return nil }
        return value
    }

    /// A checkbox: present when ticked.
    func checked(_ name: String) -> Bool { fields[name] != nil }

    private static func decode(_ text: Substring) -> String? {
        String(text).replacingOccurrences(of: "+", with: " ").removingPercentEncoding
    }
}
