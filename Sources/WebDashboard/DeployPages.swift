// The project's deploy tab (/projects/:id/deployments): deploy a new deployment, and stop, start or delete one.
// Each form calls the services behind the API (create and start, DeploymentLifecycle) as the signed-in user, so
// another user's project or deployment is "not found" there and Access Denied here; a 409 of the lifecycle is
// shown on the tab with its reason.
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird

extension WebDashboard {
    func addDeployPages(to router: Router<ControlPlaneContext>) {
        router.get("projects/:id/deployments") { request, context in
            try await handle(request, context, signedIn: true) { web in try await deploymentsPage(web) }
        }
        router.post("projects/:id/deployments") { request, context in
            try await handle(request, context, signedIn: true) { web in try await deploy(web) }
        }
        for action in LifecycleAction.allCases {
            router.post("deployments/:id/\(action.formName)") { request, context in
                try await handle(request, context, signedIn: true) { web in try await lifecycle(action, web) }
            }
        }
        addScalingPages(to: router)
    }

    /// How many of a deployment's last lines its card shows (the export has them all).
    static let cardLogLines = 20
    /// How many cards (the newest deployments that are not tombstones) get their last lines read from the agents
    /// when the tab is shown; the others fill from the live stream. Each read asks every instance's agent, so a
    /// page view must not cost one read per deployment the account holds.
    static let cardsWithLogs = 6

    /// The deployments whose last lines a view of the tab reads: the first `cardsWithLogs` live ones, in the
    /// tab's order (newest first).
    static func logTargets(_ deployments: [Deployment]) -> [String] {
        Array(deployments.filter { $0.status != .destroyed }.prefix(cardsWithLogs).map(\.id))
    }

    /// Creates the deployment as POST /api/deployments does, then starts it: the "deploy" of the plan's journey.
    func deploy(_ web: WebRequest) async throws -> Response {
        let project = try await controlPlane.projects.get(try web.parameter("id"), actor: web.actor)
        let form = web.form
        do {
            let environment = try Self.environment(form["environment"] ?? "", field: "environment")
            let command = form.nonEmpty("command")
            // Without a command and without the controller's default, the local executor would have nothing to
            // run: refused before anything is created, with the start's own reason.
            if command == nil, controlPlane.configuration.defaultCommand == nil, controlPlane.scaling.localExecutor != nil {
                throw ControlPlaneError.validation(field: "command", reason: "is required: \(LifecycleRules.noCommandReason)")
            }
            let input = DeploymentService.CreateDeployment(projectId: project.id, environment: environment.rawValue, command: command)
            let created = try await controlPlane.deployments.create(input, actor: web.actor)
            let started: DeploymentLifecycle.Started
            do { started = try await controlPlane.lifecycle.start(created.id, actor: web.actor) } catch let error as ControlPlaneError where error.status == 409 {
                // Created, but the start was refused (the account's instance limit): the card is there to start later.
                throw ControlPlaneError.conflict("the deployment was created but not started: \(error.message)")
            }
            if let failure = started.failure {
                return try await deploymentsPage(web, project: project, failure: "start failed: \(failure)", status: .badGateway)
            }
            return Redirect.to(Self.deploymentsURL(project.id, done: "deployed", deployment: created.id))
        } catch let error as ControlPlaneError where error.status == 400 || error.status == 409 {
            return try await deploymentsPage(web, project: project, deployError: error, status: .init(code: error.status))
        }
    }

    func lifecycle(_ action: LifecycleAction, _ web: WebRequest) async throws -> Response {
        let id = try web.parameter("id")
        let deployment = try await controlPlane.deployments.get(id, actor: web.actor)
        do {
            switch action {
            case .stop: _ = try await controlPlane.lifecycle.stop(id, actor: web.actor)
            case .start:
                let started = try await controlPlane.lifecycle.start(id, actor: web.actor)
                if let failure = started.failure {
                    return try await deploymentsPage(web, projectId: deployment.projectId, failure: "start failed: \(failure)",
                                                     status: .badGateway)
                }
            case .destroy: _ = try await controlPlane.lifecycle.destroy(id, actor: web.actor)
            }
            return Redirect.to(Self.deploymentsURL(deployment.projectId, done: action.doneName, deployment: id))
        } catch let error as ControlPlaneError where error.status == 409 {
            return try await deploymentsPage(web, projectId: deployment.projectId, failure: error.message, status: .conflict)
        }
    }

    static func deploymentsURL(_ projectId: String, done: String? = nil, deployment: String? = nil) -> String {
        "/projects/\(projectId)/deployments" + (done.map { "?done=\($0)" } ?? "") + (deployment.map { "#deployment-\($0)" } ?? "")
    }

    static func environment(_ raw: String, field: String) throws(ControlPlaneError) -> EnvironmentName {
        guard let environment = EnvironmentName(rawValue: raw) else {
            throw .validation(field: field, reason: "must be one of \(EnvironmentName.allCases.map(\.rawValue).joined(separator: ", "))")
        }
        return environment
    }

    /// The words of a `done=` link: a fixed list, so a crafted link cannot put words on the page.
    static func deployNotice(_ done: String?) -> String? {
        switch done {
        case "deployed": "Deployment created and started."
        case "stopped": "Deployment stopped."
        case "started": "Deployment started."
        case "destroyed": "Deployment deleted; its tombstone stays."
        default: nil
        }
    }

