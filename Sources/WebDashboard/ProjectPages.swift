// /dashboard and /projects/:id: the projects, and each project's EnvironmentConfigManager (variables, secrets
// revealed only on an audited request, import and export, templates) and its audit log. Every page asks the
// services with the signed-in user as the actor: another user's project is "not found" there, Access Denied here.
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

extension WebDashboard {
    func addProjectPages(to router: Router<ControlPlaneContext>) {
        router.get("dashboard") { request, context in
            try await handle(request, context, signedIn: true) { web in try await dashboard(web) }
        }
        router.post("projects") { request, context in
            try await handle(request, context, signedIn: true) { web in
                let input = ProjectService.ProjectInput(name: web.form["name"], description: web.form.nonEmpty("description"))
                do {
                    _ = try await controlPlane.projects.create(input, actor: web.actor)
                    return Redirect.to("/dashboard")
                } catch let error as ControlPlaneError where error.status == 400 {
                    return try await dashboard(web, failed: error)
                }
            }
        }
        router.get("projects/:id") { request, context in
            try await handle(request, context, signedIn: true) { web in
                try await configPage(web, environment: try Self.environment(web.query("env") ?? "development"))
            }
        }
        router.post("projects/:id/environments/:env/variables") { request, context in
            try await handle(request, context, signedIn: true) { web in try await saveVariable(web) }
        }
        router.post("projects/:id/environments/:env/variables/delete") { request, context in
            try await handle(request, context, signedIn: true) { web in
                let (project, environment) = try await target(web)
                guard let config = try await environmentConfig(project, environment, web), let key = web.form["key"] else {
                    throw ControlPlaneError.notFound("variable")
                }
                try await controlPlane.configs.deleteVariable(configId: config.id, key: key, actor: web.actor)
                return Redirect.to(Self.configURL(project, environment, done: "deleted"))
            }
        }
        router.post("projects/:id/environments/:env/reveal") { request, context in
            try await handle(request, context, signedIn: true) { web in
                // A POST, not a link: revealing is an action (audited by the service), never a prefetch or a history entry.
                try await configPage(web, environment: try await target(web).1, reveal: true)
            }
        }
        router.get("projects/:id/environments/:env/export") { request, context in
            try await handle(request, context, signedIn: true) { web in try await export(web, reveal: false) }
        }
        router.post("projects/:id/environments/:env/export") { request, context in
            try await handle(request, context, signedIn: true) { web in try await export(web, reveal: true) }
        }
        router.post("projects/:id/environments/:env/import") { request, context in
            try await handle(request, context, signedIn: true) { web in try await importVariables(web) }
        }
        router.post("projects/:id/environments/:env/template") { request, context in
            try await handle(request, context, signedIn: true) { web in try await applyTemplate(web) }
        }
        router.get("projects/:id/audit") { request, context in
            try await handle(request, context, signedIn: true) { web in try await auditPage(web) }
        }
        router.get("deployments/:id") { request, context in
            try await handle(request, context, signedIn: true) { web in try await deploymentPage(web) }
        }
        addDeployPages(to: router)
    }

    // MARK: Dashboard

    func dashboard(_ web: WebRequest, failed error: ControlPlaneError? = nil) async throws -> Response {
        let projects = try await controlPlane.projects.list(actor: web.actor)
        let errors = FieldErrors(error)
        let page = DashboardPage(
            chrome: chrome(web.visitor, title: "Projects", projects: projects),
            projects: projects.map { ProjectCard(id: $0.id, name: $0.name, description: $0.description, created: Format.date($0.createdAt)) },
            createOpen: error != nil, formName: web.form["name"] ?? "", formDescription: web.form["description"] ?? "",
            errors: errors.errors, formError: errors.form)
        return render("dashboard", page, status: error.map { .init(code: $0.status) } ?? .ok)
    }

    // MARK: Configuration

    static func environment(_ raw: String) throws(ControlPlaneError) -> EnvironmentName {
        guard let environment = EnvironmentName(rawValue: raw) else { throw .notFound("environment") }
        return environment
    }

