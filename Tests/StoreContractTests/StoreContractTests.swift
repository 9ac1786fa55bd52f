// The store's guarantees, checked against SQLite and PostgreSQL alike: what a service may rely on whichever
// backend the controller runs on.
import CodeRunnerWire
import ControlPlane
import Foundation
import Scaling
import Sealing
import Testing

@Suite("Store contract", .serialized)
struct StoreContractTests {
    @Test("users, API tokens, browser sessions and registration rules", arguments: Backend.allCases)
    func users(_ backend: Backend) async throws {
        try await Fixture.withStore(backend) { store in
            let alice = try await store.makeUser("alice")
            #expect(alice == User(id: "alice", email: "alice@example.com", isAdmin: true, createdAt: t0))
            let bob = try await store.makeUser("bob", at: 5)
            #expect(bob.isAdmin == false)
            await #expect(throws: StoreError.conflict("a user with this email already exists")) {
                try await store.createUser(id: "bob2", email: "bob@example.com", passwordHash: "x", adminEmail: nil, rule: .open, now: t0)
            }
            await #expect(throws: RegistrationRefusal.closed) {
                try await store.createUser(id: "c", email: "c@example.com", passwordHash: "x", adminEmail: nil, rule: .closed, now: t0)
            }
            await #expect(throws: RegistrationRefusal.firstUserExists) {
                try await store.createUser(id: "c", email: "c@example.com", passwordHash: "x", adminEmail: nil, rule: .firstUserOnly, now: t0)
            }
            let credentials = try #require(try await store.credentials(email: "bob@example.com"))
            #expect(credentials.user == bob)
            #expect(credentials.passwordHash == "hash-bob")
            #expect(try await store.credentials(email: "nobody@example.com") == nil)

            // Invites: used once, in the registration's transaction, and audited.
            try await store.createInvite(id: "inv1", codeHash: "code-hash", createdBy: "alice", expiresAt: at(3600),
                                         audit: audit("alice", nil, "create_invite"))
            await #expect(throws: RegistrationRefusal.inviteInvalid) {
                try await store.createUser(id: "c", email: "c@example.com", passwordHash: "x", adminEmail: nil,
                                           rule: .invite(codeHash: "wrong"), now: at(10))
            }
            let carol = try await store.createUser(id: "c", email: "c@example.com", passwordHash: "x", adminEmail: nil,
                                                   rule: .invite(codeHash: "code-hash"), now: at(10))
            #expect(carol.isAdmin == false)
            await #expect(throws: RegistrationRefusal.inviteInvalid) {
                try await store.createUser(id: "d", email: "d@example.com", passwordHash: "x", adminEmail: nil,
                                           rule: .invite(codeHash: "code-hash"), now: at(11))
            }
            #expect(try await store.auditChain(projectId: nil).map(\.fields.action) == ["create_invite", "use"])

            try await store.insertAPIToken(hash: "tok", userId: "bob", expiresAt: at(100), now: t0)
            #expect(try await store.user(forTokenHash: "tok", now: at(50)) == bob)
            #expect(try await store.session(forTokenHash: "tok", now: at(50))?.expiresAt == at(100))
            #expect(try await store.user(forTokenHash: "tok", now: at(100)) == nil)
            // A token is not a browser session, nor the reverse.
            #expect(try await store.user(forBrowserSessionHash: "tok", now: at(50)) == nil)
            try await store.revokeAPIToken(hash: "tok", now: at(60))
            #expect(try await store.user(forTokenHash: "tok", now: at(61)) == nil)

            try await store.insertBrowserSession(hash: "cookie", userId: "alice", expiresAt: at(100), now: t0)
            #expect(try await store.browserSession(forTokenHash: "cookie", now: at(1))?.user == alice)
            #expect(try await store.user(forTokenHash: "cookie", now: at(1)) == nil)
            try await store.revokeBrowserSession(hash: "cookie", now: at(2))
            #expect(try await store.user(forBrowserSessionHash: "cookie", now: at(3)) == nil)
        }
    }

    @Test("a tenant never reads or changes another's projects, configs or deployments", arguments: Backend.allCases)
    func tenantIsolation(_ backend: Backend) async throws {
        try await Fixture.withStore(backend) { store in
            try await store.makeUser("alice")
            try await store.makeUser("mallory")
            var project = try await store.makeProject("p1", owner: "alice")
            let config = StoredConfig(id: "c1", projectId: "p1", environment: .production, name: "main", description: nil,
                                      isActive: true, createdAt: t0, updatedAt: t0,
                                      variables: [variable("v1", config: "c1", key: "PORT", .plain("8080"))])
            try await store.createConfig(config, audit: audit("alice", "p1", "create_config"))
            try await store.makeDeployment("d1", project: "p1")

            #expect(try await store.projects(ownerId: "mallory") == [])
            #expect(try await store.project(id: "p1", ownerId: "mallory") == nil)
            #expect(try await store.config(id: "c1", ownerId: "mallory") == nil)
            #expect(try await store.deployments(ownerId: "mallory") == [])
            #expect(try await store.deployment(id: "d1", ownerId: "mallory") == nil)
            var stolen = project
            stolen.ownerId = "mallory"
            stolen.name = "mine now"
            await #expect(throws: StoreError.notFound("project")) {
                try await store.updateProject(stolen, audit: audit("mallory", "p1", "update_project"))
            }
            #expect(try await store.deleteProject(id: "p1", ownerId: "mallory", audit: audit("mallory", "p1", "delete_project")) == false)

            #expect(try await store.projects(ownerId: "alice") == [project])
            #expect(try await store.config(id: "c1", ownerId: "alice") == config)
            project.name = "renamed"
            project.updatedAt = at(7)
            try await store.updateProject(project, audit: audit("alice", "p1", "update_project"))
            #expect(try await store.project(id: "p1", ownerId: "alice") == project)
            #expect(try await store.deployment(id: "d1", ownerId: "alice")?.name == "deployment d1")
            // Only the owner's writes are in the project's chain.
            #expect(try await store.auditChain(projectId: "p1").map(\.fields.userId) == ["alice", "alice", "alice", "alice"])
        }
    }

    @Test("configs and variables: create, upsert, delete, publish, snapshot", arguments: Backend.allCases)
    func configsAndVariables(_ backend: Backend) async throws {
        let log = ChangeLog()
        try await Fixture.withStore(backend, subscriber: log) { store in
            try await store.makeUser("alice")
            try await store.makeProject("p1", owner: "alice")
            try await store.makeDeployment("d1", project: "p1")
            try await store.makeDeployment("d2", project: "p1", environment: .staging)
            let sealedBytes: [UInt8] = [1, 2, 3, 0, 255, 254]
            let config = StoredConfig(
                id: "c1", projectId: "p1", environment: .production, name: "main", description: "the main one",
                isActive: true, createdAt: t0, updatedAt: t0,
                variables: [variable("v1", config: "c1", key: "API_KEY", .sealed(sealedBytes)),
                            variable("v2", config: "c1", key: "PORT", .plain("8080"), reload: .signal(.hup))])
            try await store.createConfig(config, audit: audit("alice", "p1", "create_config"))
            #expect(try await store.configs(projectId: "p1") == [config])
            #expect(log.all == [ConfigChanges(versions: [DeploymentVersion(deploymentId: "d1", version: 2)])])

            await #expect(throws: StoreError.conflict("an environment config with this project, environment and name already exists")) {
                try await store.createConfig(StoredConfig(id: "c2", projectId: "p1", environment: .production, name: "main",
                                                          description: nil, isActive: true, createdAt: t0, updatedAt: t0, variables: []),
                                             audit: audit("alice", "p1", "create_config"))
            }

            // An upsert keeps the id and createdAt of the key it replaces.
            try await store.upsertVariables(configId: "c1", [variable("ignored", config: "c1", key: "PORT", .plain("9090"), at: 30),
                                                             variable("v3", config: "c1", key: "DEBUG", .plain("1"), at: 30)],
                                            audit: audit("alice", "p1", "update_variables", at: 30))
            let stored = try #require(try await store.config(id: "c1", ownerId: "alice"))
            #expect(stored.updatedAt == at(30))
            #expect(stored.variables.map(\.key) == ["API_KEY", "DEBUG", "PORT"])
            let port = try #require(stored.variables.first { $0.key == "PORT" })
            #expect(port.id == "v2")
            #expect(port.createdAt == t0)
            #expect(port.updatedAt == at(30))
            #expect(port.value == .plain("9090"))
            #expect(port.reload == .restart)
            #expect(stored.variables.first { $0.key == "API_KEY" }?.value == .sealed(sealedBytes))

            #expect(try await store.deleteVariable(configId: "c1", key: "DEBUG", audit: audit("alice", "p1", "delete_variable")))
            #expect(try await store.deleteVariable(configId: "c1", key: "DEBUG", audit: audit("alice", "p1", "delete_variable")) == false)
            #expect(try await store.deleteVariable(configId: "nope", key: "X", audit: audit("alice", "p1", "delete_variable")) == false)
            await #expect(throws: StoreError.notFound("environment config")) {
                try await store.upsertVariables(configId: "nope", [], audit: audit("alice", "p1", "update_variables"))
            }

            let snapshot = try #require(try await store.agentSnapshot(deploymentId: "d1"))
            #expect(snapshot.version == 4)
            #expect(snapshot.projectId == "p1")
            #expect(snapshot.variables.map(\.key) == ["API_KEY", "PORT"])
            #expect(try await store.agentSnapshot(deploymentId: "d2")?.variables == [])
            #expect(try await store.agentSnapshot(deploymentId: "nope") == nil)
            #expect(log.all.map { $0.versions.map(\.version) } == [[2], [3], [4]])

            #expect(try await store.bumpVersion(deploymentId: "d1", audit: audit("alice", "p1", "reload")) == 5)
            #expect(try await store.agentSnapshot(deploymentId: "d1")?.reloadVersion == 5)

            // Several configs of the environment: the active ones' variables, the oldest config's first (a later
            // one's key overrides when the agent renders them), an empty one adding nothing, an inactive one nothing.
            for (id, name, active, seconds, variables) in [("c4", "later", true, 40, [variable("v4", config: "c4", key: "ALPHA", .plain("a"))]),
                                                      ("c5", "empty", true, 41, []),
                                                      ("c6", "off", false, 42, [variable("v6", config: "c6", key: "BETA", .plain("b"))])] {
                try await store.createConfig(StoredConfig(id: id, projectId: "p1", environment: .production, name: name, description: nil,
                                                          isActive: active, createdAt: at(seconds), updatedAt: at(seconds), variables: variables),
                                             audit: audit("alice", "p1", "create_config"))
            }
            #expect(try await store.agentSnapshot(deploymentId: "d1")?.variables.map(\.key) == ["API_KEY", "PORT", "ALPHA"])

            #expect(try await store.deleteProject(id: "p1", ownerId: "alice", audit: audit("alice", "p1", "delete_project")))
            #expect(Set(log.all.last?.removed ?? []) == ["d1", "d2"])
            #expect(try await store.configs(projectId: "p1") == [])
            #expect(try await store.agentSnapshot(deploymentId: "d1") == nil)
            // The history outlives what it describes.
            #expect(verified(try await store.auditChain(projectId: "p1")) == [])
            #expect(try await store.auditChain(projectId: "p1").count == 11)  // 8, and the three configs of the snapshot check
        }
    }

    @Test("templates: official seeds, per-owner names, apply", arguments: Backend.allCases)
    func templates(_ backend: Backend) async throws {
        try await Fixture.withStore(backend) { store in
            try await store.makeUser("alice")
            try await store.makeUser("bob")
            try await store.makeProject("p1", owner: "alice")
            let data = TemplateData(variables: [TemplateVariable(key: "PORT", description: "port")], environments: [.production])
            func template(_ id: String, _ name: String, official: Bool = false) -> ConfigTemplate {
                ConfigTemplate(id: id, name: name, description: "d", category: "web", isOfficial: official, usageCount: 0,
                               templateData: data, createdAt: t0, updatedAt: t0)
            }
            try await store.seedTemplates([template("o1", "Node", official: true)])
            try await store.seedTemplates([template("o2", "Node", official: true)])
            try await store.createTemplate(template("a1", "Mine"), ownerId: "alice", audit: audit("alice", nil, "create_template"))
            try await store.createTemplate(template("b1", "Mine"), ownerId: "bob", audit: audit("bob", nil, "create_template"))
            await #expect(throws: StoreError.conflict("you already have a template with this name")) {
                try await store.createTemplate(template("a2", "Mine"), ownerId: "alice", audit: audit("alice", nil, "create_template"))
            }
            #expect(try await store.templates(category: nil, ownerId: "alice").map(\.id) == ["o1", "a1"])
            #expect(try await store.templates(category: "db", ownerId: "alice") == [])
            #expect(try await store.template(id: "b1", ownerId: "alice") == nil)
            #expect(try await store.template(id: "o1", ownerId: "alice") == template("o1", "Node", official: true))

            let config = StoredConfig(id: "c1", projectId: "p1", environment: .production, name: "from template", description: nil,
                                      isActive: true, createdAt: t0, updatedAt: t0,
                                      variables: [variable("v1", config: "c1", key: "PORT", .plain("3000"))])
            try await store.applyTemplate(templateId: "o1", config: config, audit: audit("alice", "p1", "apply_template"))
            #expect(try await store.template(id: "o1", ownerId: "alice")?.usageCount == 1)
            #expect(try await store.configs(projectId: "p1") == [config])
        }
    }

    @Test("the audit chain is linear, verifies, and reads newest first", arguments: Backend.allCases)
    func auditChain(_ backend: Backend) async throws {
        try await Fixture.withStore(backend) { store in
            try await store.makeUser("alice")
            try await store.makeProject("p1", owner: "alice")
            try await store.makeProject("p2", owner: "alice")
            for i in 0..<20 {
                var draft = audit("alice", i.isMultiple(of: 2) ? "p1" : "p2", "action\(i)", at: i)
                draft.changes = ["i": String(i), "secret": "[REDACTED]"]
                draft.ipAddress = "127.0.0.1"
                try await store.appendAudit(draft)
            }
            let p1 = try await store.auditChain(projectId: "p1")
            #expect(p1.count == 11)
            #expect(verified(p1) == [])
            #expect(p1.first?.previousHash == AuditChain.genesis)
            #expect(zip(p1, p1.dropFirst()).allSatisfy { $0.sequence < $1.sequence && $1.previousHash == $0.hash })
            #expect(verified(try await store.auditChain(projectId: "p2")) == [])
            let newest = try await store.auditEntries(projectId: "p1", limit: 3)
            #expect(newest.map(\.action) == ["action18", "action16", "action14"])
            #expect(newest.first?.changes == ["i": "18", "secret": "[REDACTED]"])
            #expect(newest.first?.timestamp == Timestamps.format(at(18)))
            #expect(newest.first?.ipAddress == "127.0.0.1")
        }
    }

    @Test("key rotation re-seals every secret in one transaction; a bad ciphertext is reported and left", arguments: Backend.allCases)
    func keyRotation(_ backend: Backend) async throws {
        try await Fixture.withStore(backend) { store in
            try await store.makeUser("alice")
            try await store.makeProject("p1", owner: "alice")
            let keyring = try Keyring(master: .generate(), keys: [])
            _ = keyring.addVersion(now: 0)
            try await store.saveDataKeys(keyring.keys)
            func seal(_ text: String, _ key: String) throws -> StoredValue {
                .sealed(try keyring.seal(Array(text.utf8), aad: Keyring.aad(configId: "c1", key: key)))
            }
            let config = StoredConfig(id: "c1", projectId: "p1", environment: .production, name: "main", description: nil,
                                      isActive: true, createdAt: t0, updatedAt: t0,
                                      variables: [variable("v1", config: "c1", key: "A", try seal("alpha", "A")),
                                                  variable("v2", config: "c1", key: "B", try seal("beta", "B")),
                                                  // Sealed for another key: fails authentication, as a tampered row would.
                                                  variable("v3", config: "c1", key: "C", try seal("gamma", "elsewhere")),
                                                  variable("v4", config: "c1", key: "PLAIN", .plain("visible"))])
            try await store.createConfig(config, audit: audit("alice", "p1", "create_config"))

            let added = keyring.addVersion(now: 1)
            let report = try await store.rewrapSecrets(audit: audit("alice", nil, "rotate_keys"), keys: { keyring.keys }) {
                try keyring.rewrap($0, aad: Keyring.aad(configId: $1, key: $2))
            }
            #expect(report == RewrapReport(rewrapped: 2, corrupted: ["v3"]))
            #expect(try await store.dataKeys() == keyring.keys)
            #expect(try await store.dataKeys().map(\.version) == [1, 2])
            let variables = try #require(try await store.config(id: "c1", ownerId: "alice")).variables
            for v in variables {
                guard case .sealed(let bytes) = v.value else { #expect(v.key == "PLAIN"); continue }
                if v.key == "C" {
                    #expect(try Keyring.keyVersion(of: bytes) == 1)
                } else {
                    #expect(try Keyring.keyVersion(of: bytes) == added.version)
                    let plain = try keyring.open(bytes, aad: Keyring.aad(configId: "c1", key: v.key))
                    #expect(String(decoding: plain, as: UTF8.self) == (v.key == "A" ? "alpha" : "beta"))
                }
            }
            let record = try #require(try await store.auditChain(projectId: nil).last)
            #expect(record.fields.action == "rotate_keys")
            #expect(AuditChain.decodeChanges(record.fields.changesJSON) == ["rewrapped": "2", "corrupted": "v3"])
        }
    }

    @Test("rollouts: kept config versions, a rollback's version, the rollout row, and their rewrap", arguments: Backend.allCases)
    func rollouts(_ backend: Backend) async throws {
        try await Fixture.withStore(backend) { store in
            try await store.makeUser("alice")
            try await store.makeProject("p1", owner: "alice")
            try await store.makeDeployment("d1", project: "p1")
            try await store.makeDeployment("d2", project: "p1")
            let keyring = try Keyring(master: .generate(), keys: [])
            _ = keyring.addVersion(now: 0)
            try await store.saveDataKeys(keyring.keys)
            func sealed(_ text: String, _ version: Int64) throws -> [UInt8] {
                try keyring.seal(Array(text.utf8), aad: Keyring.aad(configId: "rollout-version:d1", key: String(version)))
            }
            #expect(try await store.configVersion(deploymentId: "d1") == 1)
            #expect(try await store.configVersion(deploymentId: "gone") == nil)
            #expect(try await store.projectId(deploymentId: "d1") == "p1")
            // Kept versions: the first copy wins; the newest below a version; pruned below a floor.
            let v1 = try sealed("one", 1)
            try await store.keepConfigVersion(deploymentId: "d1", version: 1, sealed: v1, now: t0)
            try await store.keepConfigVersion(deploymentId: "d1", version: 1, sealed: try sealed("other", 1), now: t0)
            #expect(try await store.keptConfigVersion(deploymentId: "d1", version: 1) == v1)
            #expect(try await store.keptConfigVersion(deploymentId: "d1", version: 2) == nil)
            try await store.keepConfigVersion(deploymentId: "d1", version: 3, sealed: try sealed("three", 3), now: t0)
            #expect(try await store.newestKeptConfigVersion(deploymentId: "d1", below: 3) == 1)
            #expect(try await store.newestKeptConfigVersion(deploymentId: "d1", below: 1) == nil)
            // A rollback: the deployment's version moves on and that version is kept, in one transaction.
            let rolledBack = try await store.appendKeptConfigVersion(deploymentId: "d1", now: at(5)) { version in
                try keyring.seal(Array("one, as \(version)".utf8), aad: Keyring.aad(configId: "rollout-version:d1", key: String(version)))
            }
            #expect(rolledBack == 2)
            #expect(try await store.configVersion(deploymentId: "d1") == 2)
            let kept = try #require(try await store.keptConfigVersion(deploymentId: "d1", version: 2))
            #expect(String(decoding: try keyring.open(kept, aad: Keyring.aad(configId: "rollout-version:d1", key: "2")), as: UTF8.self) == "one, as 2")
            _ = try await store.applyLifecycle(.stop, deploymentId: "d2", running: 0, now: at(6), audit: audit("alice", "p1", "stop"))
            _ = try await store.applyLifecycle(.destroy, deploymentId: "d2", running: 0, now: at(7), audit: audit("alice", "p1", "destroy"))
            #expect(try await store.appendKeptConfigVersion(deploymentId: "d2", now: at(8)) { _ in [1] } == nil)

            // The rollout row: written while the deployment exists; under way while it has a current plan.
            #expect(try await store.rollout(deploymentId: "d1") == nil)
            let row = StoredRollout(strategy: #"{"strategy":"rolling"}"#, currentPlan: #"{"version":3}"#, lastPlan: nil)
            try await store.saveRollout(deploymentId: "d1", row, now: at(9))
            try await store.saveRollout(deploymentId: "gone", row, now: at(9))
            #expect(try await store.rollout(deploymentId: "d1") == row)
            #expect(try await store.rollout(deploymentId: "gone") == nil)
            #expect(try await store.deploymentsWithCurrentRollouts() == ["d1"])
            try await store.saveRollout(deploymentId: "d1", StoredRollout(strategy: row.strategy, currentPlan: nil, lastPlan: row.currentPlan), now: at(10))
            #expect(try await store.deploymentsWithCurrentRollouts() == [])

            // A key rotation moves the kept versions to the new key with the secrets, in the same transaction.
            let added = keyring.addVersion(now: 1)
            let report = try await store.rewrapSecrets(audit: audit("alice", nil, "rotate_keys"), keys: { keyring.keys }) {
                try keyring.rewrap($0, aad: Keyring.aad(configId: $1, key: $2))
            }
            #expect(report == RewrapReport(rewrapped: 0, corrupted: []))
            for version: Int64 in [1, 2, 3] {
                let bytes = try #require(try await store.keptConfigVersion(deploymentId: "d1", version: version))
                #expect(try Keyring.keyVersion(of: bytes) == added.version)
            }
            let record = try #require(try await store.auditChain(projectId: nil).last)
            #expect(AuditChain.decodeChanges(record.fields.changesJSON)["rewrappedConfigVersions"] == "3")
            try await store.dropKeptConfigVersions(below: [DeploymentVersion(deploymentId: "d1", version: 3),
                                                           DeploymentVersion(deploymentId: "elsewhere", version: 9)])
            #expect(try await store.newestKeptConfigVersion(deploymentId: "d1", below: 10) == 3)
            #expect(try await store.keptConfigVersion(deploymentId: "d1", version: 2) == nil)
            #expect(try await store.keptConfigVersion(deploymentId: "d1", version: 1) == nil)
        }
    }

    @Test("instances: the cap, heartbeats, reports, staleness and the deployment's status", arguments: Backend.allCases)
    func instances(_ backend: Backend) async throws {
        try await Fixture.withStore(backend) { store in
            try await store.makeUser("alice")
            try await store.makeProject("p1", owner: "alice")
            try await store.makeDeployment("d1", project: "p1")
            try await store.makeDeployment("d2", project: "p1")
            func registration(_ id: String, state: String = "starting") -> AgentRegistration {
                AgentRegistration(instanceId: id, metricsUrl: "http://127.0.0.1:9\(id.suffix(1))/metrics",
                                  agentVersion: "1.0", hostname: "h", pid: 41, configVersion: 1, state: state)
            }
            let clock = InstanceClock(now: at(10), staleAfter: 30)
            #expect(try await store.registerInstance(deploymentId: "d1", registration("i1"), cap: 2, clock: clock))
            #expect(try await store.registerInstance(deploymentId: "d1", registration("i2"), cap: 2, clock: clock.advanced(1)))
            // Past the cap a new instance is refused; a known one re-registers.
            await #expect(throws: ControlPlaneError.conflict(InstanceRules.capReason(live: 2, cap: 2))) {
                try await store.registerInstance(deploymentId: "d1", registration("i3"), cap: 2, clock: clock)
            }
            #expect(try await store.registerInstance(deploymentId: "d1", registration("i2", state: "running"), cap: 2, clock: clock.advanced(2)) == false)
            #expect(try await store.deployment(id: "d1", ownerId: "alice")?.status == .running)
            // Newest registration first; the other deployment's are apart.
            #expect(try await store.registerInstance(deploymentId: "d2", registration("j1"), cap: 2, clock: clock))
            let listed = try await store.instances(deploymentId: "d1", clock: clock.advanced(2))
            #expect(listed.map(\.instanceId) == ["i2", "i1"])
            #expect(listed.first == Instance(deploymentId: "d1", instanceId: "i2", metricsUrl: "http://127.0.0.1:92/metrics",
                                             agentVersion: "1.0", hostname: "h", pid: 41, configVersion: 1, configChecksum: nil,
                                             state: "running", registeredAt: at(12), lastHeartbeatAt: at(12), lastReport: nil, clock: clock))
            #expect(try await store.allInstances(clock: clock).map(\.instanceId) == ["i2", "i1", "j1"])

            // Heartbeats move state and version; an unknown instance is false (the agent registers again).
            #expect(try await store.recordHeartbeat(deploymentId: "d1", AgentHeartbeat(instanceId: "i1", state: "backoff",
                                                                                          configVersion: 2, configChecksum: "c2"), clock: clock.advanced(20)))
            #expect(try await store.recordHeartbeat(deploymentId: "d1", AgentHeartbeat(instanceId: "nope", state: "running",
                                                                                          configVersion: 2, configChecksum: nil), clock: clock) == false)
            // A notable report is kept; a routine one moves the version. Both name the project.
            let refused = ConfigReport(instanceId: "i1", version: 3, checksum: "c3", result: .rolledBack, reason: "PORT invalid")
            #expect(try await store.recordConfigReport(deploymentId: "d1", refused, notable: true, now: at(31)) == "p1")
            let applied = ConfigReport(instanceId: "i1", version: 4, checksum: "c4", result: .applied, reason: nil)
            #expect(try await store.recordConfigReport(deploymentId: "d1", applied, notable: false, now: at(32)) == "p1")
            await #expect(throws: ControlPlaneError.notFound("instance")) {
                try await store.recordConfigReport(deploymentId: "d1", ConfigReport(instanceId: "nope", version: 1, checksum: nil,
                                                                                    result: .applied, reason: nil), notable: false, now: at(32))
            }
            // 40 s after i2's last heartbeat it is stale: i1 alone is live, in backoff, so the deployment FAILED.
            let later = InstanceClock(now: at(52), staleAfter: 30)
            let i1 = try #require(try await store.instances(deploymentId: "d1", clock: later).first { $0.instanceId == "i1" })
            #expect(i1.state == "backoff")
            #expect(i1.configVersion == 4)
            #expect(i1.configChecksum == "c4")
            #expect(i1.lastReport == InstanceReport(version: 3, checksum: "c3", result: "rolled_back", reason: "PORT invalid", reportedAt: at(31)))
            #expect(try await store.instances(deploymentId: "d1", clock: later).filter(\.isLive).map(\.instanceId) == ["i1"])
            #expect(try await store.refreshDeploymentStatuses(clock: later).sorted() == ["d1", "d2"])
            #expect(try await store.deployment(id: "d1", ownerId: "alice")?.status == .failed)
            // A stale instance frees its place under the cap.
            #expect(try await store.registerInstance(deploymentId: "d1", registration("i3"), cap: 2, clock: later))
            // Exited once; the last live one gone leaves the deployment STOPPED.
            #expect(try await store.markInstanceExited(deploymentId: "d1", instanceId: "i1", clock: later))
            #expect(try await store.markInstanceExited(deploymentId: "d1", instanceId: "i1", clock: later) == false)
            #expect(try await store.markInstanceExited(deploymentId: "d1", instanceId: "i3", clock: later))
            #expect(try await store.deployment(id: "d1", ownerId: "alice")?.status == .stopped)
            // The owner's stop pins the status; a tombstone refuses registrations.
            _ = try await store.applyLifecycle(.stop, deploymentId: "d2", running: 0, now: at(60), audit: audit("alice", "p1", "stop"))
            #expect(try await store.registerInstance(deploymentId: "d2", registration("j2", state: "running"), cap: 2, clock: later.advanced(9)))
            #expect(try await store.deployment(id: "d2", ownerId: "alice")?.status == .stopped)
            _ = try await store.applyLifecycle(.destroy, deploymentId: "d2", running: 0, now: at(61), audit: audit("alice", "p1", "destroy"))
            await #expect(throws: ControlPlaneError.unauthorized("invalid or revoked agent token")) {
                try await store.registerInstance(deploymentId: "d2", registration("j3"), cap: 2, clock: later)
            }
            #expect(try await store.deploymentProjects() == ["d1": "p1", "d2": "p1"])
            #expect(try await store.auditEntryCount() == (try await store.auditChain(projectId: "p1").count)
                        + (try await store.auditChain(projectId: nil).count))
        }
    }

    @Test("scaling: policies, history, state, costs, recommendations and the scaler's memory", arguments: Backend.allCases)
    func scaling(_ backend: Backend) async throws {
        try await Fixture.withScalingStore(backend) { store, scaling in
            try await store.makeUser("alice")
            try await store.makeProject("p1", owner: "alice")
            try await store.makeDeployment("d1", project: "p1")
            try await store.makeDeployment("d2", project: "p1")
            func policy(_ name: String, enabled: Bool = true) throws -> ScalingPolicy {
                try JSONDecoder().decode(ScalingPolicy.self, from: Data("""
                    {"name": "\(name)", "policyType": "threshold", "isEnabled": \(enabled), "minInstances": 1, "maxInstances": 4,
                     "maxHourlyCost": 2.5, "scaleUpRules": [{"metric": "cpu", "threshold": 70}]}
                    """.utf8))
            }
            // Policies: saved, replaced by id, a second of the same name refused, deleted.
            let cpu = StoredScalingPolicy(id: "pol1", deploymentId: "d1", policy: try policy("cpu"), createdAt: t0, updatedAt: t0)
            try await scaling.savePolicy(cpu)
            var renamed = cpu
            renamed.policy = try policy("cpu-renamed")
            renamed.updatedAt = at(5)
            try await scaling.savePolicy(renamed)
            #expect(try await scaling.policies(deploymentId: "d1") == [renamed])
            await #expect(throws: StoreError.conflict(ScalingStoreCoding.policyNameTaken("cpu-renamed"))) {
                try await scaling.savePolicy(StoredScalingPolicy(id: "pol2", deploymentId: "d1", policy: try policy("cpu-renamed"),
                                                                 createdAt: t0, updatedAt: t0))
            }
            try await scaling.savePolicy(StoredScalingPolicy(id: "pol3", deploymentId: "d2", policy: try policy("off", enabled: false),
                                                             createdAt: t0, updatedAt: t0))
            #expect(try await scaling.scaledDeployments() == ["d1": [renamed]])
            #expect(try await scaling.deletePolicy(id: "pol3", deploymentId: "d1") == false)
            #expect(try await scaling.deletePolicy(id: "pol3", deploymentId: "d2"))

            // The deployments as the scaler sees them.
            #expect(try await scaling.existingDeployments(["d1", "d2", "gone"]) == ["d1", "d2"])
            #expect(try await scaling.owner(deploymentId: "d1") == "alice")
            #expect(try await scaling.owner(deploymentId: "gone") == nil)
            #expect(try await scaling.ownedDeployments(ownerId: "alice") == ["d1", "d2"])
            #expect(try await scaling.command(deploymentId: "d1") == "node app.js")
            #expect(try await scaling.target(deploymentId: "d1")
                    == ScalingTarget(deploymentId: "d1", command: "node app.js", cpuLimit: 0.5, memoryLimit: 268_435_456, pidsLimit: 64))
            #expect(try await scaling.target(deploymentId: "gone") == nil)
            #expect(try await scaling.lifecycle(deploymentId: "d1") == .active)

            // Scaling state, with pricing; what the local executor resumes.
            #expect(try await scaling.state(deploymentId: "d1") == DeploymentScalingState(deploymentId: "d1"))
            let pricing = DeploymentPricing(cpuCores: 2, memoryGB: 4, pricePerCoreHour: 0.05, pricePerGBHour: 0.01)
            let state = DeploymentScalingState(deploymentId: "d1", currentInstances: 3, lastScaleUp: 1_780_000_100.5,
                                               lastScaleDown: nil, pricing: pricing, notifyURL: "https://hooks.example.com/x")
            try await scaling.saveState(state, now: at(10))
            try await scaling.saveState(DeploymentScalingState(deploymentId: "d2", currentInstances: 2), now: at(10))
            #expect(try await scaling.state(deploymentId: "d1") == state)
            _ = try await store.applyLifecycle(.stop, deploymentId: "d2", running: 2, now: at(11), audit: audit("alice", "p1", "stop"))
            #expect(try await scaling.deploymentsToResume().map(\.id) == ["d1"])
            #expect(try await scaling.deploymentsToResume().map(\.instances) == [3])
            #expect(try await scaling.activeDeployments(["d1", "d2"]) == ["d1"])
            #expect(try await scaling.lifecycle(deploymentId: "d2") == .stopped)

            // History: sequence numbers, newest first, pages.
            for i in 0..<5 {
                let event = ScalingEventRecord(id: "e\(i)", sequence: 0, deploymentId: "d1", policyId: i == 0 ? "pol1" : nil,
                                               eventType: i == 4 ? .rolloutRolledBack : .scaleUp, triggerReason: "cpu \(i)",
                                               instancesBefore: i, instancesAfter: i + 1, cpuUsage: 75.5, executionTimeMs: 12,
                                               success: i != 3, errorMessage: i == 3 ? "exit 1" : nil, timestamp: at(20 + i),
                                               configVersion: i == 4 ? 7 : nil, instanceId: i == 4 ? "i-1" : nil)
                let stored = try await scaling.appendEvent(event)
                #expect(stored.sequence > 0)
            }
            let first = try await scaling.events(deploymentId: "d1", limit: 3, before: nil)
            #expect(first.events.map(\.id) == ["e4", "e3", "e2"])
            #expect(first.events[0].eventType == .rolloutRolledBack)
            #expect(first.events[0].configVersion == 7)
            #expect(first.events[0].instanceId == "i-1")
            #expect(first.events[1].errorMessage == "exit 1")
            #expect(first.events[1].success == false)
            let next = try await scaling.events(deploymentId: "d1", limit: 3, before: first.nextCursor)
            #expect(next.events.map(\.id) == ["e1", "e0"])
            #expect(next.nextCursor == nil)
            #expect(next.events[1].policyId == "pol1")
            #expect(next.events[1].cpuUsage == 75.5)
            #expect(next.events[1].timestamp == at(20))
            #expect(try await scaling.events(deploymentId: "d2", limit: 3, before: nil).events.isEmpty)

            // A scaling under way: begun with its target, in one transaction, and pending until the event of its id
            // is recorded, which removes it in the same transaction. An event id is recorded once.
            let interrupted = ScalingEventRecord(id: "s1", sequence: 0, deploymentId: "d2", eventType: .scaleUp, triggerReason: "cpu",
                                                 instancesBefore: 2, instancesAfter: 4, costBefore: 0.5, costAfter: 1,
                                                 success: false, errorMessage: "interrupted", timestamp: at(25))
            let underWay = PendingScaling(event: interrupted, owner: "node-a/1", epoch: 3, createdAt: at(25))
            try await scaling.beginScaling(DeploymentScalingState(deploymentId: "d2", currentInstances: 4, lastScaleUp: 1_780_000_025),
                                           pending: underWay, now: at(25))
            #expect(try await scaling.state(deploymentId: "d2").currentInstances == 4)
            var other = interrupted
            other.id = "s2"
            other.deploymentId = "d1"
            let second = PendingScaling(event: other, owner: "node-b/2", epoch: nil, createdAt: at(26))
            try await scaling.beginScaling(state, pending: second, now: at(26))
            #expect(try await scaling.pendingScalings() == [underWay, second])
            var done = interrupted
            done.success = true
            done.errorMessage = nil
            #expect(try await scaling.appendEvent(done).sequence > 0)
            #expect(try await scaling.pendingScalings() == [second])
            await #expect(throws: (any Error).self) { try await scaling.appendEvent(done) }
            #expect(try await scaling.events(deploymentId: "d2", limit: 3, before: nil).events.map {
                var e = $0
                e.sequence = 0
                return e
            } == [done])
            // A begun scaling whose pending row is refused (its id taken) writes nothing: one transaction.
            await #expect(throws: (any Error).self) {
                try await scaling.beginScaling(DeploymentScalingState(deploymentId: "d2", currentInstances: 9), pending: second, now: at(27))
            }
            #expect(try await scaling.state(deploymentId: "d2").currentInstances == 4)
            // Recording the other ends it too.
            _ = try await scaling.appendEvent(other)
            #expect(try await scaling.pendingScalings().isEmpty)

            // Cost periods: replace, or keep what is there.
            func period(_ hour: Int, cost: Double) -> CostPeriod {
                CostPeriod(periodStart: t0.timeIntervalSince1970 + Double(hour * 3600), periodEnd: t0.timeIntervalSince1970 + Double((hour + 1) * 3600),
                           periodType: .hour, avgInstances: 2.5, maxInstances: 3, totalInstanceHours: 2.5, computeCost: cost,
                           memoryCost: 0.1, totalCost: cost + 0.1, avgCpuUsage: 40, avgMemoryUsage: nil, avgResponseTime: nil)
            }
            try await scaling.saveCostPeriods(deploymentId: "d1", [period(0, cost: 1), period(1, cost: 2)], replace: true, now: at(30))
            try await scaling.saveCostPeriods(deploymentId: "d1", [period(1, cost: 9)], replace: false, now: at(30))
            #expect(try await scaling.costPeriods(deploymentId: "d1", periodType: .hour, limit: 10) == [period(0, cost: 1), period(1, cost: 2)])
            try await scaling.saveCostPeriods(deploymentId: "d1", [period(1, cost: 9)], replace: true, now: at(31))
            #expect(try await scaling.costPeriods(deploymentId: "d1", periodType: .hour, limit: 1) == [period(1, cost: 9)])
            #expect(try await scaling.costPeriods(deploymentId: "d1", periodType: .day, limit: 10).isEmpty)

            // Recommendations replace the pending ones.
            let recommendation = try JSONDecoder().decode(OptimizationRecommendation.self, from: Data("""
                {"recommendationType": "right_sizing", "title": "t", "description": "d", "currentConfig": {"cpuCores": 2},
                 "recommendedConfig": {"cpuCores": 1}, "costImpactMonthly": -10, "estimatedMonthlySavings": 10, "confidenceScore": 1.5}
                """.utf8))
            _ = try await scaling.replaceRecommendations(deploymentId: "d1", [recommendation], ids: ["r1"], now: at(40))
            let replaced = try await scaling.replaceRecommendations(deploymentId: "d1", [recommendation, recommendation],
                                                                    ids: ["r2", "r3"], now: at(41))
            #expect(replaced.map(\.id) == ["r2", "r3"])

            // The scaler's memory: samples per tier, pruned to the rings, and the engine's memory.
            func sample(_ t: Double, cpu: Double) -> MetricSample {
                MetricSample(timestamp: t, instances: 2, cpu: MetricStats(mean: cpu, max: cpu + 1), memory: MetricStats(mean: 10, max: 12))
            }
            let samples = (0..<6).map { sample(1_780_000_000 + Double($0) * 5, cpu: Double($0) * 10 + 0.25) }
            let engine = StoredEngineMemory(policies: ["pol1@1"], memory: ScalingEngine.Memory())
            try await scaling.writeScalerState(ScalerStateWrite(entries: [
                ScalerStateWrite.Entry(deploymentId: "d1", samples: samples, engine: engine),
                ScalerStateWrite.Entry(deploymentId: "gone", samples: samples),
            ]), now: at(50))
            var loaded = try await scaling.loadScalerStates()
            #expect(loaded.map(\.deploymentId) == ["d1"])
            #expect(loaded.first?.history.raw == samples)
            #expect(loaded.first?.engine == engine)
            // Pruned: older than the bound, and all but the newest 2.
            try await scaling.writeScalerState(ScalerStateWrite(entries: [
                ScalerStateWrite.Entry(deploymentId: "d1", samples: [sample(1_780_000_030, cpu: 99)],
                                       prune: [ScalerStateWrite.Prune(span: 0, before: 1_780_000_006, keep: 2)]),
            ]), now: at(51))
            loaded = try await scaling.loadScalerStates()
            #expect(loaded.first?.history.raw == [samples[5], sample(1_780_000_030, cpu: 99)])
            try await scaling.deleteScalerState(deploymentId: "d1")
            #expect(try await scaling.loadScalerStates().isEmpty)
        }
    }

    @Test("deployments: the owner's cap, tokens, updates, the lifecycle and its tombstone", arguments: Backend.allCases)
    func deployments(_ backend: Backend) async throws {
        try await Fixture.withStore(backend) { store in
            try await store.makeUser("alice")
            try await store.makeProject("p1", owner: "alice")
            var d1 = try await store.makeDeployment("d1", project: "p1", cap: 2)
            try await store.makeDeployment("d2", project: "p1", cap: 2)
            await #expect(throws: ControlPlaneError.conflict(AccountLimits.deploymentLimitReason(2))) {
                try await store.makeDeployment("d3", project: "p1", cap: 2)
            }
            await #expect(throws: StoreError.conflict("resource already exists")) {
                try await store.makeDeployment("d1", project: "p1")
            }
            #expect(try await store.deploymentId(forAgentTokenHash: "agent-d1") == "d1")
            #expect(try await store.addAgentToken(deploymentId: "d1", hash: "i1", issuedBy: "local-executor", now: t0,
                                                  audit: audit("alice", nil, "issue")))
            #expect(try await store.addAgentToken(deploymentId: "d1", hash: "i2", issuedBy: "local-executor", now: t0,
                                                  audit: audit("alice", nil, "issue")))
            #expect(try await store.addAgentToken(deploymentId: "nope", hash: "i3", issuedBy: "local-executor", now: t0,
                                                  audit: audit("alice", nil, "issue")) == false)
            #expect(try await store.revokeAgentTokens(issuedBy: "local-executor", except: ["i2"], now: t0) == 1)
            #expect(try await store.deploymentId(forAgentTokenHash: "i1") == nil)
            #expect(try await store.deploymentId(forAgentTokenHash: "i2") == "d1")
            #expect(try await store.revokeAgentTokens(issuedBy: "local-executor", now: t0) == 1)
            try await store.replaceAgentToken(deploymentId: "d1", newHash: "agent-d1b", now: t0, audit: audit("alice", "p1", "reissue"))
            #expect(try await store.deploymentId(forAgentTokenHash: "agent-d1") == nil)
            #expect(try await store.deploymentId(forAgentTokenHash: "agent-d1b") == "d1")

            d1.name = "renamed"
            d1.cpuLimit = 1.5
            d1.memoryLimit = 1 << 30
            d1.pidsLimit = 128
            d1.updatedAt = at(9)
            #expect(try await store.updateDeployment(d1, audit: audit("alice", "p1", "update")) == d1)
            #expect(try await store.deployment(id: "d1", ownerId: "alice") == d1)

            #expect(try await store.lifecycleState(deploymentId: "d1") == .active)
            let stopped = try #require(try await store.applyLifecycle(.stop, deploymentId: "d1", running: 1, now: at(10),
                                                                      audit: audit("alice", "p1", "stop")))
            #expect(stopped.outcome == .change)
            #expect(stopped.deployment.status == .stopped)
            #expect(try await store.applyLifecycle(.stop, deploymentId: "d1", running: 0, now: at(11),
                                                   audit: audit("alice", "p1", "stop"))?.outcome == LifecycleRules.outcome(.stop, from: .stopped, running: 0))
            let destroyed = try #require(try await store.applyLifecycle(.destroy, deploymentId: "d1", running: 0, now: at(12),
                                                                        audit: audit("alice", "p1", "destroy")))
            #expect(destroyed.deployment.status == .destroyed)
            #expect(try await store.lifecycleState(deploymentId: "d1") == .destroyed)
            #expect(try await store.deploymentId(forAgentTokenHash: "agent-d1b") == nil)
            #expect(try await store.applyLifecycle(.start, deploymentId: "nope", running: 0, now: t0, audit: audit("alice", "p1", "start")) == nil)
            await #expect(throws: StoreError.conflict(LifecycleRules.destroyedReason)) {
                try await store.bumpVersion(deploymentId: "d1", audit: audit("alice", "p1", "reload"))
            }
            await #expect(throws: StoreError.conflict(LifecycleRules.destroyedReason)) {
                try await store.updateDeployment(d1, audit: audit("alice", "p1", "update"))
            }
            await #expect(throws: StoreError.conflict(LifecycleRules.destroyedReason)) {
                try await store.replaceAgentToken(deploymentId: "d1", newHash: "x", now: t0, audit: audit("alice", "p1", "reissue"))
            }
            await #expect(throws: StoreError.notFound("deployment")) {
                try await store.bumpVersion(deploymentId: "nope", audit: audit("alice", "p1", "reload"))
            }
            // A tombstone frees its slot under the cap.
            try await store.makeDeployment("d3", project: "p1", cap: 2)
            #expect(verified(try await store.auditChain(projectId: "p1")) == [])
        }
    }
}
