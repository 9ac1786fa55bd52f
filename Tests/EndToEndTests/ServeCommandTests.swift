// The real `coderunner-controller serve` binary: listening line, key file, graceful SIGTERM, key reuse.
import ChildProcess
import CodeRunnerWire
import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct ServeCommandTests {
    struct Running {
        let process: ExitWatch
        let address: String
    }

    func start(dataDir: URL, environment: [String: String] = [:], arguments extra: [String] = []) throws -> Running {
        var env = ProcessInfo.processInfo.environment
        for key in ["CODERUNNER_MASTER_KEY", "CODERUNNER_MASTER_KEY_FILE", "CODERUNNER_LISTEN", "CODERUNNER_DATA_DIR"] { env[key] = nil }
        env.merge(environment) { $1 }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw POSIXError(.EMFILE) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        let spawned = Result { try ChildProcess.spawn(
            TestSupport.binary("coderunner-controller"),
            ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir.path, "--bcrypt-cost", "4"] + extra,
            environment: env, stdin: devNull, stdout: fds[1], stderr: devNull) }
        // Only the child holds the write end now: its exit ends the reads below.
        close(devNull)
        close(fds[1])
        let reader = FileHandle(fileDescriptor: fds[0], closeOnDealloc: true)
        let process = ExitWatch(pid: try spawned.get())
        // Read the listening line, bounded in time by the deadline and in size by the loop count.
        let marker = "listening on http://"
        var text = ""
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline, !text.contains(marker) || !text.hasSuffix("\n"), process.isRunning {
            let chunk = reader.availableData
            if chunk.isEmpty { break }
            text += String(decoding: chunk, as: UTF8.self)
        }
        guard let range = text.range(of: marker) else {
            kill(process.pid, SIGTERM)
            throw ServeError.noListeningLine(text)
        }
        let address = text[range.upperBound...].prefix { !$0.isWhitespace }
        return Running(process: process, address: String(address))
    }

    enum ServeError: Error { case noListeningLine(String) }

    func curl(_ url: String) throws -> String {
        String(decoding: try TestSupport.run("/usr/bin/curl", ["-s", "--max-time", "10", url], timeout: .seconds(15)).stdout, as: UTF8.self)
    }

    func stop(_ running: Running) -> Int32? {
        kill(running.process.pid, SIGTERM)
        guard let status = running.process.waitForExit(timeout: .seconds(15)) else {
            kill(running.process.pid, SIGKILL)
            return nil
        }
        return status
    }

    @Test func servesGeneratesAKeyOnceAndStopsOnSIGTERM() throws {
        let dataDir = try TestSupport.makeTemporaryDirectory("serve")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let first = try start(dataDir: dataDir)
        #expect(first.address.hasPrefix("127.0.0.1:"))
        #expect(try curl("http://\(first.address)/healthz").contains(#""status":"ok""#))
        let keyPath = dataDir.appendingPathComponent("master.key").path
        let attributes = try FileManager.default.attributesOfItem(atPath: keyPath)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let key = try String(contentsOfFile: keyPath, encoding: .utf8)
        #expect(FileManager.default.fileExists(atPath: dataDir.appendingPathComponent("coderunner.sqlite").path))
        #expect(stop(first) == 0)

        let second = try start(dataDir: dataDir)
        #expect(try String(contentsOfFile: keyPath, encoding: .utf8) == key)
        #expect(stop(second) == 0)
    }

    /// A client that sends half a request and waits would hold a graceful stop as long as it likes; the server
    /// gives the requests in flight ControllerConfiguration.drainLimit (10 s), then cuts the connections left.
    @Test func aRequestNeverFinishedCannotHoldTheStop() throws {
        let dataDir = try TestSupport.makeTemporaryDirectory("serve-drain")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let running = try start(dataDir: dataDir)
        let port = try #require(running.address.split(separator: ":").last.flatMap { UInt16($0) })
        let fd = try TestSupport.connectLoopback(port)
        defer { close(fd) }
        let partial = "POST /api/auth/login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"email\":"
        #expect(partial.utf8.withContiguousStorageIfAvailable { send(fd, $0.baseAddress, $0.count, 0) } == partial.utf8.count)
        // The head is in: the request is in flight, waiting for the rest of its body.
        Thread.sleep(forTimeInterval: 0.5)
        let clock = ContinuousClock()
        let began = clock.now
        kill(running.process.pid, SIGTERM)
        let status = running.process.waitForExit(timeout: .seconds(30))
        if status == nil { kill(running.process.pid, SIGKILL) }
        let took = clock.now - began
        // A clean exit, after the drain limit and well before the 30 s.
        #expect(status == 0)
        #expect(took >= .seconds(9) && took < .seconds(25), "the stop took \(took)")
    }

    @Test("--registration falls back to CODERUNNER_REGISTRATION; an unknown mode does not start")
    func registrationModeFromTheEnvironment() throws {
        let dataDir = try TestSupport.makeTemporaryDirectory("serve-registration")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let running = try start(dataDir: dataDir, environment: ["CODERUNNER_REGISTRATION": "closed"])
        let answer = try TestSupport.run("/usr/bin/curl", [
            "-s", "--max-time", "10", "-H", "Content-Type: application/json",
            "-d", #"{"email":"first@example.com","password":"longenough"}"#, "http://\(running.address)/api/auth/register",
        ], timeout: .seconds(15))
        #expect(String(decoding: answer.stdout, as: UTF8.self).contains("registration is closed on this controller"))
        #expect(stop(running) == 0)
        #expect(throws: ServeError.self) {
            _ = stop(try start(dataDir: dataDir, environment: ["CODERUNNER_REGISTRATION": "bogus"]))
        }
    }

    @Test func refusesAnUnusableMasterKey() throws {
        let dataDir = try TestSupport.makeTemporaryDirectory("serve-badkey")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        #expect(throws: ServeError.self) {
            let running = try start(dataDir: dataDir, environment: ["CODERUNNER_MASTER_KEY": "bm90IGEga2V5"])
            _ = stop(running)
        }
        #expect(!FileManager.default.fileExists(atPath: dataDir.appendingPathComponent("master.key").path))
    }

    /// The key given in the environment is gone from the running controller's environment, /proc included, so
    /// no child inherits it and no process of the same user reads it there.
    @Test func theMasterKeyLeavesTheControllersEnvironment() throws {
        let dataDir = try TestSupport.makeTemporaryDirectory("serve-envkey")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let key = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
        let running = try start(dataDir: dataDir, environment: ["CODERUNNER_MASTER_KEY": key])
        let environ = (try? Data(contentsOf: URL(fileURLWithPath: "/proc/\(running.process.pid)/environ"))) ?? Data()
        #expect(!environ.isEmpty)
        #expect(environ.range(of: Data(key.utf8)) == nil, "the master key is still in /proc/PID/environ")
        #expect(try curl("http://\(running.address)/healthz").contains(#""status":"ok""#))
        #expect(stop(running) == 0)
    }

    @Test(arguments: [
        (["--max-instances-per-deployment", "0"], "--max-instances-per-deployment must be from 1 to 10000, got 0"),
        (["--max-instances-per-deployment", "100000"], "--max-instances-per-deployment must be from 1 to 10000, got 100000"),
        (["--allow-fetch-to", "127.0.0.1/32,10.0.0.0/33"], "--allow-fetch-to must be CIDR blocks such as 127.0.0.1/32 or fd00::/8, comma-separated; got 10.0.0.0/33"),
        (["--default-cpu-limit", "0"], "--default-cpu-limit must be a number of cores above 0 and at most 1024"),
        (["--default-memory-limit", "1M"], "--default-memory-limit must be bytes from 4194304 (4 MiB) to 1099511627776 (1 TiB)"),
        (["--default-memory-limit", "lots"], "--default-memory-limit must be bytes, with an optional K, M or G suffix"),
        (["--default-pids-limit", "7"], "--default-pids-limit must be from 8 to 4194304 processes"),
        (["--app-host", "a b"], "--app-host must be a host name or address, got a b"),
        (["--app-host", "user@host"], "--app-host must be a host name or address, got user@host"),
        (["--max-deployments-per-user", "0"], "--max-deployments-per-user must be from 1 to 100000, got 0"),
        (["--max-instances-per-user", "0"], "--max-instances-per-user must be from 1 to 1000000, got 0"),
        (["--agent-listen-host", "node-a.internal"], "--agent-listen-host must be an IP address of this host, got node-a.internal"),
        // Checked before the database is reached (nothing listens on port 1).
        (["--database", "postgres://u@127.0.0.1:1/db", "--node-name", "a/b"],
         "--node-name must be 1 to 64 letters, digits, dots, dashes or underscores, got a/b"),
    ])
    func badLimitFlagsAreRefused(arguments: [String], message: String) throws {
        let dataDir = try TestSupport.makeTemporaryDirectory("serve-flags")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let result = try TestSupport.run(TestSupport.binary("coderunner-controller"),
                                         ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir.path] + arguments, timeout: .seconds(30))
        #expect(result.status == 64)
        let stderr = String(decoding: result.stderr, as: UTF8.self)
        #expect(stderr.contains(message), "\(stderr)")
    }

    /// One HTTP call through curl: its status and its envelope, `data` decoded as `T`.
    func api<T: Decodable & Sendable>(_ method: String, _ url: String, token: String? = nil, json: String? = nil,
                                      as: T.Type = Empty.self) throws -> (Int, Envelope<T>) {
        var arguments = ["-s", "--max-time", "10", "-X", method, "-w", "\n%{http_code}", url]
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        if let json { arguments += ["-H", "Content-Type: application/json", "--data-binary", json] }
        let text = String(decoding: try TestSupport.run("/usr/bin/curl", arguments, timeout: .seconds(15)).stdout, as: UTF8.self)
        let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
        let status = Int(lines.last ?? "") ?? 0
        let body = lines.dropLast().joined(separator: "\n")
        return (status, try JSONDecoder().decode(Envelope<T>.self, from: Data(body.utf8)))
    }

    /// A `data` whose fields the test does not read.
    struct Empty: Decodable, Sendable {}
    struct LimitedDeployment: Decodable, Sendable { var id: String; var pidsLimit: Int }

    /// The flag's environment fallback reaches the API of the real binary: the 400 names the configured cap.
    @Test func theInstanceCapComesFromTheEnvironment() throws {
        let dataDir = try TestSupport.makeTemporaryDirectory("serve-cap")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let running = try start(dataDir: dataDir, environment: ["CODERUNNER_MAX_INSTANCES_PER_DEPLOYMENT": "3"],
                                arguments: ["--executor", "exec", "--exec-command", "true"])
        defer { _ = stop(running) }
        let base = "http://\(running.address)/api"
        let credentials = #"{"email": "cap@example.com", "password": "correct horse battery"}"#
        #expect(try api("POST", base + "/auth/register", json: credentials).0 == 201)
        let token = try #require(try api("POST", base + "/auth/login", json: credentials, as: LoginAnswer.self).1.data).token
        let project = try #require(try api("POST", base + "/projects", token: token, json: #"{"name": "p"}"#, as: Identified.self).1.data).id
        let created = try #require(try api("POST", base + "/deployments", token: token,
                                           json: #"{"projectId": "\#(project)", "environment": "development"}"#, as: LimitedDeployment.self).1.data)
        let deployment = created.id
        #expect(created.pidsLimit == 256)
        let policy = #"{"name": "cpu", "policyType": "threshold", "maxInstances": 4, "scaleUpRules": [{"metric": "cpu", "threshold": 50}]}"#
        let refused = try api("POST", base + "/deployments/\(deployment)/scaling/policies", token: token, json: policy)
        #expect(refused.0 == 400)
        #expect(refused.1.error == "validation failed: maxInstances 4 is above this controller's cap of 3 instances per deployment")
    }

    /// The account limits' environment fallbacks reach the API of the real binary: the 409s name them.
    @Test func theAccountLimitsComeFromTheEnvironment() throws {
        let dataDir = try TestSupport.makeTemporaryDirectory("serve-account")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let running = try start(dataDir: dataDir, environment: ["CODERUNNER_MAX_DEPLOYMENTS_PER_USER": "1",
                                                                "CODERUNNER_MAX_INSTANCES_PER_USER": "2"],
                                arguments: ["--executor", "exec", "--exec-command", "true"])
        defer { _ = stop(running) }
        let base = "http://\(running.address)/api"
        let credentials = #"{"email": "account@example.com", "password": "correct horse battery"}"#
        #expect(try api("POST", base + "/auth/register", json: credentials).0 == 201)
        let token = try #require(try api("POST", base + "/auth/login", json: credentials, as: LoginAnswer.self).1.data).token
        let project = try #require(try api("POST", base + "/projects", token: token, json: #"{"name": "p"}"#, as: Identified.self).1.data).id
        let body = #"{"projectId": "\#(project)", "environment": "development"}"#
        let deployment = try #require(try api("POST", base + "/deployments", token: token, json: body, as: Identified.self).1.data).id
        let second = try api("POST", base + "/deployments", token: token, json: body)
        #expect(second.0 == 409)
        #expect(second.1.error == "account deployment limit (1) reached: this account holds 1 deployment; delete one first")
        #expect(try api("POST", base + "/deployments/\(deployment)/start", token: token).0 == 200)
        let over = try api("POST", base + "/deployments/\(deployment)/scaling/override", token: token, json: #"{"instances": 3}"#)
        #expect(over.0 == 409)
        #expect(over.1.error == "account instance limit (2) reached: this needs 3 instances and the account has 2 left; stop or scale down another deployment first")
    }

    struct CommandedDeployment: Decodable, Sendable { var id: String; var command: String?; var status: String }

    /// CODERUNNER_DEFAULT_COMMAND reaches the API of the real binary: a deployment created without a command runs it.
    @Test func theDefaultCommandComesFromTheEnvironment() throws {
        let dataDir = try TestSupport.makeTemporaryDirectory("serve-default-command")
        defer { try? FileManager.default.removeItem(at: dataDir) }
        let running = try start(dataDir: dataDir, environment: ["CODERUNNER_DEFAULT_COMMAND": "exec sleep 7"],
                                arguments: ["--executor", "exec", "--exec-command", "true"])
        defer { _ = stop(running) }
        let base = "http://\(running.address)/api"
        let credentials = #"{"email": "default@example.com", "password": "correct horse battery"}"#
        #expect(try api("POST", base + "/auth/register", json: credentials).0 == 201)
        let token = try #require(try api("POST", base + "/auth/login", json: credentials, as: LoginAnswer.self).1.data).token
        let project = try #require(try api("POST", base + "/projects", token: token, json: #"{"name": "p"}"#, as: Identified.self).1.data).id
        let created = try #require(try api("POST", base + "/deployments", token: token,
                                           json: #"{"projectId": "\#(project)", "environment": "development"}"#,
                                           as: CommandedDeployment.self).1.data)
        #expect(created.command == "exec sleep 7")
        #expect(created.status == "PENDING")
    }

    /// `simulate` once tried to allocate one slot per initial instance: 1e15 aborted it. Now the cap refuses it.
    @Test func simulateRefusesInitialInstancesAboveTheCap() throws {
        let dir = try TestSupport.makeTemporaryDirectory("simulate-cap")
        defer { try? FileManager.default.removeItem(at: dir) }
        let policy = dir.appendingPathComponent("policy.json")
        let trace = dir.appendingPathComponent("trace.csv")
        try #"{"name": "cpu", "policyType": "target_tracking", "maxInstances": 10, "target": {"metric": "cpu", "value": 60}}"#
            .write(to: policy, atomically: true, encoding: .utf8)
        try "timestamp,demand\n0,1\n60,2\n".write(to: trace, atomically: true, encoding: .utf8)
        let binary = TestSupport.binary("coderunner-controller")
        let base = ["simulate", "--policy", policy.path, "--trace", trace.path]
        let huge = try TestSupport.run(binary, base + ["--initial-instances", "1000000000000000"], timeout: .seconds(30))
        #expect(huge.status == 1)
        #expect(String(decoding: huge.stderr, as: UTF8.self)
                == "coderunner-controller simulate: initialInstances 1000000000000000 is above this controller's cap of 20 instances per deployment\n")
        let raised = try TestSupport.run(binary, base + ["--initial-instances", "30", "--max-instances-per-deployment", "30"], timeout: .seconds(30))
        #expect(raised.status == 0, "\(String(decoding: raised.stderr, as: UTF8.self))")
    }
}
