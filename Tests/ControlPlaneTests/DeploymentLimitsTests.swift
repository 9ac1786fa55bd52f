// A deployment's resource limits (cpuLimit, memoryLimit, pidsLimit): defaults from the controller's
// configuration, given at creation or changed later, validated with the field named, stored, and carried to the
// executor on every scaling.
import ControlPlane
import Foundation
import HTTPTypes
import HummingbirdTesting
import Logging
import Testing
import TestSupport

@Suite("Deployment limits") struct DeploymentLimitsTests {
    @Test func defaultsExplicitValuesAndUpdates() async throws {
        let harness = try Harness()
        try await harness.run(.live) { c in
            let (token, project) = try await c.signUpWithProject("limits@example.com")
            let plain = try await c.call(.post, "/api/deployments", token: token, json: c.json(["projectId": project, "environment": "development"]))
            #expect(plain.status == .created, "\(plain.text)")
            #expect(plain.data["cpuLimit"] as? Double == 1)
            #expect(plain.data["memoryLimit"] as? Int == 512 * 1024 * 1024)
            #expect(plain.data["pidsLimit"] as? Int == 256)

            let sized = try await c.call(.post, "/api/deployments", token: token, json: c.json([
                "projectId": project, "environment": "development", "cpuLimit": 0.5, "memoryLimit": 64 * 1024 * 1024, "pidsLimit": 32]))
            #expect(sized.status == .created, "\(sized.text)")
            let id = try #require(sized.string("id"))
            let fetched = try await c.call(.get, "/api/deployments/\(id)", token: token)
            #expect(fetched.data["cpuLimit"] as? Double == 0.5)
            #expect(fetched.data["memoryLimit"] as? Int == 64 * 1024 * 1024)
            #expect(fetched.data["pidsLimit"] as? Int == 32)
            #expect(try harness.sqlite("SELECT cpu_limit, memory_limit, pids_limit FROM deployments WHERE id = '\(id)'") == "0.5|67108864|32")

            let updated = try await c.call(.put, "/api/deployments/\(id)", token: token, json: #"{"cpuLimit": 2, "pidsLimit": 64}"#)
            #expect(updated.status == .ok, "\(updated.text)")
            #expect(updated.data["cpuLimit"] as? Double == 2)
            #expect(updated.data["memoryLimit"] as? Int == 64 * 1024 * 1024)
            #expect(updated.data["pidsLimit"] as? Int == 64)
            let listed = try await c.call(.get, "/api/deployments", token: token)
            #expect(listed.list.first { $0["id"] as? String == id }?["pidsLimit"] as? Int == 64)

            // A tenant cannot lift its own sandbox above the controller's ceiling (4 cores, 4 GiB, 1024 processes by
            // default): a pids or memory limit that high would no longer protect the host.
            for (body, message) in [
                (#"{"pidsLimit": 4194304}"#, "validation failed: pidsLimit 4194304 is above this controller's ceiling of 1024 processes per instance"),
                (#"{"memoryLimit": 1099511627776}"#, "validation failed: memoryLimit 1099511627776 is above this controller's ceiling of 4294967296 bytes per instance"),
                (#"{"cpuLimit": 64}"#, "validation failed: cpuLimit 64.0 is above this controller's ceiling of 4.0 cores per instance"),
            ] {
                let refused = try await c.call(.put, "/api/deployments/\(id)", token: token, json: body)
                #expect(refused.status == .badRequest, "\(refused.text)")
                #expect(refused.error == message)
                let created = try await c.call(.post, "/api/deployments", token: token, json: String(body.dropLast()) + #", "projectId": "\#(project)", "environment": "development"}"#)
                #expect(created.status == .badRequest, "\(created.text)")
            }
            #expect(try harness.sqlite("SELECT pids_limit FROM deployments WHERE id = '\(id)'") == "64")

            let mallory = try await c.signUp("mallory@example.com")
            #expect(try await c.call(.put, "/api/deployments/\(id)", token: mallory, json: #"{"cpuLimit": 8}"#).status == .notFound)
        }
    }

    @Test(arguments: [
        (#""cpuLimit": 0"#, "validation failed: cpuLimit must be a number of cores above 0 and at most 1024"),
        (#""cpuLimit": -1"#, "validation failed: cpuLimit must be a number of cores above 0 and at most 1024"),
        (#""cpuLimit": 4096"#, "validation failed: cpuLimit must be a number of cores above 0 and at most 1024"),
        (#""memoryLimit": 4194303"#, "validation failed: memoryLimit must be bytes from 4194304 (4 MiB) to 1099511627776 (1 TiB)"),
        (#""memoryLimit": 0"#, "validation failed: memoryLimit must be bytes from 4194304 (4 MiB) to 1099511627776 (1 TiB)"),
        (#""memoryLimit": 9223372036854775807"#, "validation failed: memoryLimit must be bytes from 4194304 (4 MiB) to 1099511627776 (1 TiB)"),
        (#""pidsLimit": 7"#, "validation failed: pidsLimit must be from 8 to 4194304 processes"),
        (#""pidsLimit": 5000000"#, "validation failed: pidsLimit must be from 8 to 4194304 processes"),
    ])
    func invalidLimitsNameTheField(field: String, message: String) async throws {
        try await Harness().run(.live) { c in
            let (token, project) = try await c.signUpWithProject("limits@example.com")
            let created = try await c.call(.post, "/api/deployments", token: token,
                                           json: #"{"projectId": "\#(project)", "environment": "development", \#(field)}"#)
            #expect(created.status == .badRequest, "\(created.text)")
            #expect(created.error == message)
            let (id, _) = try await c.createDeployment(token, project: project)
            let updated = try await c.call(.put, "/api/deployments/\(id)", token: token, json: "{\(field)}")
            #expect(updated.status == .badRequest, "\(updated.text)")
            #expect(updated.error == message)
        }
    }

    @Test(arguments: [#""cpuLimit": 1e999"#, #""memoryLimit": 1e30"#, #""pidsLimit": 2.5"#, #""memoryLimit": "512M""#])
    func numbersNoFieldCanHoldAreBadRequests(field: String) async throws {
        try await Harness().run(.live) { c in
            let (token, project) = try await c.signUpWithProject("limits@example.com")
            let created = try await c.call(.post, "/api/deployments", token: token,
                                           json: #"{"projectId": "\#(project)", "environment": "development", \#(field)}"#)
            #expect(created.status == .badRequest, "\(created.text)")
            #expect(created.error?.hasPrefix("validation failed: ") == true)
        }
    }

    @Test func theControllersDefaultsApply() async throws {
        var harness = try Harness()
        harness.configuration.deploymentDefaults = ResourceLimits(cpu: 0.25, memory: 128 * 1024 * 1024, pids: 64)
        try await harness.run { c in
            let (token, project) = try await c.signUpWithProject("limits@example.com")
            let answer = try await c.call(.post, "/api/deployments", token: token, json: c.json(["projectId": project, "environment": "development"]))
            #expect(answer.data["cpuLimit"] as? Double == 0.25)
            #expect(answer.data["memoryLimit"] as? Int == 128 * 1024 * 1024)
            #expect(answer.data["pidsLimit"] as? Int == 64)
        }
    }

    /// The executor receives the deployment's limits with every scaling (the local executor hands them to the sandbox).
    @Test func theScalingTargetCarriesTheLimits() async throws {
        let recorder = RecordingExecutor()
        try await ScalerHarness { $0.executor = .exec("true") }.run(.live) { client in
            let (token, project) = try await client.signUpWithProject("limits@example.com")
            let created = try await client.call(.post, "/api/deployments", token: token, json: client.json([
                "projectId": project, "environment": "development", "command": "sleep 100",
                "cpuLimit": 1.5, "memoryLimit": 256 * 1024 * 1024, "pidsLimit": 100]))
            let id = try #require(created.string("id"))
            let api = client.controlPlane.scaling
            let scaler = Scaler(store: api.store, executor: recorder, source: CombinedInstanceSource([]), notifier: nil,
                                now: { Date() }, logger: .init(label: "test"))
            _ = try await scaler.override(deploymentId: id, instances: 2, reason: nil)
            #expect(await recorder.targets == [ScalingTarget(deploymentId: id, command: "sleep 100", cpuLimit: 1.5,
                                                             memoryLimit: 256 * 1024 * 1024, pidsLimit: 100)])
        }
    }

    @Test func theMigrationIsRegisteredByName() async throws {
        let harness = try Harness()
        try await harness.run { _ in
            let names = try harness.sqlite("SELECT identifier FROM grdb_migrations").split(separator: "\n")
            #expect(names.contains("v5-deployment-resource-limits"))
        }
    }

    @Test(arguments: [("512M", 512 * 1024 * 1024), ("4194304", 4_194_304), ("1g", 1 << 30), ("64K", 65536), ("x", nil), ("-1", nil),
                      ("99999999999999999999G", nil), ("", nil), ("M", nil)] as [(String, Int?)])
    func bytes(text: String, expected: Int?) {
        #expect(ResourceLimits.parseBytes(text) == expected)
    }
}

actor RecordingExecutor: ScalingExecutor {
    var targets: [ScalingTarget] = []
    func scale(_ target: ScalingTarget, from: Int, to: Int) async throws -> Int {
        targets.append(target)
        return to
    }
}
