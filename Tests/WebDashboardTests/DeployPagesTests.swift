// The deploy tab (deploy, stop, start, delete) and the deployment page's scaling section, driven as a browser
// posts their forms, against a real controller whose exec executor runs a real script that records each scaling.
// Also: ownership on every new route, CSRF on every new form, the chart's geometry and the buttons' rules.
import Foundation
import HTTPTypes
import Scaling
import Testing
import TestSupport
@testable import ControlPlane
@testable import WebDashboard

/// A script that appends "$DEPLOYMENT_ID $FROM $TO" to calls.txt and succeeds: the exec executor's record.
struct RecordingExecutor {
    let directory: URL
    let command: String
    let calls: URL

    init() throws {
        directory = try TestSupport.makeTemporaryDirectory("deploy-exec")
        calls = directory.appendingPathComponent("calls.txt")
        let script = directory.appendingPathComponent("scale.sh")
        try "#!/bin/sh\necho \"$DEPLOYMENT_ID $FROM $TO\" >> '\(calls.path)'\n".write(to: script, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: script.path)
        command = script.path
    }

    var lines: [String] {
        ((try? String(contentsOf: calls, encoding: .utf8)) ?? "").split(separator: "\n").map(String.init)
    }
}

extension Page {
    /// The deployment ids of the tab's cards, newest first.
    var deploymentIds: [String] {
        body.components(separatedBy: "data-testid=\"deployment-card\"").dropFirst().compactMap {
            Page.attribute("id", afterMarker: "<a href=\"/deployments/", in: $0)
        }
    }

    /// The status badge of one deployment's card.
    func status(of id: String) -> String? {
        guard let card = body.range(of: "id=\"deployment-\(id)\"") else { return nil }
        let rest = String(body[card.upperBound...])
        guard let badge = rest.range(of: "data-live-status=\"\(id)\">") else { return nil }
        return String(rest[badge.upperBound...].prefix { $0 != "<" })
    }

    /// The part of the page for one deployment's card (its `<li>`, which holds no other list item).
    func card(_ id: String) -> String {
        guard let start = body.range(of: "id=\"deployment-\(id)\"") else { return "" }
        let rest = body[start.upperBound...]
        return String(rest[..<(rest.range(of: "</li>")?.lowerBound ?? rest.endIndex)])
    }
}

@Suite struct DeployPagesTests {
    static func dashboard(executor: RecordingExecutor?) throws -> Dashboard {
        var dashboard = try Dashboard()
        if let executor { dashboard.configuration.scaling.executor = .exec(executor.command) }
        return dashboard
    }

    @Test func deployCreatesAndStartsTheDeploymentAndTheTabShowsIt() async throws {
        let executor = try RecordingExecutor()
        defer { try? FileManager.default.removeItem(at: executor.directory) }
        try await Self.dashboard(executor: executor).run { browser, _, _, _ in
            try await browser.register("ada@example.com")
            let project = try await browser.createProject("Shop")
            let empty = try await browser.get("/projects/\(project)/deployments")
            #expect(empty.body.contains("No deployments yet."))
            let token = try #require(empty.csrf)
            let deployed = try await browser.post("/projects/\(project)/deployments",
                                                  [("_csrf", token), ("environment", "staging"), ("command", "python3 -m http.server")])
            #expect(deployed.status == .seeOther)
            let tab = try await browser.get("/projects/\(project)/deployments?done=deployed")
            let id = try #require(tab.deploymentIds.first)
            #expect(tab.deploymentIds == [id])
            #expect(deployed.location == "/projects/\(project)/deployments?done=deployed#deployment-\(id)")
            #expect(tab.body.contains("<p class=\"notice\" role=\"status\">Deployment created and started.</p>"))
            // The start asked the executor for one instance; nothing has registered yet.
            #expect(executor.lines == ["\(id) 0 1"])
            #expect(tab.status(of: id) == "PROVISIONING")
            let card = tab.card(id)
            #expect(card.contains("<code>python3 -m http.server</code>"))
            #expect(card.contains("staging · config version 1"))
            #expect(card.contains("data-testid=\"deployment-logs\" data-live-logs=\"\(id)\""))
            #expect(card.contains("No url: nothing serves it now."))
            #expect(card.contains("data-testid=\"stop-deployment-button\""))
            #expect(!card.contains("data-testid=\"start-deployment-button\""))
            #expect(card.contains("data-testid=\"confirm-delete-button\""))
        }
    }

