// The project pages' values for the templates.
import ControlPlane
import Foundation

struct ProjectHeader {
    var id: String
    var name: String
    var description: String?

    init(_ project: Project) {
        id = project.id
        name = project.name
        description = project.description
    }
}

/// Which of the project's tabs is showing (Mustache sections test booleans).
struct ProjectTab {
    var config = false
    var deployments = false
    var audit = false

    static let config = ProjectTab(config: true)
    static let deployments = ProjectTab(deployments: true)
    static let audit = ProjectTab(audit: true)
}

struct EnvironmentTab {
    var name: String
    var href: String
    var current: Bool
    var summary: String
}

/// One option of a select (a variable's type, a deployment's environment).
/// One option of a select: a variable's type, a deployment's environment.
struct SelectOption {
    var value: String
    var selected: Bool

    static func list(_ values: [String], selected: String) -> [SelectOption] {
        values.map { SelectOption(value: $0, selected: $0 == selected) }
    }

    static func variableTypes(selected: String?) -> [SelectOption] {
        list(VariableType.allCases.map(\.rawValue), selected: selected ?? VariableType.string.rawValue)
    }

    /// A variable's reloadAction in one select: restart, a signal's name (reloadAction signal), or none.
    static let reloadChoices = ["restart", "SIGHUP", "SIGUSR1", "SIGUSR2", "none"]
}

struct VariableRow {
    var key: String
    var value: String
    var type: String
    var isSecret: Bool
    var isMasked: Bool
    var isRequired: Bool
    var description: String?
    var typeOptions: [SelectOption]
    /// What a change of it does to the app (the API's reloadAction and reloadSignal as one choice).
    var reloadOptions: [SelectOption]
    /// The row's edit form is open again after a failed save, with the reason.
    var editOpen: Bool
    var editValue: String
    var errors: [String: String]

    init(_ variable: EnvironmentVariable, editing: Bool, errors: [String: String], form: FormData) {
        key = variable.key
        value = variable.value
        type = variable.variableType.rawValue
        isSecret = variable.isEncrypted
        isMasked = variable.isMasked
        isRequired = variable.isRequired
        description = variable.description
        typeOptions = SelectOption.variableTypes(selected: editing ? form["variableType"] : variable.variableType.rawValue)
        let reload = variable.reloadAction == "signal" ? variable.reloadSignal ?? "SIGHUP" : variable.reloadAction
        reloadOptions = SelectOption.list(SelectOption.reloadChoices, selected: editing ? form["reloadAction"] ?? reload : reload)
        editOpen = editing
        // A secret's value is never put into a form: editing one means typing a new value.
        editValue = variable.isEncrypted ? "" : (editing ? form["value"] ?? "" : variable.value)
        self.errors = editing ? errors : [:]
    }
}

struct TemplateOption {
    var id: String
    var name: String
    var description: String
    var keys: String
}

struct ProjectPage {
    var chrome: Chrome
    var project: ProjectHeader
    var tab: ProjectTab
    var environment: String
    var environments: [EnvironmentTab]
    var exists: Bool
    var variables: [VariableRow]
    var hasVariables: Bool
    var hasSecrets: Bool
    var revealed: Bool
    var addOpen: Bool
    var newKey: String
    var newValue: String
    var newDescription: String
    var newRequired: Bool
    var typeOptions: [SelectOption]
    /// What a change of the new variable does to the app (restart unless chosen otherwise).
    var newReloadOptions: [SelectOption]
    var errors: [String: String]
    var formError: String?
    var importError: String?
    var templateError: String?
    var templates: [TemplateOption]
}

struct AuditRow {
    var sequence: Int64
    var timestamp: String
    var action: String
    var resource: String
    var changes: String

    init(_ entry: AuditEntry) {
        sequence = entry.sequence
        timestamp = entry.timestamp
        action = entry.action
        resource = entry.resourceType + (entry.resourceId.map { " \($0.prefix(8))" } ?? "")
        changes = entry.changes.keys.sorted().map { "\($0)=\(entry.changes[$0]!)" }.joined(separator: ", ")
    }
}

struct AuditBreakRow {
    var sequence: Int64
    var reason: String
}

struct AuditPage {
    var chrome: Chrome
    var project: ProjectHeader
    var tab: ProjectTab
    var intact: Bool
    var checked: Int
    var breaks: [AuditBreakRow]
    var entries: [AuditRow]
}

struct DeploymentRow {
    var id: String
    var name: String
    var environment: String
    var status: String
    var configVersion: Int64
    var command: String?
    var created: String

    init(_ deployment: Deployment) {
        id = deployment.id
        name = deployment.name
        environment = deployment.environment.rawValue
        status = deployment.status.rawValue
        configVersion = deployment.configVersion
        command = deployment.command
        created = Format.date(deployment.createdAt)
    }
}

struct InstanceRow: Encodable {
    var id: String
    var state: String
    var configVersion: String
    var hostname: String
    var lastHeartbeat: String
    var stale: Bool

    init(_ instance: Instance) {
        id = instance.instanceId
        state = instance.state
        configVersion = instance.configVersion.map(String.init) ?? "none yet"
        hostname = instance.hostname
        lastHeartbeat = Format.date(instance.lastHeartbeatAt)
        stale = instance.stale
    }
}

struct DeploymentPage {
    var chrome: Chrome
    var project: ProjectHeader
    var deployment: DeploymentRow
    var cpu: String
    var memory: String
    var pids: Int
    var instances: [InstanceRow]
    var hasInstances: Bool
    var scaling: ScalingSection
}
