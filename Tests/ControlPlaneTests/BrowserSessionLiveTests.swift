// The dashboard's cookie session on the live streams: which table each kind of token is checked in, and logout
// waking the sockets a browser session opened. The socket itself, opened with the cookie and the page's Origin (and
// refused without them), is driven end to end by Tests/websocket/test_browser_session.py.
import Foundation
import HTTPTypes
import Testing
import TestSupport
@testable import ControlPlane

@Suite struct BrowserSessionLiveTests {
    static let password = "correct horse battery"

    @Test func eachKindOfTokenIsRecheckedInItsOwnTable() async throws {
        let harness = try Harness { $0.tokenLifetime = .seconds(3600) }
        try await harness.run { client in
            _ = try await client.signUp("ada@example.com")
            let auth = client.controlPlane.auth
            let browser = try await auth.startBrowserSession(email: "ada@example.com", password: Self.password)
            let api = try await auth.login(email: "ada@example.com", password: Self.password)
            let now = harness.now.now
            let browserHash = Tokens.hash(browser.token), apiHash = Tokens.hash(api.token)
            #expect(await auth.isLive(.browserSession, tokenHash: browserHash, now: now))
            #expect(await auth.isLive(.apiToken, tokenHash: apiHash, now: now))
            // A token of one kind is unknown as the other.
            #expect(await !auth.isLive(.apiToken, tokenHash: browserHash, now: now))
            #expect(await !auth.isLive(.browserSession, tokenHash: apiHash, now: now))
            // Expiry: the store's clock decides.
            #expect(await !auth.isLive(.browserSession, tokenHash: browserHash, now: browser.expiresAt))
            #expect(await auth.isLive(.browserSession, tokenHash: browserHash, now: browser.expiresAt.addingTimeInterval(-1)))
            try await auth.endBrowserSession(token: browser.token)
            #expect(await !auth.isLive(.browserSession, tokenHash: browserHash, now: now))
        }
    }

    @Test func theCookieMustHoldABrowserSession() async throws {
        try await Harness { $0.tokenLifetime = .seconds(3600) }.run { client in
            _ = try await client.signUp("ada@example.com")
            let auth = client.controlPlane.auth
            let browser = try await auth.startBrowserSession(email: "ada@example.com", password: Self.password)
            let checked = try #require(try await auth.authenticateBrowserSession(token: browser.token))
            #expect(checked.user.email == "ada@example.com")
            #expect(checked.expiresAt == browser.expiresAt)
            let api = try await auth.login(email: "ada@example.com", password: Self.password)
            #expect(try await auth.authenticateBrowserSession(token: api.token) == nil)
            #expect(try await auth.authenticateBrowserSession(token: "crs_" + String(repeating: "0", count: 64)) == nil)
        }
    }

    @Test func aDashboardLogoutWakesItsSocketsAtOnce() async throws {
        try await Harness().run { client in
            _ = try await client.signUp("ada@example.com")
            let auth = client.controlPlane.auth
            let browser = try await auth.startBrowserSession(email: "ada@example.com", password: Self.password)
            let hash = Tokens.hash(browser.token)
            let (revoked, cancel) = auth.revocations.watch(tokenHash: hash)
            defer { cancel() }
            #expect(auth.revocations.watcherCount(tokenHash: hash) == 1)
            try await auth.endBrowserSession(token: browser.token)
            var woken = 0
            for await _ in revoked { woken += 1 }
            #expect(woken == 1)
            #expect(auth.revocations.watcherCount(tokenHash: hash) == 0)
        }
    }
}