    static func configURL(_ project: Project, _ environment: EnvironmentName, done: String? = nil) -> String {
        "/projects/\(project.id)?env=\(environment.rawValue)" + (done.map { "&done=\($0)" } ?? "") + "#variables"
    }

    /// The project (owned by the signed-in user, else "not found") and the environment a form posted to.
    func target(_ web: WebRequest) async throws -> (Project, EnvironmentName) {
        let project = try await controlPlane.projects.get(try web.parameter("id"), actor: web.actor)
        return (project, try Self.environment(try web.parameter("env")))
    }

    /// The environment's configuration; a project may have none yet for it (one is created on first use).
    func environmentConfig(_ project: Project, _ environment: EnvironmentName, _ web: WebRequest) async throws -> EnvironmentConfig? {
        let configs = try await controlPlane.configs.environments(projectId: project.id, actor: web.actor)
        return configs.filter { $0.environment == environment }.min { $0.createdAt < $1.createdAt }
    }

    /// The environment's configuration, created (empty, named after the environment) if it does not exist yet.
    func configCreatingIfNeeded(_ project: Project, _ environment: EnvironmentName, _ web: WebRequest,
                                variables: [VariableInput] = []) async throws -> (config: EnvironmentConfig, created: Bool) {
        if let existing = try await environmentConfig(project, environment, web) { return (existing, false) }
        let created = try await controlPlane.configs.createEnvironment(
            projectId: project.id,
            ConfigService.CreateEnvironment(environment: environment.rawValue, name: environment.rawValue, variables: variables),
            actor: web.actor)
        return (created, true)
    }

    func saveVariable(_ web: WebRequest) async throws -> Response {
        let (project, environment) = try await target(web)
        let form = web.form
        let key = form["key"] ?? ""
        // One select for both fields: a signal's name means reloadAction signal; absent keeps the variable's.
        let reload = form.nonEmpty("reloadAction")
        let isSignal = reload?.hasPrefix("SIG") == true
        let input = VariableInput(
            key: key, value: form["value"] ?? "", isRequired: form.checked("isRequired"),
            description: form.nonEmpty("description"), variableType: form["variableType"].flatMap(VariableType.init(rawValue:)),
            reloadAction: isSignal ? "signal" : reload, reloadSignal: isSignal ? reload : nil)
        do {
            if form["variableType"].map({ VariableType(rawValue: $0) == nil }) == true {
                throw ControlPlaneError.validation(field: "variableType", reason: "must be one of \(VariableType.allCases.map(\.rawValue).joined(separator: ", "))")
            }
            let (config, created) = try await configCreatingIfNeeded(project, environment, web, variables: [input])
            if !created {
                _ = try await controlPlane.configs.setVariable(configId: config.id, key: key, input, actor: web.actor)
            }
            return Redirect.to(Self.configURL(project, environment, done: "saved"))
        } catch let error as ControlPlaneError where error.status == 400 {
            let editing = form["mode"] == "edit" ? key : nil
            return try await configPage(web, environment: environment, project: project,
                                        state: .init(variable: error, editingKey: editing), status: .badRequest)
        }
    }

