// The live parts' server side: live.js served like the stylesheet, the deployment page's live markup, and the log
// export (a download named after the deployment, its owner's only).
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import Testing
@testable import WebDashboard

@Suite struct LivePagesTests {
    @Test func theScriptIsServedWithAnETagAndAnImmutableVersionedURL() async throws {
        try await Dashboard().run { browser, _, _, _ in
            let first = try await browser.get("/assets/live.js")
            #expect(first.status == .ok)
            #expect(first.headers[.contentType] == "text/javascript; charset=utf-8")
            #expect(first.headers[.cacheControl] == "no-cache")
            #expect(first.headers[.xContentTypeOptions] == "nosniff")
            #expect(first.headers[.eTag] == "\"\(Assets.liveScript.version)\"")
            #expect(first.body.utf8.count == PackageResources.live_js.count)
            let again = try await browser.get("/assets/live.js", headers: [.ifNoneMatch: Assets.liveScript.etag])
            #expect(again.status == .notModified)
            let versioned = try await browser.get("/assets/live.js?v=\(Assets.liveScript.version)")
            #expect(versioned.headers[.cacheControl] == "public, max-age=31536000, immutable")
            // Nothing in it that the page's policy would refuse: no eval, no Function constructor, no inline handlers.
            #expect(!first.body.contains("eval("))
            #expect(!first.body.contains("new Function"))
            #expect(!first.body.contains("innerHTML"))
        }
    }

    @Test func theDeploymentPageCarriesTheLiveViewAndTheExportIsTheOwnersOnly() async throws {
        try await Dashboard().run { owner, _, controlPlane, client in
            try await owner.register("ada@example.com")
            let project = try await owner.createProject("Shop")
            let user = try #require(try await controlPlane.store.credentials(email: "ada@example.com")).user
            let input = try JSONDecoder().decode(DeploymentService.CreateDeployment.self, from: Data(
                #"{"projectId": "\#(project)", "environment": "development", "name": "web", "command": "sleep 60"}"#.utf8))
            let id = try await controlPlane.deployments.create(input, actor: Actor(userId: user.id)).id
            let page = try await owner.get("/deployments/\(id)")
            for fragment in [
                "data-testid=\"ws-status\"", "data-live-status=\"\(id)\"", "data-live-logs=\"\(id)\"",
                "data-testid=\"log-filter-input\" data-live-filter=\"\(id)\"",
                "data-testid=\"cpu-metric\" data-live-metric=\"cpu\" data-live-deployment=\"\(id)\"",
                "data-testid=\"memory-metric\" data-live-metric=\"memory\" data-live-deployment=\"\(id)\"",
                "data-testid=\"export-logs-button\" href=\"/deployments/\(id)/logs.txt\"",
            ] {
                #expect(page.body.contains(fragment), "\(fragment)")
            }

            // No instance runs: the export is empty, but it is the download it always is.
            let export = try await owner.get("/deployments/\(id)/logs.txt")
            #expect(export.status == .ok)
            #expect(export.headers[.contentType] == "text/plain; charset=utf-8")
            #expect(export.headers[.contentDisposition] == "attachment; filename=\"deployment-\(id)-logs.txt\"")
            #expect(export.headers[.cacheControl] == "no-store")
            #expect(export.body == "")

            let intruder = Browser(client)
            try await intruder.register("eve@example.com")
            let theirs = try await intruder.get("/deployments/\(id)/logs.txt")
            let unknown = try await intruder.get("/deployments/\(UUID().uuidString.lowercased())/logs.txt")
            #expect(theirs.status == .notFound)
            #expect(theirs.body.contains("<h1 id=\"denied-title\">Access Denied</h1>"))
            #expect(theirs.body == unknown.body)
            #expect(theirs.headers[.contentDisposition] == nil)
            // Signed out: to the sign-in page, and back here after it.
            let anonymous = try await Browser(client).get("/deployments/\(id)/logs.txt")
            #expect(anonymous.status == .seeOther)
            #expect(anonymous.location == "/login?next=/deployments/\(id)/logs.txt")
        }
    }

    @Test func theExportCountsAgainstTheAccountsLogReadLimit() async throws {
        try await Dashboard().run { owner, _, controlPlane, _ in
            try await owner.register("ada@example.com")
            let project = try await owner.createProject("Shop")
            let user = try #require(try await controlPlane.store.credentials(email: "ada@example.com")).user
            let input = try JSONDecoder().decode(DeploymentService.CreateDeployment.self, from: Data(
                #"{"projectId": "\#(project)", "environment": "development", "name": "web", "command": "sleep 60"}"#.utf8))
            let id = try await controlPlane.deployments.create(input, actor: Actor(userId: user.id)).id
            for _ in 0..<60 {
                #expect(try await owner.get("/deployments/\(id)/logs.txt").status == .ok)
            }
            let limited = try await owner.get("/deployments/\(id)/logs.txt")
            #expect(limited.status == .tooManyRequests)
            #expect(limited.body.contains("too many log reads by this account; retry in 1 s"))
            #expect(limited.headers[.contentDisposition] == nil)
        }
    }

    @Test func theExportsFileNameKeepsOnlySafeCharacters() {
        #expect(WebDashboard.exportFilename("0b6f2c1e-8d7a-4c55-9a51-3f1b2e4d5c6a") == "deployment-0b6f2c1e-8d7a-4c55-9a51-3f1b2e4d5c6a-logs.txt")
        #expect(WebDashboard.exportFilename("a\"b\r\nc/é") == "deployment-a_b__c__-logs.txt")
    }
}
