// The EnvironmentConfigManager as a browser without script uses it: forms post, the server redirects, and a
// failed form comes back with the reason beside its field.
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import Testing
@testable import WebDashboard

@Suite struct ConfigManagerTests {
    /// A signed-in browser with one project; returns the project id and the form token.
    func start(_ browser: Browser) async throws -> (String, String) {
        try await browser.register("ada@example.com")
        let project = try await browser.createProject("Shop")
        return (project, try #require(try await browser.get("/dashboard").csrf))
    }

    @Test func theDashboardListsOnlyTheUsersProjects() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, client in
            try await browser.register("ada@example.com")
            let empty = try await browser.get("/dashboard")
            #expect(empty.body.contains("No projects found."))
            #expect(empty.body.contains("class=\"responsive-grid\" data-testid=\"project-grid\""))
            let id = try await browser.createProject("Shop")
            try await browser.post("/projects", [("_csrf", try #require(empty.csrf)), ("name", "Shop <b>&</b>")])
            let listed = try await browser.get("/dashboard")
            #expect(listed.body.contains("<a class=\"card\" data-testid=\"project-card\" href=\"/projects/\(id)\">"))
            // The name is text, never markup.
            #expect(listed.body.contains("<h2>Shop &lt;b&gt;&amp;&lt;/b&gt;</h2>"))
            #expect(!listed.body.contains("No projects found."))
            let other = Browser(client)
            try await other.register("bob@example.com")
            let theirs = try await other.get("/dashboard")
            #expect(!theirs.body.contains("data-testid=\"project-card\""))
            #expect(theirs.body.contains("No projects found."))
        }
    }

    @Test func aProjectWithoutANameComesBackWithTheReason() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            try await browser.register("ada@example.com")
            let token = try #require(try await browser.get("/dashboard").csrf)
            let failed = try await browser.post("/projects", [("_csrf", token), ("name", ""), ("description", "kept")])
            #expect(failed.status == .badRequest)
            #expect(failed.body.contains("<details class=\"create-project\" open>"))
            #expect(failed.body.contains("<p class=\"field-error\" id=\"name-error\">Name is required</p>"))
            #expect(failed.body.contains(">kept</textarea>"))
        }
    }

