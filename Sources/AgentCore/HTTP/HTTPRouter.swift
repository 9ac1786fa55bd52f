// The agent's HTTP endpoints as a function from request to response, apart from the socket code so
// it reads top to bottom. Errors map to a status and a JSON body here, once.
import CodeRunnerWire
import FoundationEssentials

/// What the router needs from a request.
public struct HTTPRequestHead: Sendable, Equatable {
    public var method: String
    /// The path without the query.
    public var path: String
    /// Decoded query arguments.
    public var query: [String: String]
    public var authorization: String?
    public var contentLength: Int?
    /// `HTTP/1.1` or `HTTP/1.0`.
    public var version: String
    public var host: String?

    public init(method: String, path: String, query: [String: String] = [:], authorization: String? = nil,
                contentLength: Int? = nil, version: String = "HTTP/1.1", host: String? = "localhost") {
        self.method = method; self.path = path; self.query = query
        self.authorization = authorization; self.contentLength = contentLength
        self.version = version; self.host = host
    }
}

public struct HTTPResponse: Sendable, Equatable {
    public var status: Int
    public var contentType: String
    public var headers: [String: String]
    public var body: [UInt8]

    public init(status: Int, contentType: String, headers: [String: String] = [:], body: [UInt8]) {
        self.status = status; self.contentType = contentType; self.headers = headers; self.body = body
    }

    public var bodyText: String { String(decoding: body, as: UTF8.self) }
}

/// An optional bearer token, compared in constant time.
public struct BearerToken: Sendable, Equatable {
    private let secret: [UInt8]

    /// The token is the file's content without surrounding whitespace (a trailing newline is usual).
    public init?(fileContents: String) {
        let trimmed = fileContents.drop(while: \.isWhitespace).reversed().drop(while: \.isWhitespace).reversed()
        guard !trimmed.isEmpty else { return nil }
        secret = Array(String(trimmed).utf8)
    }

    /// Whether an Authorization header carries this token. The time taken does not depend on where
    /// the bytes differ, nor on the secret's length beyond the presented one's.
    public func accepts(authorization: String?) -> Bool {
        guard let authorization else { return false }
        let scheme = "bearer "
        let header = Array(authorization.utf8)
        guard header.count > scheme.utf8.count,
              String(decoding: header.prefix(scheme.utf8.count), as: UTF8.self).lowercased() == scheme else { return false }
        let presented = header[scheme.utf8.count...]
        var difference = UInt(bitPattern: presented.count ^ secret.count)
        for (i, byte) in presented.enumerated() {
            difference |= UInt(byte ^ secret[i % secret.count])
        }
        return difference == 0
    }
}

/// What the router decided: an answer, or lines of the log, which the server may hold back (`wait=`).
public enum HTTPRoute: Sendable, Equatable {
    case response(HTTPResponse)
    case logs(LogQuery)
}

public struct HTTPRouter: Sendable {
    public static let defaultLogLimit = 100
    public static let maxLogLimit = 1000
    /// The longest `/v1/logs?wait=`: a follower asks again at least this often, so a lost client holds a
    /// connection for no longer.
    public static let maxLogWait = Duration.seconds(60)
    /// No endpoint takes a body; anything larger than this is refused before it is read.
    public static let maxBodyBytes = 1024

    public let observations: AgentObservations
    public let token: BearerToken?

    public init(observations: AgentObservations, token: BearerToken?) {
        self.observations = observations
        self.token = token
    }

    static let routes = ["/metrics", "/v1/status", "/v1/logs", "/healthz"]

    /// The answer now: a `/v1/logs` request is answered with the lines held at this instant, whatever its `wait`.
    public func respond(to request: HTTPRequestHead) -> HTTPResponse {
        switch route(request) {
        case .response(let response): response
        case .logs(let query): Self.json(observations.logs(query))
        }
    }

    public func route(_ request: HTTPRequestHead) -> HTTPRoute {
        if let refusal = validate(request) { return .response(refusal) }
        switch request.path {
        case "/metrics":
            return .response(HTTPResponse(status: 200, contentType: PrometheusText.contentType, body: Array(observations.metricsText().utf8)))
        case "/v1/status":
            return .response(Self.json(observations.status()))
        case "/v1/logs":
            switch Self.logQuery(request.query) {
            case .success(let query): return .logs(query)
            case .failure(let error): return .response(Self.error(400, "bad_request", error.message))
            }
        default:
            return .response(Self.json(["status": "ok"]))
        }
    }

    /// Why a `/v1/logs` query was refused, in words for the client.
    public struct LogQueryError: Error, Equatable {
        public var message: String
    }

