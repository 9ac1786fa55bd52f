// Where the master key comes from: the environment, a given file, or a file generated on first start.
import Foundation
import Sealing
#if canImport(Glibc)
import Glibc
#endif

enum MasterKeyLoader {
    /// The variable that may hold the key itself.
    static let environmentVariable = "CODERUNNER_MASTER_KEY"

    static func load(_ configuration: ControllerConfiguration) throws -> MasterKey {
        // Once read (or not needed), the key leaves the process environment: every child (the local
        // executor's agents, an exec command) would inherit it. unsetenv alone leaves the bytes where the
        // kernel put them, which /proc/PID/environ shows: they are zeroed first.
        defer { scrubEnvironment() }
        switch configuration.masterKey {
        case .base64(let text):
            return try decode(text, origin: "CODERUNNER_MASTER_KEY")
        case .file(let path):
            guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
                throw ConfigurationError.masterKey("cannot read \(path); it must hold the base64 key")
            }
            return try decode(text, origin: path)
        case .generatedInDataDirectory:
            let path = configuration.generatedKeyPath
            if let text = try? String(contentsOfFile: path, encoding: .utf8) {
                return try decode(text, origin: path)
            }
            let key = MasterKey.generate()
            // O_EXCL: never overwrite a key, even one that appeared since we looked.
            let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
            guard fd >= 0 else {
                throw ConfigurationError.masterKey("cannot create \(path): \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            let bytes = Array((key.base64 + "\n").utf8)
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == bytes.count, fsync(fd) == 0 else {
                throw ConfigurationError.masterKey("cannot write \(path): \(String(cString: strerror(errno)))")
            }
            return key
        }
    }

    static func scrubEnvironment() {
        if let value = getenv(environmentVariable) { memset(value, 0, strlen(value)) }
        unsetenv(environmentVariable)
    }

    private static func decode(_ text: String, origin: String) throws -> MasterKey {
        do {
            return try MasterKey(base64: text.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            throw ConfigurationError.masterKey("\(origin) does not hold a base64-encoded 32-byte key")
        }
    }
}
