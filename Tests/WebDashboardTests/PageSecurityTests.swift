// Every form's CSRF check, the headers every page carries, the stylesheet's ETag, and ownership on every
// project page: another user's project answers exactly as an unknown one does.
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import Testing
@testable import WebDashboard

@Suite struct PageSecurityTests {
    static let policy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

    @Test func everyPageCarriesTheSecurityHeadersAndNoInlineScriptOrStyle() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            var pages = [try await browser.get("/login"), try await browser.get("/register")]
            try await browser.register("ada@example.com")
            let project = try await browser.createProject("Shop")
            let token = try #require(try await browser.get("/dashboard").csrf)
            try await browser.post("/projects/\(project)/environments/production/variables",
                                   [("_csrf", token), ("key", "API_KEY"), ("value", "s3cr3t-value"), ("variableType", "secret")])
            for path in ["/dashboard", "/projects/\(project)", "/projects/\(project)?env=production",
                         "/projects/\(project)/audit", "/projects/\(project)/deployments", "/projects/\(UUID().uuidString.lowercased())"] {
                pages.append(try await browser.get(path))
            }
            pages.append(try await browser.post("/projects/\(project)/environments/production/reveal", [("_csrf", token)]))
            for page in pages {
                #expect(page.headers[.contentSecurityPolicy] == Self.policy)
                #expect(page.headers[.contentType] == "text/html; charset=utf-8")
                #expect(page.headers[.xContentTypeOptions] == "nosniff")
                #expect(page.headers[.cacheControl] == "no-store")
                #expect(page.headers[HTTPField.Name("X-Frame-Options")!] == "DENY")
                #expect(page.headers[HTTPField.Name("Referrer-Policy")!] == "same-origin")
                // What the policy forbids is not in the page either: no inline script, handler or style attribute.
                // The one script is live.js, loaded from its own URL.
                let script = "<script type=\"module\" src=\"/assets/live.js?v=\(Assets.liveScript.version)\"></script>"
                #expect(page.body.components(separatedBy: "<script").count == 2)
                #expect(page.body.contains(script))
                #expect(!page.body.contains(" style="))
                #expect(page.body.range(of: #" on[a-z]+="#, options: .regularExpression) == nil)
            }
        }
    }

    @Test func aSignedInFormWithoutTheRightTokenIsRefused() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, client in
            try await browser.register("ada@example.com")
            let token = try #require(try await browser.get("/dashboard").csrf)
            for fields in [[("name", "Missing token")], [("_csrf", (token.hasPrefix("0") ? "1" : "0") + token.dropFirst()), ("name", "Wrong token")]] {
                let refused = try await browser.post("/projects", fields)
                #expect(refused.status == .forbidden, "\(fields): \(refused.location ?? "-")")
                #expect(refused.body.contains("This form has expired or did not come from this site."))
            }
            let crossSite = try await browser.post("/projects", [("_csrf", token), ("name", "Cross site")],
                                                   headers: [.origin: "http://evil.example"])
            #expect(crossSite.status == .forbidden)
            // Another session's token does not fit this session.
            let other = Browser(client)
            try await other.register("bob@example.com")
            let otherToken = try #require(try await other.get("/dashboard").csrf)
            #expect(otherToken != token)
            #expect(try await browser.post("/projects", [("_csrf", otherToken), ("name", "Borrowed")]).status == .forbidden)
            #expect(try await browser.post("/logout", []).status == .forbidden)
            // None of them created anything; the right token does.
            #expect(!(try await browser.get("/dashboard").body.contains("data-testid=\"project-card\"")))
            let accepted = try await browser.post("/projects", [("_csrf", token), ("name", "Real")])
            #expect(accepted.status == .seeOther)
            #expect(try await browser.get("/dashboard").body.contains("<h2>Real</h2>"))
        }
    }

    @Test func signInFormsNeedTheirFormCookie() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            let form = try await browser.get("/register")
            let token = try #require(form.csrf)
            #expect(token.count == 64)
            #expect(browser.cookies["cr_form"] == token)
            #expect(form.setCookies.map(Self.attributes) == [Self.attributes("cr_form=\(token); Max-Age=3600; Path=/; SameSite=Strict; HttpOnly")])
            // A page of another site can post the fields but not the cookie's value.
            browser.setCookie("cr_form", nil)
            let forged = try await browser.post("/register", [("_csrf", token), ("email", "ada@example.com"),
                                                               ("password", "correct horse battery")])
            #expect(forged.status == .forbidden)
            #expect(forged.body.contains("This form has expired or did not come from this site. Please try again."))
            #expect(try dashboard.sqlite("SELECT count(*) FROM users") == "0")
            // The refusal handed out a fresh cookie and token: the person's next try goes through.
            let retried = try await browser.post("/register", [("_csrf", try #require(forged.csrf)), ("email", "ada@example.com"),
                                                                ("password", "correct horse battery")])
            #expect(retried.location == "/dashboard")
        }
    }

    /// A cookie's name=value and its attributes, whose order Hummingbird does not keep.
    static func attributes(_ cookie: String) -> [String] {
        let parts = cookie.components(separatedBy: "; ")
        return [parts[0]] + parts.dropFirst().sorted()
    }

    @Test func theStylesheetIsServedWithAnETagAndRevalidates() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            let first = try await browser.get("/assets/app.css")
            #expect(first.status == .ok)
            #expect(first.headers[.contentType] == "text/css; charset=utf-8")
            #expect(first.headers[.cacheControl] == "no-cache")
            let etag = try #require(first.headers[.eTag])
            #expect(etag == "\"\(Assets.stylesheet.version)\"")
            #expect(first.body.utf8.count == PackageResources.app_css.count)
            for header in [etag, "W/\(etag)", "\"other\", \(etag)", "*"] {
                let again = try await browser.get("/assets/app.css", headers: [.ifNoneMatch: header])
                #expect(again.status == .notModified)
                #expect(again.body.isEmpty)
                #expect(again.headers[.eTag] == etag)
            }
            #expect(try await browser.get("/assets/app.css", headers: [.ifNoneMatch: "\"stale\""]).status == .ok)
            // Pages link the versioned URL, which may be cached for good.
            let login = try await browser.get("/login")
            #expect(login.body.contains("href=\"/assets/app.css?v=\(Assets.stylesheet.version)\""))
            let versioned = try await browser.get("/assets/app.css?v=\(Assets.stylesheet.version)")
            #expect(versioned.headers[.cacheControl] == "public, max-age=31536000, immutable")
        }
    }

    /// Every project page, each as its owner reaches it; another user gets Access Denied with 404 on each,
    /// byte for byte the page an unknown id gets.
    @Test func anotherUsersProjectIsAccessDeniedOnEveryPage() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { owner, _, _, client in
            try await owner.register("ada@example.com")
            let project = try await owner.createProject("Private")
            let ownerToken = try #require(try await owner.get("/dashboard").csrf)
            let saved = try await owner.post("/projects/\(project)/environments/development/variables",
                                             [("_csrf", ownerToken), ("key", "DB_PASSWORD"), ("value", "hunter22"), ("variableType", "secret")])
            #expect(saved.status == .seeOther)
            try await owner.post("/projects/\(project)/environments/development/variables",
                                 [("_csrf", ownerToken), ("key", "KEEP_ME"), ("value", "hunter22"), ("variableType", "secret")])
            let staging = try await owner.get("/projects/\(project)?env=staging")
            let afterSelect = try #require(staging.body.components(separatedBy: "data-testid=\"template-select\">").last)
            let template = try #require(Page.attribute("value", afterMarker: "<option value=\"", in: afterSelect))
            let intruder = Browser(client)
            try await intruder.register("eve@example.com")
            let intruderToken = try #require(try await intruder.get("/dashboard").csrf)
            let unknown = UUID().uuidString.lowercased()
            let env = "environments/development"
            let requests: [(HTTPRequest.Method, String, [(String, String)])] = [
                (.get, "", []), (.get, "?env=staging", []), (.get, "/audit", []), (.get, "/deployments", []),
                (.get, "/\(env)/export?format=dotenv", []),
                (.post, "/\(env)/export", [("format", "dotenv")]),
                (.post, "/\(env)/reveal", []),
                (.post, "/\(env)/variables", [("key", "DB_PASSWORD"), ("value", "taken"), ("variableType", "string")]),
                (.post, "/\(env)/variables/delete", [("key", "DB_PASSWORD")]),
                (.post, "/\(env)/import", [("content", "X=1"), ("format", "dotenv")]),
                (.post, "/environments/staging/template", [("templateId", template)]),
            ]
            for (method, suffix, fields) in requests {
                let ownerPage = method == .get ? try await owner.get("/projects/\(project)\(suffix)")
                    : try await owner.post("/projects/\(project)\(suffix)", [("_csrf", ownerToken)] + fields)
                #expect(ownerPage.status != .notFound, "\(method) \(suffix) for its owner")
                var answers: [Page] = []
                for id in [project, unknown] {
                    answers.append(method == .get ? try await intruder.get("/projects/\(id)\(suffix)")
                                   : try await intruder.post("/projects/\(id)\(suffix)", [("_csrf", intruderToken)] + fields))
                }
                for answer in answers {
                    #expect(answer.status == .notFound, "\(method) \(suffix)")
                    #expect(answer.body.contains("<h1 id=\"denied-title\">Access Denied</h1>"), "\(method) \(suffix)")
                }
                #expect(answers[0].body == answers[1].body, "\(method) \(suffix) tells another user's project from an unknown one")
            }
            // The owner's secret was neither changed nor deleted by the intruder.
            let revealed = try await owner.post("/projects/\(project)/environments/development/reveal", [("_csrf", ownerToken)])
            #expect(revealed.body.contains("data-testid=\"variable-value\">hunter22</code>"))
        }
    }

    @Test func aDeploymentPageIsItsOwnersOnly() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { owner, _, controlPlane, client in
            try await owner.register("ada@example.com")
            let project = try await owner.createProject("Shop")
            let user = try #require(try await controlPlane.store.credentials(email: "ada@example.com")).user
            let input = try JSONDecoder().decode(DeploymentService.CreateDeployment.self, from: Data(
                #"{"projectId": "\#(project)", "environment": "development", "name": "web", "command": "python3 -m http.server"}"#.utf8))
            let deployment = try await controlPlane.deployments.create(input, actor: Actor(userId: user.id))
            let list = try await owner.get("/projects/\(project)/deployments")
            #expect(list.body.contains("<a href=\"/deployments/\(deployment.id)\" data-testid=\"deployment-link\">web</a>"))
            let page = try await owner.get("/deployments/\(deployment.id)")
            #expect(page.status == .ok)
            // Coloured by status as on the deploy tab.
            #expect(page.body.contains("<span class=\"badge status-PENDING\" data-testid=\"deployment-status\" data-live-status=\"\(deployment.id)\">PENDING</span>"))
            #expect(page.body.contains("<code>python3 -m http.server</code>"))
            #expect(page.body.contains("<p class=\"empty\" data-instances-empty>No instances have registered yet.</p>"))
            // The instance rows live.js reads again: none yet.
            let rows = try await owner.get("/deployments/\(deployment.id)/instances.json")
            #expect(rows.status == .ok)
            #expect(rows.body == "[]")
            let intruder = Browser(client)
            try await intruder.register("eve@example.com")
            let theirs = try await intruder.get("/deployments/\(deployment.id)")
            let unknown = try await intruder.get("/deployments/\(UUID().uuidString.lowercased())")
            #expect(theirs.status == .notFound)
            #expect(theirs.body.contains("<h1 id=\"denied-title\">Access Denied</h1>"))
            #expect(theirs.body == unknown.body)
            let theirRows = try await intruder.get("/deployments/\(deployment.id)/instances.json")
            let unknownRows = try await intruder.get("/deployments/\(UUID().uuidString.lowercased())/instances.json")
            #expect(theirRows.status == .notFound)
            #expect(theirRows.body == unknownRows.body)
            #expect(!theirRows.body.contains(deployment.id))
        }
    }
}