    /// `after`/`limit` (as before), or `tail`, and `wait`.
    public static func logQuery(_ query: [String: String]) -> Result<LogQuery, LogQueryError> {
        func fail(_ message: String) -> Result<LogQuery, LogQueryError> { .failure(LogQueryError(message: message)) }
        var wait = Duration.zero
        if let text = query["wait"] {
            guard let value = parseWait(text) else {
                return fail("wait must be a duration such as 500ms, 30s or 2.5s (plain numbers are seconds), got '\(text)'")
            }
            guard value <= maxLogWait else { return fail("wait must be at most 60s, got '\(text)'") }
            wait = value
        }
        if let text = query["tail"] {
            if query["after"] != nil { return fail("tail and after cannot be combined: tail=N answers the newest N lines, after=SEQ the lines after SEQ") }
            if query["limit"] != nil { return fail("tail and limit cannot be combined: tail=N answers at most N lines") }
            guard let count = Int(text), (1...maxLogLimit).contains(count) else {
                return fail("tail must be between 1 and \(maxLogLimit), got '\(text)'")
            }
            return .success(LogQuery(start: .tail(count), limit: count, wait: wait))
        }
        var after: UInt64 = 0
        if let text = query["after"] {
            guard let value = UInt64(text) else { return fail("after must be a sequence number (0 or more), got '\(text)'") }
            after = value
        }
        var limit = defaultLogLimit
        if let text = query["limit"] {
            guard let value = Int(text), (1...maxLogLimit).contains(value) else {
                return fail("limit must be between 1 and \(maxLogLimit), got '\(text)'")
            }
            limit = value
        }
        return .success(LogQuery(start: .after(after), limit: limit, wait: wait))
    }

    /// `500ms`, `30s`, `2.5s` or `30` (seconds): digits with at most one decimal point, then `ms`, `s` or nothing.
    /// Nil for anything else (negative numbers, exponents, other units); nine characters at most keep the
    /// nanoseconds within Int64.
    public static func parseWait(_ text: String) -> Duration? {
        var number = Substring(text)
        var nanosecondsPerUnit: Double = 1e9
        if number.hasSuffix("ms") {
            number = number.dropLast(2)
            nanosecondsPerUnit = 1e6
        } else if number.hasSuffix("s") {
            number = number.dropLast()
        }
        guard !number.isEmpty, number.count <= 9, number.first != ".", number.last != ".",
              number.allSatisfy({ $0.isASCII && ($0.isNumber || $0 == ".") }), number.filter({ $0 == "." }).count <= 1,
              let value = Double(number) else { return nil }
        return .nanoseconds(Int64((value * nanosecondsPerUnit).rounded()))
    }

    /// The error for a request that no endpoint takes, or nil.
    private func validate(_ request: HTTPRequestHead) -> HTTPResponse? {
        // RFC 9112 3.2: a server must answer 400 to an HTTP/1.1 request without Host (libmicrohttpd lets it through).
        if request.version == "HTTP/1.1" && request.host == nil {
            return Self.error(400, "bad_request", "HTTP/1.1 requests need a Host header")
        }
        guard Self.routes.contains(request.path) else {
            return Self.error(404, "not_found", "no such endpoint: \(request.path); try /metrics, /v1/status, /v1/logs or /healthz")
        }
        guard request.method == "GET" || request.method == "HEAD" else {
            var response = Self.error(405, "method_not_allowed", "\(request.path) accepts GET and HEAD, not \(request.method)")
            response.headers["Allow"] = "GET, HEAD"
            return response
        }
        if let length = request.contentLength, length > Self.maxBodyBytes {
            return Self.error(413, "payload_too_large", "request bodies are limited to \(Self.maxBodyBytes) bytes; these endpoints take none")
        }
        // /healthz stays open so a liveness probe needs no secret; everything else shows app data.
        if request.path != "/healthz", let token, !token.accepts(authorization: request.authorization) {
            var response = Self.error(401, "unauthorized",
                                      request.authorization == nil ? "missing bearer token: send 'Authorization: Bearer <token>'" : "wrong bearer token")
            response.headers["WWW-Authenticate"] = "Bearer realm=\"coderunner-agent\""
            return response
        }
        return nil
    }

    struct ErrorBody: Encodable {
        struct Detail: Encodable { var code: String; var message: String }
        var error: Detail
    }

    static let jsonType = "application/json"

    static func error(_ status: Int, _ code: String, _ message: String) -> HTTPResponse {
        json(ErrorBody(error: .init(code: code, message: message)), status: status)
    }

    static func json(_ value: some Encodable, status: Int = 200) -> HTTPResponse {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        do {
            var body = try encoder.encode(value)
            body.append(0x0A)
            return HTTPResponse(status: status, contentType: jsonType, body: Array(body))
        } catch {
            // Only non-finite numbers fail to encode; the sampler never produces them.
            return HTTPResponse(status: 500, contentType: jsonType,
                                body: Array("{\"error\":{\"code\":\"internal\",\"message\":\"could not encode the response\"}}\n".utf8))
        }
    }
}