    @Test func aNewProjectShowsAllThreeEnvironmentsAndTheFirstVariableCreatesOne() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            let (project, token) = try await start(browser)
            let page = try await browser.get("/projects/\(project)")
            for name in ["development", "staging", "production"] {
                #expect(page.body.contains("data-testid=\"environment-\(name)\""))
            }
            #expect(page.body.components(separatedBy: "not created yet").count == 4)
            #expect(page.body.contains("No environment variables configured."))
            let saved = try await browser.post("/projects/\(project)/environments/staging/variables",
                                               [("_csrf", token), ("mode", "add"), ("key", "NODE_ENV"), ("value", "production"),
                                                ("variableType", "string"), ("isRequired", "true")])
            #expect(saved.status == .seeOther)
            #expect(saved.location == "/projects/\(project)?env=staging&done=saved#variables")
            let staging = try await browser.get("/projects/\(project)?env=staging&done=saved")
            #expect(staging.body.contains("<p class=\"notice\" role=\"status\">Variable saved.</p>"))
            #expect(staging.body.contains("<tr data-testid=\"variable-row\" data-key=\"NODE_ENV\">"))
            #expect(staging.body.contains("data-testid=\"variable-value\">production</code>"))
            #expect(staging.body.contains("1 variable</span>"))
            #expect(staging.body.components(separatedBy: "not created yet").count == 3)
        }
    }

    /// The add form chooses what a change does to the app, as the edit form does: restart (the default), a signal
    /// (reloadAction signal with that reloadSignal) or none; the stored choice shows in the variable's edit form.
    @Test func aNewVariableChoosesWhatAChangeDoesToTheApp() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            let (project, token) = try await start(browser)
            let blank = try await browser.get("/projects/\(project)?env=development")
            #expect(blank.body.contains("<select id=\"new-reload\" name=\"reloadAction\" aria-describedby=\"new-reload-hint\" data-testid=\"variable-reload-select\">"))
            #expect(blank.body.contains("<option value=\"restart\" selected>restart</option><option value=\"SIGHUP\">"))
            for (key, reload) in [("GREETING", "SIGUSR1"), ("FEATURE", "none")] {
                let saved = try await browser.post("/projects/\(project)/environments/development/variables",
                                                   [("_csrf", token), ("mode", "add"), ("key", key), ("value", "x"),
                                                    ("variableType", "string"), ("reloadAction", reload)])
                #expect(saved.status == .seeOther)
            }
            let page = try await browser.get("/projects/\(project)?env=development")
            #expect(page.body.contains("<select id=\"reload-GREETING\" name=\"reloadAction\" aria-describedby=\"reload-GREETING-hint\">"))
            #expect(page.body.contains("<option value=\"restart\">restart</option><option value=\"SIGHUP\">SIGHUP</option><option value=\"SIGUSR1\" selected>SIGUSR1</option>"))
            #expect(page.body.contains("<option value=\"none\" selected>none</option>"))
        }
    }

    @Test func validationErrorsAppearNextToTheirField() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            let (project, token) = try await start(browser)
            let badKey = try await browser.post("/projects/\(project)/environments/development/variables",
                                                [("_csrf", token), ("mode", "add"), ("key", "1BAD"), ("value", "x"), ("variableType", "string")])
            #expect(badKey.status == .badRequest)
            #expect(badKey.body.contains("<details class=\"add-variable\" open>"))
            #expect(badKey.body.contains("id=\"new-key-error\" data-testid=\"variable-key-error\">Key must match [A-Za-z_][A-Za-z0-9_]*"))
            #expect(badKey.body.contains("value=\"1BAD\""))
            let badNumber = try await browser.post("/projects/\(project)/environments/development/variables",
                                                   [("_csrf", token), ("mode", "add"), ("key", "PORT"), ("value", "eighty"), ("variableType", "number")])
            #expect(badNumber.status == .badRequest)
            #expect(badNumber.body.contains("data-testid=\"variable-value-error\">Value must be a number for variableType number</p>"))
            #expect(badNumber.body.contains("<option value=\"number\" selected>number</option>"))
            // Nothing was stored by either.
            #expect(try dashboard.sqlite("SELECT count(*) FROM environment_variables") == "0")
        }
    }

    @Test func secretsStayMaskedUntilAnAuditedReveal() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            let (project, token) = try await start(browser)
            try await browser.post("/projects/\(project)/environments/production/variables",
                                   [("_csrf", token), ("key", "API_KEY"), ("value", "sk-live-123"), ("variableType", "secret")])
            let masked = try await browser.get("/projects/\(project)?env=production")
            #expect(!masked.body.contains("sk-live-123"))
            #expect(masked.body.contains("<code class=\"value masked\" data-testid=\"variable-value\">********</code>"))
            // Not even the edit form holds it.
            #expect(masked.body.contains("data-testid=\"edit-variable-value-input\"></textarea>"))
            #expect(try dashboard.sqlite("SELECT count(*) FROM config_audit_logs WHERE action = 'reveal'") == "0")
            let revealed = try await browser.post("/projects/\(project)/environments/production/reveal", [("_csrf", token)])
            #expect(revealed.status == .ok)
            #expect(revealed.headers[.cacheControl] == "no-store")
            #expect(revealed.body.contains("<code class=\"value\" data-testid=\"variable-value\">sk-live-123</code>"))
            #expect(revealed.body.contains("data-testid=\"secrets-revealed\""))
            #expect(try dashboard.sqlite("SELECT count(*) FROM config_audit_logs WHERE action = 'reveal'") == "1")
            // A GET cannot reveal.
            #expect(!(try await browser.get("/projects/\(project)/environments/production/reveal").body.contains("sk-live-123")))
        }
    }

    @Test func editAndDeleteAVariable() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            let (project, token) = try await start(browser)
            let path = "/projects/\(project)/environments/development/variables"
            try await browser.post(path, [("_csrf", token), ("key", "PORT"), ("value", "8080"), ("variableType", "number")])
            let failed = try await browser.post(path, [("_csrf", token), ("mode", "edit"), ("key", "PORT"), ("value", "x"),
                                                       ("variableType", "number")])
            #expect(failed.status == .badRequest)
            #expect(failed.body.contains("<details class=\"row-actions\" open>"))
            #expect(failed.body.contains("<p class=\"field-error\" id=\"value-PORT-error\">Value must be a number for variableType number</p>"))
            #expect(!failed.body.contains("<details class=\"add-variable\" open>"))
            try await browser.post(path, [("_csrf", token), ("mode", "edit"), ("key", "PORT"), ("value", "9090"), ("variableType", "number")])
            #expect(try await browser.get("/projects/\(project)").body.contains("data-testid=\"variable-value\">9090</code>"))
            let deleted = try await browser.post(path + "/delete", [("_csrf", token), ("key", "PORT")])
            #expect(deleted.location == "/projects/\(project)?env=development&done=deleted#variables")
            let after = try await browser.get("/projects/\(project)")
            #expect(!after.body.contains("data-key=\"PORT\""))
            #expect(after.body.contains("No environment variables configured."))
        }
    }

    @Test func importAndExport() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            let (project, token) = try await start(browser)
            let base = "/projects/\(project)/environments/development"
            let imported = try await browser.post(base + "/import", [("_csrf", token), ("format", "dotenv"),
                                                                     ("content", "A=1\nB=\"two words\"\n")])
            #expect(imported.location == "/projects/\(project)?env=development&done=imported-2-0#variables")
            #expect(try await browser.get("/projects/\(project)?done=imported-2-0").body.contains("Imported 2 variables."))
            let json = try await browser.post(base + "/import", [("_csrf", token), ("format", "json"), ("content", #"{"A":"9","C":true}"#)])
            // JSON imports set every key they name (A is updated), as the API's import does.
            #expect(json.location == "/projects/\(project)?env=development&done=imported-2-0#variables")
            let broken = try await browser.post(base + "/import", [("_csrf", token), ("format", "json"), ("content", "[1]")])
            #expect(broken.status == .badRequest)
            #expect(broken.body.contains("data-testid=\"import-error\">validation failed: body must be a JSON object of string, number or boolean values</p>"))
            try await browser.post(base + "/variables", [("_csrf", token), ("key", "TOKEN"), ("value", "t0p"), ("variableType", "secret")])
            let dotenv = try await browser.get(base + "/export?format=dotenv")
            #expect(dotenv.headers[.contentDisposition] == "attachment; filename=\"shop-development.env\"")
            #expect(dotenv.body == "A=\"9\"\nB=\"two words\"\nC=\"true\"\nTOKEN=\"********\"\n")
            let exportedJSON = try await browser.get(base + "/export?format=json")
            #expect(exportedJSON.headers[.contentDisposition] == "attachment; filename=\"shop-development.json\"")
            #expect(exportedJSON.body.contains(#""TOKEN" : "********""#))
            let withSecrets = try await browser.post(base + "/export", [("_csrf", token), ("format", "dotenv")])
            #expect(withSecrets.body.contains("TOKEN=\"t0p\"\n"))
            #expect(try dashboard.sqlite("SELECT count(*) FROM config_audit_logs WHERE action = 'reveal'") == "1")
        }
    }

    @Test func applyATemplateWithOverrides() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, controlPlane, _ in
            let (project, token) = try await start(browser)
            let page = try await browser.get("/projects/\(project)?env=production")
            #expect(page.body.contains("data-testid=\"template-select\""))
            let user = try #require(try await controlPlane.store.credentials(email: "ada@example.com")).user
            let templates = try await controlPlane.configs.templates(category: nil, actor: Actor(userId: user.id))
            let template = try #require(templates.first { t in t.templateData.variables.contains { $0.isRequired && $0.defaultValue == nil } })
            let required = template.templateData.variables.filter { $0.isRequired && $0.defaultValue == nil }.map(\.key)
            let base = "/projects/\(project)/environments/production/template"
            let missing = try await browser.post(base, [("_csrf", token), ("templateId", template.id)])
            #expect(missing.status == .badRequest)
            #expect(missing.body.contains("data-testid=\"template-error\">validation failed: missing required variables: \(required.joined(separator: ", "))</p>"))
            let overrides = required.map { "\($0)=value-of-\($0.lowercased())" }.joined(separator: "\n")
            let applied = try await browser.post(base, [("_csrf", token), ("templateId", template.id), ("overrides", overrides)])
            #expect(applied.location == "/projects/\(project)?env=production&done=applied#variables")
            let after = try await browser.get("/projects/\(project)?env=production")
            for key in required { #expect(after.body.contains("data-key=\"\(key)\"")) }
            // The environment exists now: the template form is gone.
            #expect(!after.body.contains("data-testid=\"template-select\""))
        }
    }

    @Test func theAuditLogShowsTheChainCheck() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            let (project, token) = try await start(browser)
            try await browser.post("/projects/\(project)/environments/development/variables",
                                   [("_csrf", token), ("key", "A"), ("value", "1"), ("variableType", "string")])
            let audit = try await browser.get("/projects/\(project)/audit")
            #expect(audit.status == .ok)
            #expect(audit.body.contains("data-testid=\"audit-chain-status\">Intact: 2 entries checked"))
            #expect(audit.body.contains("<td>create</td><td>project"))
            #expect(audit.body.contains("<td>create</td><td>config"))
        }
    }

    @Test func signedOutVisitorsAreSentToSignIn() async throws {
        let dashboard = try Dashboard()
        try await dashboard.run { browser, _, _, _ in
            #expect(try await browser.get("/").location == "/login")
            let project = UUID().uuidString.lowercased()
            let page = try await browser.get("/projects/\(project)")
            #expect(page.status == .seeOther)
            #expect(page.location == "/login?next=/projects/\(project)")
            #expect(try await browser.post("/projects", [("name", "x")]).location == "/login?next=/projects")
            // After signing in from there, the visitor lands where they were going.
            let login = try await browser.get("/login?next=/dashboard")
            #expect(login.body.contains("name=\"next\" value=\"/dashboard\""))
            try await browser.register("ada@example.com")
            #expect(try await browser.get("/").location == "/dashboard")
            #expect(try await browser.get("/login").location == "/dashboard")
        }
    }
}
