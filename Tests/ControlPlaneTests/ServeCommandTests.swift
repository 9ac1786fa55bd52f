// The real `coderunner-controller serve` binary: listening line, key file, graceful SIGTERM, key reuse.
import ChildProcess
import Foundation
import Testing
import TestSupport

@Suite(.serialized) struct ServeCommandTests {
    struct Running {
        let process: ExitWatch
        let address: String
    }

    func start(dataDir: URL, environment: [String: String] = [:]) throws -> Running {
        var env = ProcessInfo.processInfo.environment
        for key in ["CODERUNNER_MASTER_KEY", "CODERUNNER_MASTER_KEY_FILE", "CODERUNNER_LISTEN", "CODERUNNER_DATA_DIR"] { env[key] = nil }
        env.merge(environment) { $1 }
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { throw POSIXError(.EMFILE) }
        for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
        let devNull = open("/dev/null", O_RDWR | O_CLOEXEC)
        let spawned = Result { try ChildProcess.spawn(
            TestSupport.binary("coderunner-controller"),
            ["serve", "--listen", "127.0.0.1:0", "--data-dir", dataDir.path, "--bcrypt-cost", "4"],
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
}
