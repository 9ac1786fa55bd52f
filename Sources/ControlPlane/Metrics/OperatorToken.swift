// The operator's token for the controller's /metrics and Prometheus's service discovery (--metrics-token-file), as
// the agent's --metrics-token-file guards its /metrics: a file holding the token, compared in constant time.
import Foundation

public struct OperatorToken: Sendable, Equatable {
    private let secret: [UInt8]

    /// The token is the file's content without surrounding whitespace (a trailing newline is usual).
    public init?(fileContents: String) {
        let trimmed = fileContents.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !trimmed.isEmpty else { return nil }
        secret = Array(trimmed.utf8)
    }

    public enum LoadError: Error, Equatable, CustomStringConvertible {
        case unreadable(path: String)
        case empty(path: String)
        public var description: String {
            switch self {
            case .unreadable(let path): "cannot read --metrics-token-file \(path)"
            case .empty(let path): "--metrics-token-file \(path) is empty"
            }
        }
    }

    /// Reads --metrics-token-file.
    public static func load(path: String) throws(LoadError) -> OperatorToken {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw .unreadable(path: path) }
        guard let token = OperatorToken(fileContents: text) else { throw .empty(path: path) }
        return token
    }

    /// Whether an Authorization header carries this token. The time taken does not depend on where the bytes
    /// differ, nor on the secret's length beyond the presented one's.
    public func accepts(authorization: String?) -> Bool {
        guard let authorization else { return false }
        let scheme = Array("bearer ".utf8)
        let header = Array(authorization.utf8)
        guard header.count > scheme.count,
              zip(header.prefix(scheme.count), scheme).allSatisfy({ $0 | 0x20 == $1 | 0x20 }) else { return false }
        let presented = header[scheme.count...]
        var difference = UInt(bitPattern: presented.count ^ secret.count)
        for (i, byte) in presented.enumerated() {
            difference |= UInt(byte ^ secret[i % secret.count])
        }
        return difference == 0
    }
}
