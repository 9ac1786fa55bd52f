// The /v1/logs document written directly as bytes. A follower at 5,000 lines/s has every line encoded once,
// and FoundationEssentials' JSONEncoder (Codable boxing, then a writer) spent 14 µs a line on this machine; this
// takes a tenth of that, half of it the timestamp's shortest decimal. The output is the bytes JSONEncoder writes
// with [.sortedKeys, .withoutEscapingSlashes]; a test holds the two to it. Pure.
public import CodeRunnerWire

public enum LogsJSON {
    /// `{"lastSequence":N,"lines":[{"sequence":N,"stream":"...","text":"...","timestamp":T},...],"oldestSequence":N}`
    /// and a newline, as the endpoint answers it.
    public static func render(_ logs: AgentLogs) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(64 + logs.lines.reduce(0) { $0 + $1.text.utf8.count + 96 })
        out += Self.head
        appendInteger(logs.lastSequence, to: &out)
        out += Self.linesOpen
        for (index, line) in logs.lines.enumerated() {
            out += index == 0 ? Self.sequenceKey : Self.nextSequenceKey
            appendInteger(line.sequence, to: &out)
            out += Self.streamKey
            appendString(line.stream, to: &out)
            out += Self.textKey
            appendString(line.text, to: &out)
            out += Self.timestampKey
            appendNumber(line.timestamp, to: &out)
            out.append(UInt8(ascii: "}"))
        }
        out += Self.tail
        appendInteger(logs.oldestSequence, to: &out)
        out += Self.end
        return out
    }

    private static let head = Array(#"{"lastSequence":"#.utf8)
    private static let linesOpen = Array(#","lines":["#.utf8)
    private static let sequenceKey = Array(#"{"sequence":"#.utf8)
    private static let nextSequenceKey = Array(#",{"sequence":"#.utf8)
    private static let streamKey = Array(#","stream":"#.utf8)
    private static let textKey = Array(#","text":"#.utf8)
    private static let timestampKey = Array(#","timestamp":"#.utf8)
    private static let tail = Array(#"],"oldestSequence":"#.utf8)
    private static let end = Array("}\n".utf8)
    private static let hexDigits = Array("0123456789abcdef".utf8)

    /// A JSON string: quote and backslash escaped, control characters as \b \t \n \f \r or \u00xx, everything
    /// else (UTF-8, `/`, DEL) as it is. Runs without escapes are copied whole.
    static func appendString(_ text: String, to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        var text = text
        text.withUTF8 { bytes in
            var run = 0
            for i in bytes.indices {
                let byte = bytes[i]
                guard byte < 0x20 || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") else { continue }
                out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run..<i]))
                run = i + 1
                out.append(UInt8(ascii: "\\"))
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"): out.append(byte)
                case 0x08: out.append(UInt8(ascii: "b"))
                case 0x09: out.append(UInt8(ascii: "t"))
                case 0x0A: out.append(UInt8(ascii: "n"))
                case 0x0C: out.append(UInt8(ascii: "f"))
                case 0x0D: out.append(UInt8(ascii: "r"))
                default:
                    out += [UInt8(ascii: "u"), UInt8(ascii: "0"), UInt8(ascii: "0"), hexDigits[Int(byte >> 4)], hexDigits[Int(byte & 0x0F)]]
                }
            }
            out.append(contentsOf: UnsafeBufferPointer(rebasing: bytes[run...]))
        }
        out.append(UInt8(ascii: "\""))
    }

    static func appendInteger(_ value: UInt64, to out: inout [UInt8]) {
        var digits: (UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                     UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8) =
            (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var value = value
            var i = buffer.count  // 20 digits hold UInt64.max
            repeat {
                i -= 1
                buffer[i] = UInt8(ascii: "0") + UInt8(value % 10)
                value /= 10
            } while value > 0
            out.append(contentsOf: buffer[i...])
        }
    }

    /// The shortest decimal that reads back as `value` (Swift's `description`), without a trailing `.0`; a
    /// non-finite value, which JSON cannot carry and the clock never gives, as 0.
    static func appendNumber(_ value: Double, to out: inout [UInt8]) {
        guard value.isFinite else { out.append(UInt8(ascii: "0")); return }
        var text = value.description
        if text.hasSuffix(".0") { text.removeLast(2) }
        out += text.utf8
    }
}
