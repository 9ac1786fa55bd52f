// A JSON value that keeps its objects' key order, a parser that remembers where each top-level member's text is,
// and a compact writer. The CLI prints the API's `data` byte for byte (`--output json`) and reads a few fields
// for its tables; Foundation's JSONSerialization would reorder keys and pull in all of Foundation at start-up.

import CodeRunnerWire

public enum JSON: Sendable, Equatable {
    case null
    case bool(Bool)
    /// The number's text as the server wrote it: printed back unchanged.
    case number(String)
    case string(String)
    case array([JSON])
    /// Members in document order.
    case object([(String, JSON)])

    public static func == (a: JSON, b: JSON) -> Bool {
        switch (a, b) {
        case (.null, .null): true
        case (.bool(let x), .bool(let y)): x == y
        case (.number(let x), .number(let y)): x == y
        case (.string(let x), .string(let y)): x == y
        case (.array(let x), .array(let y)): x == y
        case (.object(let x), .object(let y)): x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
        default: false
        }
    }

    public subscript(key: String) -> JSON? {
        guard case .object(let members) = self else { return nil }
        return members.first { $0.0 == key }?.1
    }

    /// A dotted path ("limits.cpu") into nested objects.
    public func value(at path: String) -> JSON? {
        var current: JSON? = self
        for part in path.split(separator: ".") { current = current?[String(part)] }
        return current
    }

    public var string: String? { if case .string(let s) = self { s } else { nil } }
    public var array: [JSON]? { if case .array(let a) = self { a } else { nil } }
    public var int: Int? { if case .number(let n) = self { Int(n) ?? Double(n).map { Int($0) } } else { nil } }
    public var bool: Bool? { if case .bool(let b) = self { b } else { nil } }

    /// How a table cell shows the value: text as is, numbers as written, nested values in compact JSON.
    public var cellText: String {
        switch self {
        case .null: ""
        case .bool(let b): b ? "true" : "false"
        case .number(let n): n
        case .string(let s): s
        case .array, .object: serialized()
        }
    }

    /// Compact JSON text.
    public func serialized() -> String {
        var out = ""
        write(to: &out)
        return out
    }

    func write(to out: inout String) {
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .number(let n): out += n
        case .string(let s): JSON.quote(s, into: &out)
        case .array(let items):
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += "," }
                item.write(to: &out)
            }
            out += "]"
        case .object(let members):
            out += "{"
            for (i, (key, value)) in members.enumerated() {
                if i > 0 { out += "," }
                JSON.quote(key, into: &out)
                out += ":"
                value.write(to: &out)
            }
            out += "}"
        }
    }

    static func quote(_ s: String, into out: inout String) { QuotedText.append(s, to: &out) }
}

public struct JSONParseError: Error, Equatable, CustomStringConvertible {
    public var offset: Int
    public var reason: String
    public var description: String { "invalid JSON at byte \(offset): \(reason)" }

    public init(offset: Int, reason: String) {
        self.offset = offset
        self.reason = reason
    }
}

/// A strict RFC 8259 parser over UTF-8 bytes, bounded in depth.
public struct JSONParser {
    public static let maxDepth = 128
    let bytes: [UInt8]
    var index = 0

    public init(_ bytes: [UInt8]) { self.bytes = bytes }

    public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSON {
        var parser = JSONParser(bytes)
        let value = try parser.value(depth: 0)
        parser.skipSpace()
        guard parser.index == bytes.count else { throw parser.fail("trailing characters") }
        return value
    }

    public static func parse(_ text: String) throws(JSONParseError) -> JSON { try parse(Array(text.utf8)) }

    /// The byte range of each member of the top-level object, as written: the envelope's `data` is printed from it.
    public static func topLevelMembers(_ bytes: [UInt8]) throws(JSONParseError) -> [(key: String, range: Range<Int>, value: JSON)] {
        var parser = JSONParser(bytes)
        parser.skipSpace()
        guard parser.peek == UInt8(ascii: "{") else { throw parser.fail("expected an object") }
        parser.index += 1
        var out: [(key: String, range: Range<Int>, value: JSON)] = []
        parser.skipSpace()
        if parser.peek == UInt8(ascii: "}") { return out }
        while true {
            parser.skipSpace()
            let key = try parser.string()
            parser.skipSpace()
            try parser.expect(UInt8(ascii: ":"))
            parser.skipSpace()
            let start = parser.index
            let value = try parser.value(depth: 1)
            out.append((key, start..<parser.index, value))
            parser.skipSpace()
            if parser.peek == UInt8(ascii: ",") { parser.index += 1; continue }
            try parser.expect(UInt8(ascii: "}"))
            break
        }
        parser.skipSpace()
        guard parser.index == bytes.count else { throw parser.fail("trailing characters") }
        return out
    }