    func export(_ web: WebRequest, reveal: Bool) async throws -> Response {
        let (project, environment) = try await target(web)
        guard let config = try await environmentConfig(project, environment, web) else { throw ControlPlaneError.notFound("environment config") }
        let format = (web.form["format"] ?? web.query("format")) == "json" ? "json" : "dotenv"
        let result = try await controlPlane.configs.export(configId: config.id, format: format, reveal: reveal, actor: web.actor)
        let body: String
        if let variables = result.variables {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
            body = String(decoding: try encoder.encode(variables), as: UTF8.self) + "\n"
        } else {
            body = result.content ?? ""
        }
        var headers = WebSecurity.pageHeaders()
        headers[.contentType] = format == "json" ? "application/json; charset=utf-8" : "text/plain; charset=utf-8"
        let file = "\(Self.fileName(project.name))-\(environment.rawValue)\(format == "json" ? ".json" : ".env")"
        headers[.contentDisposition] = "attachment; filename=\"\(file)\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// A project name as a file name: letters, digits, - and _ only.
    static func fileName(_ name: String) -> String {
        let kept = name.lowercased().map { $0.isASCII && ($0.isLetter || $0.isNumber) ? $0 : "-" }
        let text = String(kept).split(separator: "-").joined(separator: "-")
        return text.isEmpty ? "project" : text
    }

    func importVariables(_ web: WebRequest) async throws -> Response {
        let (project, environment) = try await target(web)
        let isJSON = web.form["format"] == "json"
        do {
            let (config, _) = try await configCreatingIfNeeded(project, environment, web)
            let result = try await controlPlane.configs.importVariables(
                configId: config.id, body: Array((web.form["content"] ?? "").utf8), isJSON: isJSON, actor: web.actor)
            return Redirect.to(Self.configURL(project, environment, done: "imported-\(result.imported.count)-\(result.skipped.count)"))
        } catch let error as ControlPlaneError where error.status == 400 {
            return try await configPage(web, environment: environment, project: project,
                                        state: .init(importError: error.message), status: .badRequest)
        }
    }

    func applyTemplate(_ web: WebRequest) async throws -> Response {
        let (project, environment) = try await target(web)
        do {
            var overrides: [String: String] = [:]
            if let text = web.form.nonEmpty("overrides") {
                do {
                    for pair in try Dotenv.parse(text) { overrides[pair.key] = pair.value }
                } catch {
                    throw ControlPlaneError.validation(field: "overrides", reason: "must be KEY=value lines (\(error))")
                }
            }
            _ = try await controlPlane.configs.applyTemplate(
                projectId: project.id,
                ConfigService.ApplyTemplate(templateId: web.form["templateId"], environment: environment.rawValue,
                                            name: environment.rawValue, overrides: overrides),
                actor: web.actor)
            return Redirect.to(Self.configURL(project, environment, done: "applied"))
        } catch let error as ControlPlaneError where error.status == 400 || error.status == 409 {
            return try await configPage(web, environment: environment, project: project,
                                        state: .init(templateError: error.message), status: .init(code: error.status))
        }
    }

    /// What a failed form leaves on the page: the reason next to its field, and the form open.
    struct ConfigFormState {
        var variable: ControlPlaneError?
        var editingKey: String?
        var importError: String?
        var templateError: String?
    }

    static func notice(_ done: String?) -> String? {
        guard let done else { return nil }
        switch done {
        case "saved": return "Variable saved."
        case "deleted": return "Variable deleted."
        case "applied": return "Template applied."
        default:
            // imported-<n>-<m>: numbers only, so a crafted link cannot put words on the page.
            let parts = done.split(separator: "-")
            guard parts.count == 3, parts[0] == "imported", let n = Int(parts[1]), let m = Int(parts[2]) else { return nil }
            return "Imported \(n) variable\(n == 1 ? "" : "s")" + (m > 0 ? "; skipped \(m)." : ".")
        }
    }

    func configPage(_ web: WebRequest, environment: EnvironmentName, project known: Project? = nil, reveal: Bool = false,
                    state: ConfigFormState = .init(), status: HTTPResponse.Status = .ok) async throws -> Response {
        let project: Project
        if let known { project = known } else { project = try await controlPlane.projects.get(try web.parameter("id"), actor: web.actor) }
        let configs = try await controlPlane.configs.environments(projectId: project.id, actor: web.actor)
        var current = configs.filter { $0.environment == environment }.min { $0.createdAt < $1.createdAt }
        if reveal, let shown = current {
            current = try await controlPlane.configs.environment(configId: shown.id, reveal: true, actor: web.actor)
        }
        let templates = current == nil ? try await controlPlane.configs.templates(category: nil, actor: web.actor) : []
        let projects = try await controlPlane.projects.list(actor: web.actor)
        let errors = FieldErrors(state.variable)
        let form = web.form
        let posted = state.variable != nil
        let page = ProjectPage(
            chrome: chrome(web.visitor, title: project.name, projects: projects, notice: Self.notice(web.query("done"))),
            project: ProjectHeader(project), tab: .config,
            environment: environment.rawValue,
            environments: EnvironmentName.allCases.map { name in
                let config = configs.filter { $0.environment == name }.min { $0.createdAt < $1.createdAt }
                return EnvironmentTab(name: name.rawValue, href: "/projects/\(project.id)?env=\(name.rawValue)#variables",
                                      current: name == environment,
                                      summary: config.map { "\($0.variables.count) variable\($0.variables.count == 1 ? "" : "s")" } ?? "not created yet")
            },
            exists: current != nil,
            variables: (current?.variables ?? []).sorted { $0.key < $1.key }.map { variable in
                VariableRow(variable, editing: posted && state.editingKey == variable.key, errors: errors.errors, form: form)
            },
            hasVariables: !(current?.variables ?? []).isEmpty,
            hasSecrets: current?.variables.contains { $0.isEncrypted } ?? false,
            revealed: reveal,
            addOpen: posted && state.editingKey == nil,
            newKey: posted && state.editingKey == nil ? form["key"] ?? "" : "",
            newValue: posted && state.editingKey == nil && form["variableType"] != "secret" ? form["value"] ?? "" : "",
            newDescription: posted && state.editingKey == nil ? form["description"] ?? "" : "",
            newRequired: posted && state.editingKey == nil && form.checked("isRequired"),
            typeOptions: SelectOption.variableTypes(selected: posted && state.editingKey == nil ? form["variableType"] : nil),
            newReloadOptions: SelectOption.list(SelectOption.reloadChoices,
                                                selected: posted && state.editingKey == nil ? form["reloadAction"] ?? "restart" : "restart"),
            errors: state.editingKey == nil ? errors.errors : [:], formError: state.editingKey == nil ? errors.form : nil,
            importError: state.importError, templateError: state.templateError,
            templates: templates.map { TemplateOption(id: $0.id, name: $0.name, description: $0.description,
                                                      keys: $0.templateData.variables.map(\.key).joined(separator: ", ")) })
        return render("project", page, status: status)
    }

    // MARK: Audit log and deployments

    func auditPage(_ web: WebRequest) async throws -> Response {
        let project = try await controlPlane.projects.get(try web.parameter("id"), actor: web.actor)
        let entries = try await controlPlane.configs.audit(projectId: project.id, limit: 200, actor: web.actor)
        let report = try await controlPlane.configs.verifyAudit(projectId: project.id, actor: web.actor)
        let projects = try await controlPlane.projects.list(actor: web.actor)
        let page = AuditPage(
            chrome: chrome(web.visitor, title: "\(project.name): audit log", projects: projects),
            project: ProjectHeader(project), tab: .audit,
            intact: report.valid, checked: report.entries,
            breaks: report.breaks.map { AuditBreakRow(sequence: $0.sequence, reason: $0.reason) },
            entries: entries.map(AuditRow.init))
        return render("audit", page)
    }

    /// One deployment without its live parts (logs and metrics arrive with the WebSocket streams): status,
    /// settings and the instances the registry knows.
    func deploymentPage(_ web: WebRequest, policyForm: PolicyFormState? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        let deployment = try await controlPlane.deployments.get(try web.parameter("id"), actor: web.actor)
        let project = try await controlPlane.projects.get(deployment.projectId, actor: web.actor)
        let instances = try await controlPlane.instances.instances(deploymentId: deployment.id)
        let projects = try await controlPlane.projects.list(actor: web.actor)
        let page = DeploymentPage(
            chrome: chrome(web.visitor, title: deployment.name, projects: projects, notice: Self.scalingNotice(web.query("done"))),
            project: ProjectHeader(project), deployment: DeploymentRow(deployment),
            cpu: String(format: "%g", deployment.cpuLimit), memory: ByteCountFormatter.string(fromByteCount: Int64(deployment.memoryLimit), countStyle: .memory),
            pids: deployment.pidsLimit,
            instances: instances.sorted { $0.instanceId < $1.instanceId }.map(InstanceRow.init), hasInstances: !instances.isEmpty,
            scaling: try await scalingSection(deployment, form: policyForm))
        return render("deployment", page, status: status)
    }
}