    @Test func withoutACommandOrADefaultTheReasonIsBesideTheCommandAndNothingIsCreated() async throws {
        // The local executor (the default) and no --default-command: it would have nothing to run.
        let dashboard = try Self.dashboard(executor: nil)
        try await dashboard.run { browser, _, _, _ in
            try await browser.register("ada@example.com")
            let project = try await browser.createProject("Shop")
            let token = try #require(try await browser.get("/projects/\(project)/deployments").csrf)
            let refused = try await browser.post("/projects/\(project)/deployments",
                                                 [("_csrf", token), ("environment", "production"), ("command", "")])
            #expect(refused.status == .badRequest)
            #expect(refused.body.contains(
                "<p class=\"field-error\" id=\"deploy-command-error\" data-testid=\"deploy-command-error\">command is required: "
                + "the deployment has no command, so the local executor has nothing to run; create it with a command</p>"))
            #expect(refused.body.contains("aria-describedby=\"deploy-command-hint deploy-command-error\" aria-invalid=\"true\""))
            // The chosen environment stays selected.
            #expect(refused.body.contains("<option value=\"production\" selected>production</option>"))
            #expect(try dashboard.sqlite("SELECT count(*) FROM deployments") == "0")
            let badEnvironment = try await browser.post("/projects/\(project)/deployments",
                                                        [("_csrf", token), ("environment", "qa"), ("command", "true")])
            #expect(badEnvironment.status == .badRequest)
            #expect(badEnvironment.body.contains("environment must be one of development, staging, production</p>"))
        }
    }

    @Test func stopStartDeleteAndTheAPIs409AsANotice() async throws {
        let executor = try RecordingExecutor()
        defer { try? FileManager.default.removeItem(at: executor.directory) }
        let dashboard = try Self.dashboard(executor: executor)
        try await dashboard.run { browser, _, _, _ in
            try await browser.register("ada@example.com")
            let project = try await browser.createProject("Shop")
            let token = try #require(try await browser.get("/projects/\(project)/deployments").csrf)
            try await browser.post("/projects/\(project)/deployments", [("_csrf", token), ("environment", "development"), ("command", "sleep 1000")])
            let id = try #require(try await browser.get("/projects/\(project)/deployments").deploymentIds.first)
            let tabURL = "/projects/\(project)/deployments"

            let stopped = try await browser.post("/deployments/\(id)/stop", [("_csrf", token)])
            #expect(stopped.location == "\(tabURL)?done=stopped#deployment-\(id)")
            var tab = try await browser.get("\(tabURL)?done=stopped")
            #expect(tab.status(of: id) == "STOPPED")
            #expect(tab.body.contains("Deployment stopped."))
            #expect(tab.card(id).contains("data-testid=\"start-deployment-button\""))
            #expect(!tab.card(id).contains("data-testid=\"stop-deployment-button\""))

            let started = try await browser.post("/deployments/\(id)/start", [("_csrf", token)])
            #expect(started.location == "\(tabURL)?done=started#deployment-\(id)")
            tab = try await browser.get(tabURL)
            #expect(tab.status(of: id) == "PROVISIONING")

            let deleted = try await browser.post("/deployments/\(id)/delete", [("_csrf", token)])
            #expect(deleted.location == "\(tabURL)?done=destroyed#deployment-\(id)")
            tab = try await browser.get("\(tabURL)?done=destroyed")
            #expect(tab.status(of: id) == "DESTROYED")
            #expect(tab.body.contains("Deployment deleted; its tombstone stays."))
            for button in ["stop-deployment-button", "start-deployment-button", "delete-deployment-button"] {
                #expect(!tab.card(id).contains(button))
            }
            #expect(executor.lines == ["\(id) 0 1", "\(id) 1 0", "\(id) 0 1", "\(id) 1 0"])

            // Starting a tombstone (a stale tab, a second window): the API's 409, with its reason, on the tab.
            let refused = try await browser.post("/deployments/\(id)/start", [("_csrf", token)])
            #expect(refused.status == .conflict)
            #expect(refused.body.contains(
                "<p class=\"form-error\" role=\"alert\" data-testid=\"deployment-notice\">the deployment is destroyed; nothing can start or change it</p>"))
            #expect(refused.status(of: id) == "DESTROYED")
            // Deleting it again changes nothing and is no error (the API's DELETE is idempotent).
            #expect(try await browser.post("/deployments/\(id)/delete", [("_csrf", token)]).status == .seeOther)
            #expect(executor.lines == ["\(id) 0 1", "\(id) 1 0", "\(id) 0 1", "\(id) 1 0"])
            #expect(try dashboard.sqlite("SELECT status FROM deployments WHERE id = '\(id)'") == "DESTROYED")
        }
    }

    @Test func everyNewFormRefusesAMissingOrWrongToken() async throws {
        let executor = try RecordingExecutor()
        defer { try? FileManager.default.removeItem(at: executor.directory) }
        let dashboard = try Self.dashboard(executor: executor)
        try await dashboard.run { browser, _, controlPlane, _ in
            try await browser.register("ada@example.com")
            let project = try await browser.createProject("Shop")
            let token = try #require(try await browser.get("/dashboard").csrf)
            try await browser.post("/projects/\(project)/deployments", [("_csrf", token), ("environment", "development"), ("command", "true")])
            let id = try #require(try await browser.get("/projects/\(project)/deployments").deploymentIds.first)
            try await browser.post("/deployments/\(id)/scaling/policies", [("_csrf", token), ("policy", Self.policy("cpu"))])
            let policy = try #require(try await controlPlane.scaling.policies(id).first).id
            let forms: [(String, [(String, String)])] = [
                ("/projects/\(project)/deployments", [("environment", "development"), ("command", "true")]),
                ("/deployments/\(id)/stop", []), ("/deployments/\(id)/start", []), ("/deployments/\(id)/delete", []),
                ("/deployments/\(id)/scaling/policies", [("policy", Self.policy("other"))]),
                ("/deployments/\(id)/scaling/policies/\(policy)", [("policy", Self.policy("renamed"))]),
                ("/deployments/\(id)/scaling/policies/\(policy)/delete", []),
            ]
            let before = try dashboard.sqlite("SELECT count(*), group_concat(status) FROM deployments")
            for (path, fields) in forms {
                for attempt in [fields, [("_csrf", (token.hasPrefix("0") ? "1" : "0") + token.dropFirst())] + fields] {
                    let refused = try await browser.post(path, attempt)
                    #expect(refused.status == .forbidden, "\(path)")
                    #expect(refused.body.contains("This form has expired or did not come from this site."), "\(path)")
                }
                let crossSite = try await browser.post(path, [("_csrf", token)] + fields, headers: [.origin: "http://evil.example"])
                #expect(crossSite.status == .forbidden, "\(path) from another site")
            }
            #expect(try dashboard.sqlite("SELECT count(*), group_concat(status) FROM deployments") == before)
            #expect(try await controlPlane.scaling.policies(id).map(\.policy.name) == ["cpu"])
            #expect(executor.lines == ["\(id) 0 1"])
        }
    }

    /// Every new route, as its owner reaches it and as another user does: the intruder gets Access Denied with
    /// 404, byte for byte what an unknown id gets, and changes nothing.
    @Test func anotherUsersDeploymentIsAccessDeniedOnEveryNewRoute() async throws {
        let executor = try RecordingExecutor()
        defer { try? FileManager.default.removeItem(at: executor.directory) }
        let dashboard = try Self.dashboard(executor: executor)
        try await dashboard.run { owner, _, controlPlane, client in
            try await owner.register("ada@example.com")
            let project = try await owner.createProject("Private")
            let ownerToken = try #require(try await owner.get("/dashboard").csrf)
            try await owner.post("/projects/\(project)/deployments", [("_csrf", ownerToken), ("environment", "development"), ("command", "true")])
            let id = try #require(try await owner.get("/projects/\(project)/deployments").deploymentIds.first)
            try await owner.post("/deployments/\(id)/scaling/policies", [("_csrf", ownerToken), ("policy", Self.policy("cpu"))])
            let policy = try #require(try await controlPlane.scaling.policies(id).first).id
            let intruder = Browser(client)
            try await intruder.register("eve@example.com")
            let intruderToken = try #require(try await intruder.get("/dashboard").csrf)
            let unknown = UUID().uuidString.lowercased()
            let before = try dashboard.sqlite("SELECT status, stopped_at IS NULL FROM deployments")
            // (method, path with ID for the deployment or project, fields)
            let routes: [(HTTPRequest.Method, String, [(String, String)])] = [
                (.get, "/projects/PROJECT/deployments", []),
                (.post, "/projects/PROJECT/deployments", [("environment", "development"), ("command", "true")]),
                (.get, "/deployments/ID", []),
                (.post, "/deployments/ID/stop", []), (.post, "/deployments/ID/start", []), (.post, "/deployments/ID/delete", []),
                (.post, "/deployments/ID/scaling/policies", [("policy", Self.policy("theirs"))]),
                (.post, "/deployments/ID/scaling/policies/\(policy)", [("policy", Self.policy("renamed"))]),
                (.post, "/deployments/ID/scaling/policies/\(policy)/delete", []),
            ]
            for (method, template, fields) in routes {
                var answers: [Page] = []
                for (deployment, project) in [(id, project), (unknown, unknown)] {
                    let path = template.replacingOccurrences(of: "PROJECT", with: project).replacingOccurrences(of: "ID", with: deployment)
                    answers.append(method == .get ? try await intruder.get(path)
                                   : try await intruder.post(path, [("_csrf", intruderToken)] + fields))
                }
                for answer in answers {
                    #expect(answer.status == .notFound, "\(method) \(template)")
                    #expect(answer.body.contains("<h1 id=\"denied-title\">Access Denied</h1>"), "\(method) \(template)")
                }
                #expect(answers[0].body == answers[1].body, "\(method) \(template) tells another user's deployment from an unknown one")
            }
            #expect(try dashboard.sqlite("SELECT status, stopped_at IS NULL FROM deployments") == before)
            #expect(try await controlPlane.scaling.policies(id).map(\.policy.name) == ["cpu"])
            #expect(executor.lines == ["\(id) 0 1"])
            // The owner reaches each of them.
            #expect(try await owner.get("/deployments/\(id)").status == .ok)
            #expect(try await owner.get("/projects/\(project)/deployments").status == .ok)
        }
    }

    static func policy(_ name: String, min: Int = 1, max: Int = 3) -> String {
        #"{"name": "\#(name)", "policyType": "target_tracking", "minInstances": \#(min), "maxInstances": \#(max), "target": {"metric": "cpu", "value": 60}}"#
    }

    @Test func policiesAreCreatedEditedAndDeletedAsJSONWithTheAPIsErrorsBesideTheField() async throws {
        let executor = try RecordingExecutor()
        defer { try? FileManager.default.removeItem(at: executor.directory) }
        try await Self.dashboard(executor: executor).run { browser, _, controlPlane, _ in
            try await browser.register("ada@example.com")
            let project = try await browser.createProject("Shop")
            let token = try #require(try await browser.get("/dashboard").csrf)
            try await browser.post("/projects/\(project)/deployments", [("_csrf", token), ("environment", "development"), ("command", "true")])
            let id = try #require(try await browser.get("/projects/\(project)/deployments").deploymentIds.first)
            let page = try await browser.get("/deployments/\(id)")
            #expect(page.body.contains("No scaling policy: a start runs one instance."))
            #expect(page.body.contains("No pricing set, so no costs"))

            // Invalid: the API's validation error beside the textarea, which keeps the text.
            let invalid = Self.policy("cpu", min: 5, max: 2)
            let refused = try await browser.post("/deployments/\(id)/scaling/policies", [("_csrf", token), ("policy", invalid)])
            #expect(refused.status == .badRequest)
            #expect(refused.body.contains("<p class=\"field-error\" id=\"new-policy-error\" data-testid=\"policy-error\">validation failed: maxInstances"))
            #expect(refused.body.contains("aria-describedby=\"new-policy-hint new-policy-error\" aria-invalid=\"true\""))
            #expect(refused.body.contains(">\(Self.escaped(invalid))</textarea>"))
            let notJSON = try await browser.post("/deployments/\(id)/scaling/policies", [("_csrf", token), ("policy", "[1, 2]")])
            #expect(notJSON.status == .badRequest)
            #expect(notJSON.body.contains("data-testid=\"policy-error\">validation failed: body must be one policy object</p>"))
            #expect(try await controlPlane.scaling.policies(id).isEmpty)

            let created = try await browser.post("/deployments/\(id)/scaling/policies", [("_csrf", token), ("policy", Self.policy("cpu"))])
            #expect(created.location == "/deployments/\(id)?done=policy-created#scaling")
            let stored = try #require(try await controlPlane.scaling.policies(id).first)
            #expect(stored.policy.minInstances == 1 && stored.policy.maxInstances == 3)
            var shown = try await browser.get("/deployments/\(id)?done=policy-created")
            #expect(shown.body.contains("Scaling policy created."))
            #expect(shown.body.contains("data-testid=\"policy-row\" data-name=\"cpu\""))
            #expect(shown.body.contains("<span class=\"muted\">1 to 3 instances</span>"))
            // The edit form holds the stored document; posting it back unchanged is accepted as it is.
            let document = PolicyRow.json(stored.policy)
            #expect(document.contains("\"scaleUpRules\" : [],"))
            #expect(shown.body.contains(">\(Self.escaped(document))</textarea>"))
            let same = try await browser.post("/deployments/\(id)/scaling/policies/\(stored.id)", [("_csrf", token), ("policy", document)])
            #expect(same.location == "/deployments/\(id)?done=policy-updated#scaling")
            #expect(try await controlPlane.scaling.policies(id).first?.policy == stored.policy)

            // A failed edit opens that policy's form again with the reason; the new-policy form stays clean.
            let badEdit = try await browser.post("/deployments/\(id)/scaling/policies/\(stored.id)",
                                                 [("_csrf", token), ("policy", Self.policy("cpu", min: 0, max: 0))])
            #expect(badEdit.status == .badRequest)
            #expect(badEdit.body.contains("<details class=\"policy-edit\" open>"))
            #expect(badEdit.body.contains("id=\"policy-\(stored.id)-error\" data-testid=\"policy-error\">validation failed: "))
            #expect(!badEdit.body.contains("id=\"new-policy-error\""))
            // A second policy of the same name: the API's 409, beside the field too.
            let duplicate = try await browser.post("/deployments/\(id)/scaling/policies", [("_csrf", token), ("policy", Self.policy("cpu"))])
            #expect(duplicate.status == .conflict)
            #expect(duplicate.body.contains("data-testid=\"policy-error\">a scaling policy named &quot;cpu&quot; already exists on this deployment</p>"))

            let edited = try await browser.post("/deployments/\(id)/scaling/policies/\(stored.id)",
                                                [("_csrf", token), ("policy", Self.policy("cpu", min: 2, max: 4))])
            #expect(edited.status == .seeOther)
            #expect(try await controlPlane.scaling.policies(id).map { [$0.policy.minInstances, $0.policy.maxInstances] } == [[2, 4]])
            shown = try await browser.get("/deployments/\(id)")
            // The events, newest first, with their reasons; the start's is a manual override.
            let events = shown.body.components(separatedBy: "data-testid=\"scaling-event\"").dropFirst().map {
                String($0.prefix { $0 != "\n" })
            }
            #expect(events.count == 4)
            #expect(events[0].contains("<td>policy change</td><td>1</td><td class=\"wrap\">policy &quot;cpu&quot; updated</td>"))
            #expect(events[2].contains("policy &quot;cpu&quot; created"))
            #expect(events[3].contains("<td>manual override</td><td>0 → 1</td><td class=\"wrap\">deployment started by its owner</td>"))
            #expect(shown.body.contains("role=\"img\" aria-labelledby=\"chart-title chart-summary\""))
            #expect(shown.body.contains("between 0 and 1, 1 now; 4 scaling events.</figcaption>"))

            let deleted = try await browser.post("/deployments/\(id)/scaling/policies/\(stored.id)/delete", [("_csrf", token)])
            #expect(deleted.location == "/deployments/\(id)?done=policy-deleted#scaling")
            #expect(try await controlPlane.scaling.policies(id).isEmpty)
            #expect(try await browser.get("/deployments/\(id)?done=policy-deleted").body.contains("Scaling policy deleted."))
            // The form's example is a policy the API accepts.
            let example = try await browser.post("/deployments/\(id)/scaling/policies", [("_csrf", token), ("policy", WebDashboard.policyExample)])
            #expect(example.status == .seeOther)
            #expect(try await controlPlane.scaling.policies(id).map(\.policy.name) == ["cpu"])
        }
    }

    @Test func theCostFiguresAreWhatTheCostAPIReturns() async throws {
        let executor = try RecordingExecutor()
        defer { try? FileManager.default.removeItem(at: executor.directory) }
        try await Self.dashboard(executor: executor).run { browser, _, controlPlane, _ in
            try await browser.register("ada@example.com")
            let project = try await browser.createProject("Shop")
            let token = try #require(try await browser.get("/dashboard").csrf)
            try await browser.post("/projects/\(project)/deployments", [("_csrf", token), ("environment", "development"), ("command", "true")])
            let id = try #require(try await browser.get("/projects/\(project)/deployments").deploymentIds.first)
            _ = try await controlPlane.scaling.setPricing(id, .init(cpuCores: 1, memoryGB: 0.5, pricePerCoreHour: 0.04, pricePerGBHour: 0.005))
            let page = try await browser.get("/deployments/\(id)")
            #expect(page.body.contains("<p data-testid=\"pricing\">1 CPU and 0.5 GB per instance, at $0.0400 per core-hour and "
                                       + "$0.0050 per GB-hour: $0.0425 per instance-hour</p>"))
            let periods = try await controlPlane.scaling.costAnalytics(id, period: .hour, limit: WebDashboard.costPeriodCount)
            if periods.isEmpty {
                #expect(page.body.contains("No cost period recorded yet."))
            } else {
                #expect(page.body.contains("data-testid=\"cost-table\""))
                for period in periods { #expect(page.body.contains("<td>\(Format.money(period.period.totalCost))</td>")) }
            }
        }
    }

    static func escaped(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "\"", with: "&quot;")
            .replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }

    // MARK: Pure parts

    static func event(_ sequence: Int64, at seconds: Double, _ before: Int, _ after: Int) -> ScalingEventRecord {
        ScalingEventRecord(id: "e\(sequence)", sequence: sequence, deploymentId: "d", policyId: nil, eventType: .scaleUp,
                           triggerReason: "r", instancesBefore: before, instancesAfter: after, success: true,
                           timestamp: Date(timeIntervalSince1970: 1_800_000_000 + seconds))
    }

    @Test func theChartIsAStepLineFromTheFirstEventToNow() throws {
        // Given newest first, as the events API answers; 600×160 with the plot from x 28 to 596 and y 8 to 140.
        let chart = try #require(InstanceChart(events: [Self.event(2, at: 50, 2, 3), Self.event(1, at: 0, 1, 2)], current: 3,
                                               now: Date(timeIntervalSince1970: 1_800_000_100)))
        #expect(chart.path == "M28 96 H28 V52 H312 V8 H596")
        #expect(chart.yMax == 3)
        #expect(chart.yMaxY == "8")
        #expect(chart.startLabel == "2027-01-15 08:00:00 UTC")
        #expect(chart.endLabel == "2027-01-15 08:01:40 UTC")
        #expect(chart.summary == "Instances from 2027-01-15 08:00:00 UTC to 2027-01-15 08:01:40 UTC: between 1 and 3, 3 now; 2 scaling events.")
        // The count now differs from the last event's (an instance exited): the line ends at the current count.
        let dropped = try #require(InstanceChart(events: [Self.event(1, at: 0, 0, 2)], current: 1, now: Date(timeIntervalSince1970: 1_800_000_030)))
        #expect(dropped.path == "M28 140 H28 V8 H596 V74")
        #expect(InstanceChart(events: [], current: 2, now: Date()) == nil)
        // Nothing ever ran: a flat line at 0 on a scale of 1, never a division by zero.
        let idle = try #require(InstanceChart(events: [Self.event(1, at: 0, 0, 0)], current: 0, now: Date(timeIntervalSince1970: 1_800_000_000)))
        #expect(idle.path == "M28 140 H28 H596")
        #expect(idle.yMax == 1)
        #expect(idle.endLabel == "2027-01-15 08:00:01 UTC")
    }

    @Test(arguments: [
        (DeploymentStatus.pending, DeploymentActions(stop: true, start: true, delete: true)),
        (.provisioning, DeploymentActions(stop: true, start: false, delete: true)),
        (.running, DeploymentActions(stop: true, start: false, delete: true)),
        (.failed, DeploymentActions(stop: true, start: true, delete: true)),
        (.stopped, DeploymentActions(stop: false, start: true, delete: true)),
        (.destroyed, DeploymentActions(stop: false, start: false, delete: false)),
    ])
    func theButtonsEachStatusShows(status: DeploymentStatus, expected: DeploymentActions) {
        #expect(DeploymentActions(status) == expected)
    }

    @Test func numbersAndPrices() {
        #expect(Format.number(2) == "2")
        #expect(Format.number(0.5) == "0.5")
        #expect(Format.number(1.333) == "1.33")
        #expect(Format.number(0.104) == "0.1")
        #expect(Format.money(0.0425) == "$0.0425")
        #expect(Format.time(Date(timeIntervalSince1970: 1_800_000_007)) == "2027-01-15 08:00:07 UTC")
    }
}
