// The controller's API over CurlHTTP (libcurl): a request, its envelope read into an APIAnswer or a CLIError.
import CLICore
import CurlHTTP

struct API {
    static let timeout = Duration.seconds(30)
    static let maxBytes = 64 << 20

    let server: String
    let token: String?
    let client: CurlHTTPClient

    init(server: String, token: String?) {
        self.server = server
        self.token = token
        client = CurlHTTPClient(configuration: .init(maxConnectionsPerHost: 2))
    }

    func get(_ path: String) async throws(CLIError) -> APIAnswer { try await send("GET", path) }
    func delete(_ path: String) async throws(CLIError) -> APIAnswer { try await send("DELETE", path) }
    func post(_ path: String, _ body: JSON? = nil) async throws(CLIError) -> APIAnswer {
        try await send("POST", path, body: body.map { Array($0.serialized().utf8) } ?? [], contentType: "application/json")
    }
    func put(_ path: String, _ body: JSON) async throws(CLIError) -> APIAnswer {
        try await send("PUT", path, body: Array(body.serialized().utf8), contentType: "application/json")
    }

    func send(_ method: String, _ path: String, body: [UInt8]? = nil, contentType: String? = nil,
              authenticated: Bool = true) async throws(CLIError) -> APIAnswer {
        var headers: [(name: String, value: String)] = [("Accept", "application/json"), ("User-Agent", "coderunner-cli/\(CodeRunner.version)")]
        if authenticated {
            guard let token else {
                throw CLIError(.unauthorized, "not logged in: run coderunner login, or set CODERUNNER_TOKEN")
            }
            headers.append(("Authorization", "Bearer \(token)"))
        }
        if let contentType { headers.append(("Content-Type", contentType)) }
        let request = CurlHTTPRequest(method: method, url: server + "/" + path, headers: headers, body: body)
        let response: CurlHTTPResponse
        do {
            response = try await client.execute(request, timeout: Self.timeout, maxBytes: Self.maxBytes)
        } catch {
            throw CLIError(.error, "\(server): \(error.description)")
        }
        return try APIAnswer.decode(status: response.status, body: response.body)
    }
}
