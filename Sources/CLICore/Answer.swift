// The controller's envelope ({"success", "data", "error", "message", "timestamp"}) read by the CLI, and the exit
// codes its failures map to (docs/cli.md, the man page): 1 error, 2 usage, 3 not found, 4 unauthorised, 5 conflict.

public enum CLIExit: Int32, Sendable, CaseIterable {
    case success = 0
    case error = 1
    case usage = 2
    case notFound = 3
    case unauthorized = 4
    case conflict = 5

    /// The exit status for an HTTP status the API answered with.
    public static func forHTTPStatus(_ status: Int) -> CLIExit {
        switch status {
        case 200..<300: .success
        case 401, 403: .unauthorized
        case 404: .notFound
        case 409: .conflict
        default: .error
        }
    }
}

/// A failure the CLI reports on stderr and exits with.
public struct CLIError: Error, Equatable, CustomStringConvertible, Sendable {
    public var status: CLIExit
    public var message: String

    public init(_ status: CLIExit, _ message: String) {
        self.status = status
        self.message = message
    }

    public var description: String { message }
}

/// One answer of the API: its `data` as parsed and as written.
public struct APIAnswer: Sendable {
    public var status: Int
    public var data: JSON
    /// The `data` member's bytes exactly as the server wrote them ("null" when there was none).
    public var rawData: String
    public var message: String?

    /// Reads an answer. A non-2xx status or `success: false` is a CLIError carrying the API's reason.
    public static func decode(status: Int, body: [UInt8]) throws(CLIError) -> APIAnswer {
        let members: [(key: String, range: Range<Int>, value: JSON)]
        do {
            members = try JSONParser.topLevelMembers(body)
        } catch {
            let text = String(decoding: body.prefix(200), as: UTF8.self)
            let exit = CLIExit.forHTTPStatus(status)
            throw CLIError(exit == .success ? .error : exit,
                           "unexpected answer (HTTP \(status)): \(text.isEmpty ? "empty body" : text)")
        }
        func member(_ key: String) -> (range: Range<Int>, value: JSON)? {
            members.first { $0.key == key }.map { ($0.range, $0.value) }
        }
        let success = member("success")?.value.bool ?? false
        guard (200..<300).contains(status), success else {
            let reason = member("error")?.value.string ?? member("message")?.value.string ?? "HTTP \(status)"
            let exit = CLIExit.forHTTPStatus(status)
            throw CLIError(exit == .success ? .error : exit, reason)
        }
        let data = member("data")
        return APIAnswer(status: status, data: data?.value ?? .null,
                         rawData: data.map { String(decoding: body[$0.range], as: UTF8.self) } ?? "null",
                         message: member("message")?.value.string)
    }
}
