// Projects, each owned by one user; another user's project does not exist for them (404).
import Foundation

public struct ProjectService: Sendable {
    let store: any ControlPlaneStore
    let configs: ConfigService
    /// Holds the agent-token cache that a deletion must empty.
    let deployments: DeploymentService

    public struct ProjectInput: Codable, Sendable {
        public var name: String?
        public var description: String?

        public init(name: String? = nil, description: String? = nil) {
            self.name = name
            self.description = description
        }
    }

    static func checkDescription(_ description: String?) throws(ControlPlaneError) {
        if let description, description.utf8.count > 4096 || description.utf8.contains(0) {
            throw .validation(field: "description", reason: "must be at most 4096 bytes without NUL")
        }
    }

    public func create(_ input: ProjectInput, actor: Actor) async throws -> Project {
        let name = try Validation.checkName(input.name)
        try Self.checkDescription(input.description)
        let now = configs.dependencies.now()
        let project = Project(id: newID(), ownerId: actor.userId ?? "", name: name, description: input.description,
                              createdAt: now, updatedAt: now)
        try await store.createProject(project, audit: configs.draft(
            actor, projectId: project.id, action: "create", resourceType: "project", resourceId: project.id, changes: ["name": name]))
        return project
    }

    public func list(actor: Actor) async throws -> [Project] {
        try await store.projects(ownerId: actor.userId ?? "")
    }

    public func get(_ id: String, actor: Actor) async throws -> Project {
        try await configs.ownedProject(id, actor: actor)
    }

    public func update(_ id: String, _ input: ProjectInput, actor: Actor) async throws -> Project {
        var project = try await configs.ownedProject(id, actor: actor)
        project.name = try Validation.checkName(input.name)
        try Self.checkDescription(input.description)
        project.description = input.description ?? project.description
        project.updatedAt = configs.dependencies.now()
        try await store.updateProject(project, audit: configs.draft(
            actor, projectId: id, action: "update", resourceType: "project", resourceId: id, changes: ["name": project.name]))
        return project
    }

    public func delete(_ id: String, actor: Actor) async throws {
        let deleted = try await store.deleteProject(id: id, ownerId: actor.userId ?? "", audit: configs.draft(
            actor, projectId: id, action: "delete", resourceType: "project", resourceId: id))
        guard deleted else { throw ControlPlaneError.notFound("project") }
        // Its deployments are gone (the store dropped their rendered configs): agents holding their tokens
        // must now be refused.
        deployments.forgetAllTokens()
    }
}
