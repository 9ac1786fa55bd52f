// Browser sessions: the cookie's attributes, the token stored only hashed, expiry, logout, and the line
// between cookie sessions and API tokens.
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Sealing
import Testing
@testable import WebDashboard

@Suite struct SessionTests {
    @Test func registeringSignsInWithAStrictHttpOnlyCookieStoredOnlyAsItsHash() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            let registered = try await browser.register("ada@example.com")
            #expect(registered.status == .seeOther)
            #expect(registered.location == "/dashboard")
            let cookie = try #require(registered.setCookies.first { $0.hasPrefix("cr_session=") })
            let token = try #require(browser.cookies["cr_session"])
            #expect(token.hasPrefix("crs_") && token.count == 68)
            // 24 h (the token lifetime) from the test clock's now, which is also the session's start.
            #expect(PageSecurityTests.attributes(cookie)
                    == PageSecurityTests.attributes("cr_session=\(token); Max-Age=86400; Path=/; SameSite=Strict; HttpOnly"))
            #expect(!cookie.contains("Secure"))
            let stored = try dashboard.sqlite("SELECT token_hash FROM browser_sessions")
            #expect(stored == Digest.sha256Hex(Array(token.utf8)))
            let dump = try dashboard.sqlite(".dump")
            #expect(!dump.contains(token))
            let page = try await browser.get("/dashboard")
            #expect(page.status == .ok)
            #expect(page.body.contains("ada@example.com"))
        }
    }

    @Test func cookiesAreSecureBehindAnHTTPSProxyOrWhenTheOperatorSaysSo() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            let page = try await browser.get("/login", headers: [HTTPField.Name("X-Forwarded-Proto")!: "https"])
            let cookie = try #require(page.setCookies.first { $0.hasPrefix("cr_form=") })
            #expect(cookie.contains("; Secure"))
        }
        var always = try Dashboard()
        always.web = WebDashboard.Configuration(secureCookies: true)
        try await always.run { browser, _, _, _ in
            let registered = try await browser.register("grace@example.com")
            let cookie = try #require(registered.setCookies.first { $0.hasPrefix("cr_session=") })
            #expect(cookie.contains("; Secure"))
            #expect(cookie.contains("; HttpOnly"))
            #expect(cookie.contains("; SameSite=Strict"))
        }
    }

    @Test func aSessionEndsWhenItExpires() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, clock, _, _ in
            try await browser.register("ada@example.com")
            #expect(try await browser.get("/dashboard").status == .ok)
            clock.advance(24 * 3600 - 1)
            #expect(try await browser.get("/dashboard").status == .ok)
            clock.advance(1)
            let expired = try await browser.get("/dashboard")
            #expect(expired.status == .seeOther)
            #expect(expired.location == "/login?next=/dashboard")
            // The dead cookie is dropped.
            #expect(expired.setCookies.contains { $0.hasPrefix("cr_session=;") && $0.contains("Max-Age=0") })
        }
    }

    @Test func logoutRevokesTheSessionAndClearsTheCookie() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, client in
            try await browser.register("ada@example.com")
            let token = try #require(browser.cookies["cr_session"])
            let dashboardPage = try await browser.get("/dashboard")
            let out = try await browser.post("/logout", [("_csrf", try #require(dashboardPage.csrf))])
            #expect(out.status == .seeOther)
            #expect(out.location == "/login")
            #expect(browser.cookies["cr_session"] == nil)
            // The old token is dead even if someone kept a copy of the cookie.
            let replayed = Browser(client)
            replayed.setCookie("cr_session", token)
            #expect(try await replayed.get("/dashboard").location == "/login?next=/dashboard")
            #expect(try dashboard.sqlite("SELECT revoked_at IS NOT NULL FROM browser_sessions") == "1")
            // Signing in again works with the same credentials.
            let again = try await browser.login("ada@example.com")
            #expect(again.location == "/dashboard")
            #expect(try await browser.get("/dashboard").status == .ok)
        }
    }

    @Test func cookieSessionsAndAPITokensAreNotInterchangeable() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, controlPlane, client in
            try await browser.register("ada@example.com")
            let cookieToken = try #require(browser.cookies["cr_session"])
            let api = try await client.executeRequest(uri: "/api/auth/me", method: .get,
                                                      headers: [.authorization: "Bearer \(cookieToken)"], body: nil)
            #expect(api.status == .unauthorized)
            let session = try await controlPlane.auth.login(email: "ada@example.com", password: "correct horse battery")
            let other = Browser(client)
            other.setCookie("cr_session", session.token)
            #expect(try await other.get("/dashboard").location == "/login?next=/dashboard")
        }
    }

    @Test func wrongCredentialsRenderTheFormAgainWithTheReason() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            try await browser.register("ada@example.com")
            let page = try await browser.get("/dashboard")
            try await browser.post("/logout", [("_csrf", try #require(page.csrf))])
            let wrong = try await browser.login("ada@example.com", password: "not the password")
            #expect(wrong.status == .unauthorized)
            #expect(wrong.body.contains("Invalid credentials"))
            #expect(wrong.body.contains("value=\"ada@example.com\""))
            #expect(browser.cookies["cr_session"] == nil)
            let short = try await browser.register("bob@example.com", password: "short")
            #expect(short.status == .badRequest)
            #expect(short.body.contains("<p class=\"field-error\" id=\"password-error\">Password must be at least 8 characters</p>"))
        }
    }

    @Test func theLoginFormKeepsTheAPIsRateLimit() async throws {
        let dashboard = try Dashboard(authRateLimit: .perMinute(2))
        try await dashboard.run { browser, _, _, _ in
            #expect(try await browser.login("nobody@example.com").status == .unauthorized)
            #expect(try await browser.login("nobody@example.com").status == .unauthorized)
            let limited = try await browser.login("nobody@example.com")
            #expect(limited.status == .tooManyRequests)
            #expect(limited.headers[.retryAfter] == "30")
            #expect(limited.body.contains("too many login or registration attempts from this address; retry in 30 s"))
        }
    }

    @Test func registrationModesApplyToTheForm() async throws {
        let closed = try Dashboard(registration: .closed)
        try await closed.run { browser, _, _, _ in
            let refused = try await browser.register("ada@example.com")
            #expect(refused.status == .forbidden)
            #expect(refused.body.contains("registration is closed on this controller; an administrator can change --registration"))
        }
        let invite = try Dashboard(registration: .invite)
        try await invite.run { browser, _, _, _ in
            #expect(try await browser.get("/register").body.contains("data-testid=\"invite-code-input\""))
            // The first user needs no invite (nobody could have made one); the second does.
            #expect(try await browser.register("admin@example.com").location == "/dashboard")
            let second = try await Browser(browser.client).register("bob@example.com")
            #expect(second.status == .forbidden)
            #expect(second.body.contains("registration requires an invite"))
        }
    }

    @Test func aSignInReturnsOnlyToAPathOfThisSite() {
        #expect(WebDashboard.safeNext("/projects/abc") == "/projects/abc")
        #expect(WebDashboard.safeNext("//evil.example/x") == "/dashboard")
        #expect(WebDashboard.safeNext("https://evil.example/") == "/dashboard")
        #expect(WebDashboard.safeNext("/\\evil.example") == "/dashboard")
        #expect(WebDashboard.safeNext(nil) == "/dashboard")
    }
}
