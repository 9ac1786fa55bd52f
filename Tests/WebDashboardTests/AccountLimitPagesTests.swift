// The account limits on the deploy tab, posted as a browser posts its form: past the deployment limit nothing is
// created, past the instance limit the deployment is created but not started, each with the API's reason beside
// the form. And what one view of the tab may cost: the last lines of a bounded number of cards, counted as one
// read against the account's log-read limit.
import Foundation
import HTTPTypes
import Testing
import TestSupport
@testable import ControlPlane
@testable import WebDashboard

@Suite struct AccountLimitPagesTests {
    static func dashboard(_ executor: RecordingExecutor, deployments: Int = AccountLimits.defaultMaxDeployments,
                          instances: Int = AccountLimits.defaultMaxInstances) throws -> Dashboard {
        var dashboard = try Dashboard()
        dashboard.configuration.scaling.executor = .exec(executor.command)
        dashboard.configuration.maxDeploymentsPerUser = deployments
        dashboard.configuration.scaling.maxInstancesPerUser = instances
        return dashboard
    }

    @Test func pastTheDeploymentLimitTheReasonIsBesideTheFormAndNothingIsCreated() async throws {
        let executor = try RecordingExecutor()
        defer { try? FileManager.default.removeItem(at: executor.directory) }
        let dashboard = try Self.dashboard(executor, deployments: 1)
        try await dashboard.run { browser, _, _, _ in
            try await browser.register("ada@example.com")
            let project = try await browser.createProject("Shop")
            let token = try #require(try await browser.get("/projects/\(project)/deployments").csrf)
            let form = [("_csrf", token), ("environment", "staging"), ("command", "sleep 1000")]
            #expect(try await browser.post("/projects/\(project)/deployments", form).status == .seeOther)
            let refused = try await browser.post("/projects/\(project)/deployments", form)
            #expect(refused.status == .conflict)
            #expect(refused.body.contains(
                "<p class=\"form-error\" role=\"alert\">account deployment limit (1) reached: this account holds 1 deployment; delete one first</p>"))
            #expect(refused.body.contains("<option value=\"staging\" selected>staging</option>"))
            #expect(try dashboard.sqlite("SELECT count(*) FROM deployments") == "1")
            #expect(executor.lines.count == 1)
        }
    }

    @Test func pastTheInstanceLimitTheDeploymentIsCreatedButNotStarted() async throws {
        let executor = try RecordingExecutor()
        defer { try? FileManager.default.removeItem(at: executor.directory) }
        let dashboard = try Self.dashboard(executor, instances: 1)
        try await dashboard.run { browser, _, _, _ in
            try await browser.register("ada@example.com")
            let project = try await browser.createProject("Shop")
            let token = try #require(try await browser.get("/projects/\(project)/deployments").csrf)
            let form = [("_csrf", token), ("environment", "development"), ("command", "sleep 1000")]
            #expect(try await browser.post("/projects/\(project)/deployments", form).status == .seeOther)
            let refused = try await browser.post("/projects/\(project)/deployments", form)
            #expect(refused.status == .conflict)
            #expect(refused.body.contains(
                "<p class=\"form-error\" role=\"alert\">the deployment was created but not started: account instance limit (1) reached: "
                + "this needs 1 instance and the account has 0 left; stop or scale down another deployment first</p>"))
            let ids = refused.deploymentIds
            #expect(ids.count == 2)
            // Only the first deployment ever reached the executor; the second is PENDING with its start button.
            let started = try #require(executor.lines.first?.split(separator: " ").first.map(String.init))
            #expect(executor.lines == ["\(started) 0 1"])
            let pending = try #require(ids.first { $0 != started })
            #expect(refused.status(of: pending) == "PENDING")
            #expect(refused.card(pending).contains("data-testid=\"start-deployment-button\""))
            // Its start button is refused the same way, as the tab's notice.
            let start = try await browser.post("/deployments/\(pending)/start", [("_csrf", token)])
            #expect(start.status == .conflict)
            #expect(start.body.contains("data-testid=\"deployment-notice\">account instance limit (1) reached: "))
        }
    }

    @Test func aViewReadsTheLastLinesOfTheNewestCardsOnly() throws {
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let deployments = (0..<9).map { i in
            Deployment(id: "d\(i)", projectId: "p", environment: .development, name: "d\(i)", runtimeType: nil, command: "true",
                       status: i == 1 ? .destroyed : .running, configVersion: 1, createdAt: now, updatedAt: now, agentToken: nil,
                       cpuLimit: 1, memoryLimit: 1 << 29, pidsLimit: 256)
        }
        #expect(WebDashboard.cardsWithLogs == 6)
        #expect(WebDashboard.logTargets(deployments) == ["d0", "d2", "d3", "d4", "d5", "d6"])
        #expect(WebDashboard.logTargets([]) == [])
    }

    @Test func aViewOfTheTabIsOneLogReadOfTheAccount() async throws {
        let executor = try RecordingExecutor()
        defer { try? FileManager.default.removeItem(at: executor.directory) }
        try await Self.dashboard(executor).run { browser, _, _, _ in
            try await browser.register("ada@example.com")
            let project = try await browser.createProject("Shop")
            let token = try #require(try await browser.get("/projects/\(project)/deployments").csrf)
            for _ in 0..<3 {
                try await browser.post("/projects/\(project)/deployments", [("_csrf", token), ("environment", "development"), ("command", "true")])
            }
            let id = try #require(try await browser.get("/projects/\(project)/deployments").deploymentIds.first)
            // 60 reads a minute: the view above (three cards) took one, whatever its cards; 58 exports leave one.
            for _ in 0..<58 {
                #expect(try await browser.get("/deployments/\(id)/logs.txt").status == .ok)
            }
            let tab = try await browser.get("/projects/\(project)/deployments")
            #expect(tab.status == .ok)
            #expect(tab.deploymentIds.count == 3)
            #expect(try await browser.get("/deployments/\(id)/logs.txt").status == .tooManyRequests)
            // Past the limit the tab still answers, its cards without lines until the live stream brings them.
            let limited = try await browser.get("/projects/\(project)/deployments")
            #expect(limited.status == .ok)
            #expect(limited.deploymentIds.count == 3)
        }
    }
}