    func deploymentsPage(_ web: WebRequest, projectId: String? = nil, project known: Project? = nil, deployError: ControlPlaneError? = nil,
                         failure: String? = nil, status: HTTPResponse.Status = .ok) async throws -> Response {
        let project: Project
        if let known { project = known } else {
            project = try await controlPlane.projects.get(try projectId ?? web.parameter("id"), actor: web.actor)
        }
        let deployments = try await controlPlane.lifecycle.list(actor: web.actor)
            .filter { $0.projectId == project.id }
            .sorted { ($0.createdAt, $0.id) > ($1.createdAt, $1.id) }
        let logs = try await recentLines(of: Self.logTargets(deployments), web)
        let projects = try await controlPlane.projects.list(actor: web.actor)
        let errors = FieldErrors(deployError)
        let posted = deployError != nil
        let page = DeploymentsPage(
            chrome: chrome(web.visitor, title: "\(project.name): deployments", projects: projects, notice: Self.deployNotice(web.query("done"))),
            project: ProjectHeader(project), tab: .deployments,
            environments: SelectOption.list(EnvironmentName.allCases.map(\.rawValue),
                                             selected: (posted ? web.form["environment"] : nil) ?? EnvironmentName.development.rawValue),
            command: posted ? web.form["command"] ?? "" : "",
            defaultCommand: controlPlane.configuration.defaultCommand,
            errors: errors.errors, formError: errors.form, failure: failure,
            deployments: deployments.map { DeploymentCard($0, logs: logs[$0.id] ?? []) })
        return render("deployments", page, status: status)
    }

    /// The last lines of each deployment, read from its live agents at once (an agent that does not answer
    /// gives none; the page does not wait on it longer than the logs route does). A view counts as one read
    /// against the account's log-read limit; past it the cards show no lines until the live stream brings them,
    /// rather than the page failing.
    func recentLines(of ids: [String], _ web: WebRequest) async throws -> [String: [DeploymentLogLine]] {
        let controlPlane = self.controlPlane
        let actor = web.actor
        guard !ids.isEmpty else { return [:] }
        do { try controlPlane.admitLogRead(actor: actor) } catch { return [:] }
        return try await withThrowingTaskGroup(of: (String, [DeploymentLogLine]).self) { group in
            for id in ids {
                group.addTask { (id, try await controlPlane.recentLogs(id, tail: Self.cardLogLines, actor: actor).lines) }
            }
            var all: [String: [DeploymentLogLine]] = [:]
            for try await (id, lines) in group { all[id] = lines }
            return all
        }
    }
}

extension LifecycleAction {
    /// The path word of the dashboard's form (`/deployments/:id/delete` for destroy, as the button says).
    var formName: String {
        switch self {
        case .stop: "stop"
        case .start: "start"
        case .destroy: "delete"
        }
    }

    var doneName: String {
        switch self {
        case .stop: "stopped"
        case .start: "started"
        case .destroy: "destroyed"
        }
    }
}

// MARK: Views

struct DeploymentsPage {
    var chrome: Chrome
    var project: ProjectHeader
    var tab: ProjectTab
    var environments: [SelectOption]
    var command: String
    var defaultCommand: String?
    var errors: [String: String]
    var formError: String?
    /// A lifecycle call's refusal (409) or the executor's failure (502), in the API's words.
    var failure: String?
    var deployments: [DeploymentCard]
}

struct LogLineView {
    var timestamp: String
    var instance: String
    /// The whole instance id and the line's seq: live.js resumes after them, so these lines are not shown twice.
    var instanceId: String
    var seq: UInt64
    var level: String
    var stream: String
    var message: String
}

/// One deployment on the deploy tab, with the buttons its status allows.
struct DeploymentCard {
    var row: DeploymentRow
    var url: String?
    var logs: [LogLineView]
    var canStop: Bool
    var canStart: Bool
    var canDelete: Bool

    init(_ deployment: Deployment, logs: [DeploymentLogLine]) {
        row = DeploymentRow(deployment)
        url = deployment.url
        self.logs = logs.map {
            LogLineView(timestamp: $0.timestamp, instance: String($0.instanceId.prefix(8)), instanceId: $0.instanceId, seq: $0.seq,
                        level: $0.level, stream: $0.stream, message: $0.message)
        }
        let actions = DeploymentActions(deployment.status)
        canStop = actions.stop
        canStart = actions.start
        canDelete = actions.delete
    }
}

/// Which lifecycle buttons a deployment in `status` shows. The API decides what a call does (and answers 409
/// when it makes no sense); this only leaves out buttons that could do nothing.
struct DeploymentActions: Equatable {
    var stop: Bool
    var start: Bool
    var delete: Bool

    init(stop: Bool, start: Bool, delete: Bool) {
        self.stop = stop
        self.start = start
        self.delete = delete
    }

    init(_ status: DeploymentStatus) {
        switch status {
        case .destroyed: self.init(stop: false, start: false, delete: false)
        case .stopped: self.init(stop: false, start: true, delete: true)
        // PENDING: created (through the API) but never started; FAILED: a start tries again.
        case .pending, .failed: self.init(stop: true, start: true, delete: true)
        case .provisioning, .running: self.init(stop: true, start: false, delete: true)
        }
    }
}