    var peek: UInt8? { index < bytes.count ? bytes[index] : nil }

    func fail(_ reason: String) -> JSONParseError { JSONParseError(offset: index, reason: reason) }

    mutating func skipSpace() {
        while let c = peek, c == 0x20 || c == 0x0A || c == 0x0D || c == 0x09 { index += 1 }
    }

    mutating func expect(_ c: UInt8) throws(JSONParseError) {
        guard peek == c else { throw fail("expected '\(Character(Unicode.Scalar(c)))'") }
        index += 1
    }

    mutating func literal(_ word: String, _ value: JSON) throws(JSONParseError) -> JSON {
        let w = Array(word.utf8)
        guard index + w.count <= bytes.count, Array(bytes[index..<index + w.count]) == w else { throw fail("unexpected character") }
        index += w.count
        return value
    }

    mutating func value(depth: Int) throws(JSONParseError) -> JSON {
        guard depth < Self.maxDepth else { throw fail("nested too deeply") }
        skipSpace()
        guard let c = peek else { throw fail("unexpected end") }
        switch c {
        case UInt8(ascii: "{"):
            index += 1
            var members: [(String, JSON)] = []
            skipSpace()
            if peek == UInt8(ascii: "}") { index += 1; return .object(members) }
            while true {
                skipSpace()
                let key = try string()
                skipSpace()
                try expect(UInt8(ascii: ":"))
                members.append((key, try value(depth: depth + 1)))
                skipSpace()
                if peek == UInt8(ascii: ",") { index += 1; continue }
                try expect(UInt8(ascii: "}"))
                return .object(members)
            }
        case UInt8(ascii: "["):
            index += 1
            var items: [JSON] = []
            skipSpace()
            if peek == UInt8(ascii: "]") { index += 1; return .array(items) }
            while true {
                items.append(try value(depth: depth + 1))
                skipSpace()
                if peek == UInt8(ascii: ",") { index += 1; continue }
                try expect(UInt8(ascii: "]"))
                return .array(items)
            }
        case UInt8(ascii: "\""): return .string(try string())
        case UInt8(ascii: "t"): return try literal("true", .bool(true))
        case UInt8(ascii: "f"): return try literal("false", .bool(false))
        case UInt8(ascii: "n"): return try literal("null", .null)
        default: return .number(try number())
        }
    }

    mutating func number() throws(JSONParseError) -> String {
        let start = index
        if peek == UInt8(ascii: "-") { index += 1 }
        func digits(_ p: inout JSONParser) -> Int {
            var n = 0
            while let c = p.peek, c >= 0x30, c <= 0x39 { p.index += 1; n += 1 }
            return n
        }
        guard digits(&self) > 0 else { throw fail("expected a value") }
        if peek == UInt8(ascii: ".") {
            index += 1
            guard digits(&self) > 0 else { throw fail("expected digits after '.'") }
        }
        if peek == UInt8(ascii: "e") || peek == UInt8(ascii: "E") {
            index += 1
            if peek == UInt8(ascii: "+") || peek == UInt8(ascii: "-") { index += 1 }
            guard digits(&self) > 0 else { throw fail("expected exponent digits") }
        }
        return String(decoding: bytes[start..<index], as: UTF8.self)
    }

    mutating func hex4() throws(JSONParseError) -> UInt32 {
        guard index + 4 <= bytes.count else { throw fail("short \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[index]
            let d: UInt32
            switch c {
            case 0x30...0x39: d = UInt32(c - 0x30)
            case 0x41...0x46: d = UInt32(c - 0x41 + 10)
            case 0x61...0x66: d = UInt32(c - 0x61 + 10)
            default: throw fail("bad \\u escape")
            }
            v = v * 16 + d
            index += 1
        }
        return v
    }

    mutating func string() throws(JSONParseError) -> String {
        try expect(UInt8(ascii: "\""))
        var out: [UInt8] = []
        while true {
            guard let c = peek else { throw fail("unterminated string") }
            index += 1
            switch c {
            case UInt8(ascii: "\""): return String(decoding: out, as: UTF8.self)
            case UInt8(ascii: "\\"):
                guard let e = peek else { throw fail("unterminated escape") }
                index += 1
                switch e {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar), peek == UInt8(ascii: "\\"), index + 1 < bytes.count,
                       bytes[index + 1] == UInt8(ascii: "u") {
                        index += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail("bad surrogate pair") }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    }
                    guard let u = Unicode.Scalar(scalar) else { throw fail("bad \\u escape") }
                    out.append(contentsOf: Array(String(Character(u)).utf8))
                default: throw fail("bad escape")
                }
            case 0..<0x20: throw fail("control character in string")
            default: out.append(c)
            }
        }
    }
}
