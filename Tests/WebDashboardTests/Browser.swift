// A browser stand-in for the dashboard's tests: a real controller (SQLite file, keyring) driven in-process
// through Hummingbird's test client, with a cookie jar and form posts as a browser sends them.
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Logging
import NIOCore
import Synchronization
import Testing
import TestSupport
import WebDashboard

/// A settable clock, for session expiry.
final class TestClock: Sendable {
    private let value = Mutex(Date(timeIntervalSince1970: 1_800_000_000))
    var now: Date { value.withLock { $0 } }
    func advance(_ seconds: TimeInterval) { value.withLock { $0 += seconds } }
}

struct Page: Sendable {
    let status: HTTPResponse.Status
    let headers: HTTPFields
    let body: String

    var location: String? { headers[.location] }
    var setCookies: [String] { headers[values: .setCookie] }

    /// The value of the hidden `_csrf` input, as a browser would send it back.
    var csrf: String? { Self.attribute("value", afterMarker: "name=\"_csrf\" value=\"", in: body) }

    static func attribute(_ name: String, afterMarker marker: String, in text: String) -> String? {
        guard let start = text.range(of: marker) else { return nil }
        let rest = text[start.upperBound...]
        guard let end = rest.firstIndex(of: "\"") else { return nil }
        return String(rest[..<end])
    }
}

/// One browser: its cookies persist across requests, as Set-Cookie and Max-Age say.
final class Browser: Sendable {
    let client: any TestClientProtocol
    private let jar = Mutex<[String: String]>([:])

    init(_ client: any TestClientProtocol) {
        self.client = client
    }

    var cookies: [String: String] { jar.withLock { $0 } }

    func setCookie(_ name: String, _ value: String?) {
        jar.withLock { $0[name] = value }
    }

    @discardableResult
    func get(_ uri: String, headers extra: HTTPFields = [:]) async throws -> Page {
        try await send(.get, uri, body: nil, headers: extra)
    }

    /// Posts a form, url-encoded as a browser does.
    @discardableResult
    func post(_ uri: String, _ fields: [(String, String)], headers extra: HTTPFields = [:]) async throws -> Page {
        let allowed = CharacterSet.alphanumerics.union(CharacterSet(charactersIn: "-._~"))
        let body = fields.map { name, value in
            "\(name)=\(value.addingPercentEncoding(withAllowedCharacters: allowed)!)"
        }.joined(separator: "&")
        var headers = extra
        headers[.contentType] = "application/x-www-form-urlencoded"
        return try await send(.post, uri, body: ByteBuffer(string: body), headers: headers)
    }

    func send(_ method: HTTPRequest.Method, _ uri: String, body: ByteBuffer?, headers extra: HTTPFields) async throws -> Page {
        var headers = extra
        let cookies = jar.withLock { $0 }
        if !cookies.isEmpty, headers[.cookie] == nil {
            headers[.cookie] = cookies.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: "; ")
        }
        let response = try await client.executeRequest(uri: uri, method: method, headers: headers, body: body)
        for header in response.headers[values: .setCookie] {
            let pair = header.split(separator: ";")[0].split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let name = String(pair[0]), value = pair.count > 1 ? String(pair[1]) : ""
            let expired = header.contains("Max-Age=0")
            jar.withLock { $0[name] = expired ? nil : value }
        }
        return Page(status: response.status, headers: response.headers,
                    body: String(buffer: response.body))
    }

    /// Opens the form page (getting its form cookie) and posts it with the page's token.
    @discardableResult
    func submit(_ formPage: String, to action: String, _ fields: [(String, String)]) async throws -> Page {
        let page = try await get(formPage)
        let token = try #require(page.csrf, "no form token on \(formPage)")
        return try await post(action, [("_csrf", token)] + fields)
    }

    @discardableResult
    func register(_ email: String, password: String = "correct horse battery") async throws -> Page {
        try await submit("/register", to: "/register", [("email", email), ("password", password)])
    }

    @discardableResult
    func login(_ email: String, password: String = "correct horse battery") async throws -> Page {
        try await submit("/login", to: "/login", [("email", email), ("password", password)])
    }

    /// Creates a project from the dashboard's form and returns its id (from the card's link).
    func createProject(_ name: String) async throws -> String {
        let dashboard = try await get("/dashboard")
        let created = try await post("/projects", [("_csrf", try #require(dashboard.csrf)), ("name", name)])
        #expect(created.status == .seeOther)
        let after = try await get("/dashboard")
        let marker = "data-testid=\"project-card\" href=\"/projects/"
        let cards = after.body.components(separatedBy: marker).dropFirst()
        let card = try #require(cards.first { $0.contains("<h2>\(name)</h2>") }, "no card for \(name)")
        return String(card.prefix(36))
    }
}

struct Dashboard {
    let directory: URL
    var configuration: ControllerConfiguration
    var web = WebDashboard.Configuration()
    let clock = TestClock()

    init(registration: RegistrationMode? = .open, authRateLimit: TokenBucketLimiter.Policy = .perMinute(100_000)) throws {
        directory = try TestSupport.makeTemporaryDirectory("dashboard")
        // bcrypt's minimum cost keeps the tests fast; the cost itself is Bcrypt's business.
        configuration = ControllerConfiguration(host: "127.0.0.1", port: 0, dataDirectory: directory.path, bcryptCost: 4,
                                                logLevel: .critical)
        configuration.registration = registration
        configuration.authRateLimit = authRateLimit
    }

    /// Runs `body` with a new browser against a controller with the dashboard, as `serve` wires it.
    func run(_ body: @Sendable (Browser, TestClock, ControlPlane, any TestClientProtocol) async throws -> Void) async throws {
        defer { try? FileManager.default.removeItem(at: directory) }
        let clock = self.clock
        let web = self.web
        let (app, controlPlane) = try await buildApplication(
            controlPlane: nil, configuration, dependencies: Dependencies(now: { clock.now }),
            addRoutes: { controlPlane, router in try WebDashboard(controlPlane: controlPlane, configuration: web).addRoutes(to: router) })
        try await app.test(.router) { client in
            try await body(Browser(client), clock, controlPlane, client)
        }
    }

    /// Runs SQL on the database file through the sqlite3 tool: a separate process, as anyone with the file would.
    func sqlite(_ sql: String) throws -> String {
        let result = try TestSupport.run("/usr/bin/sqlite3", ["-cmd", ".timeout 5000", configuration.databasePath, sql],
                                         timeout: .seconds(30))
        return String(decoding: result.stdout + result.stderr, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
    }
}
