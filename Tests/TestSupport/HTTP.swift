// Synchronous HTTP against the agents and controllers the tests start on loopback, through curl(1), bounded by
// --max-time. curl, not URLSession: FoundationNetworking's shared session stalled here for good under the
// parallel suites (requests the controller answered at once with curl never completed), failing tests at random.
public import CodeRunnerWire
public import Foundation

public enum HTTP {
    public struct Answer: Sendable {
        public var status: Int
        public var body: Data
        public var text: String { String(decoding: body, as: UTF8.self) }

        /// The controller's envelope around a `T`.
        public func envelope<T: Codable & Sendable>(_ type: T.Type = T.self) throws -> Envelope<T> {
            do {
                return try JSONDecoder().decode(Envelope<T>.self, from: body)
            } catch {
                throw HTTPCallError.undecodable(type: "\(T.self)", status: status, body: text, error: "\(error)")
            }
        }

        /// The envelope's `data`, which must be there.
        public func data<T: Codable & Sendable>(_ type: T.Type = T.self) throws -> T {
            guard let data = try envelope(T.self).data else {
                throw HTTPCallError.undecodable(type: "\(T.self)", status: status, body: text, error: "no data")
            }
            return data
        }
    }

    /// `json` is sent as the request's body. `curlOptions` go to curl before the URL (for https: `--cacert`,
    /// `--resolve`).
    public static func call(_ method: String, _ url: String, token: String? = nil, json: [String: Any]? = nil,
                            timeout: TimeInterval = 30, curlOptions: [String] = []) throws -> Answer {
        var arguments = ["-sS", "-X", method, "--max-time", String(timeout), "-o", "-", "-w", "\n%{http_code}",
                         "-H", "Connection: close"]
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        if json != nil { arguments += ["-H", "Content-Type: application/json", "--data-binary", "@-"] }
        let body = try json.map { try JSONSerialization.data(withJSONObject: $0) }
        let result = try TestSupport.run("/usr/bin/curl", arguments + curlOptions + [url], input: body,
                                         timeout: .milliseconds(Int64(timeout * 1000)) + .seconds(5))
        let raw = result.stdout
        guard result.status == 0, let newline = raw.lastIndex(of: UInt8(ascii: "\n")),
              let code = Int(String(decoding: raw[(newline + 1)...], as: UTF8.self)) else {
            let message = String(decoding: result.stderr, as: UTF8.self)
            throw HTTPCallError.noAnswer("\(method) \(url): no answer (curl status \(result.status.map(String.init) ?? "timeout")): \(message)")
        }
        return Answer(status: code, body: Data(raw[..<newline]))
    }
}

public enum HTTPCallError: Error, CustomStringConvertible {
    case noAnswer(String)
    case undecodable(type: String, status: Int, body: String, error: String)

    public var description: String {
        switch self {
        case .noAnswer(let message): message
        case .undecodable(let type, let status, let body, let error): "answer \(status) is not an envelope of \(type) (\(error)): \(body)"
        }
    }
}
