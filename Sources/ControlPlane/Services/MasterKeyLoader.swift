// Where the master key comes from: the environment, a given file, or a file generated on first start.
import Foundation
import Sealing
#if canImport(Glibc)
import Glibc
#endif

enum MasterKeyLoader {
    static func load(_ configuration: ControllerConfiguration) throws -> MasterKey {
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

    private static func decode(_ text: String, origin: String) throws -> MasterKey {
        do {
            return try MasterKey(base64: text.trimmingCharacters(in: .whitespacesAndNewlines))
        } catch {
            throw ConfigurationError.masterKey("\(origin) does not hold a base64-encoded 32-byte key")
        }
    }
}
