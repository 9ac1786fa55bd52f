// The last-known-good cache: the newest config that ran for the whole rollback window, kept in --state-dir so
// the app can start when the controller is down. Mode 0600 (it holds decrypted secrets), written atomically:
// a temporary file, fsync, rename over the old one, fsync of the directory. A crash leaves the old or the new.
public import CodeRunnerWire
import FoundationEssentials
import Glibc

public enum StateError: Error, Equatable, CustomStringConvertible {
    case io(path: String, call: String, errno: Int32)
    case corrupt(path: String)
    /// The state directory is a symlink, not ours, or others may write to it: a planted file or link there could
    /// feed the agent a config or make it write the secrets elsewhere.
    case unsafeDirectory(path: String, reason: String)

    public var description: String {
        switch self {
        case .io(let path, let call, let e): "\(path): \(call) failed: \(String(cString: strerror(e)))"
        case .corrupt(let path): "\(path): not a config cache written by this agent; it is ignored"
        case .unsafeDirectory(let path, let reason): "the state directory \(path) \(reason); the last-known-good cache is not used (chmod 700 and chown it to the agent's user)"
        }
    }
}

public struct LastKnownGood: Sendable {
    public static let fileName = "last-known-good.json"
    public let directory: String
    public var path: String { directory + "/" + Self.fileName }

    public init(directory: String) { self.directory = directory }

    /// Creates the state directory (0700) when missing, and checks it (`verifyDirectory`).
    public func prepare() throws(StateError) {
        if mkdir(directory, 0o700) != 0 && errno != EEXIST { throw .io(path: directory, call: "mkdir", errno: errno) }
        try verifyDirectory()
    }

    /// A directory, not a symlink, owned by the agent's user, which no one else may write to.
    public func verifyDirectory() throws(StateError) {
        var st = stat()
        guard lstat(directory, &st) == 0 else { throw .io(path: directory, call: "lstat", errno: errno) }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw .unsafeDirectory(path: directory, reason: "is not a directory (a symlink?)") }
        guard st.st_uid == geteuid() else { throw .unsafeDirectory(path: directory, reason: "belongs to uid \(st.st_uid), not the agent's \(geteuid())") }
        guard st.st_mode & 0o022 == 0 else {
            throw .unsafeDirectory(path: directory, reason: "has mode \(String(st.st_mode & 0o777, radix: 8)): others may write to it")
        }
    }

    /// nil when there is no cache yet.
    public func load() throws(StateError) -> AgentConfig? {
        try verifyDirectory()
        let fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
        if fd < 0 {
            if errno == ENOENT { return nil }
            throw .io(path: path, call: "open", errno: errno)
        }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let n = chunk.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw .io(path: path, call: "read", errno: errno) }
            if n == 0 { break }
            bytes += chunk[0..<n]
        }
        do {
            return try JSONDecoder().decode(AgentConfig.self, from: Data(bytes))
        } catch {
            throw .corrupt(path: path)
        }
    }

    public func save(_ config: AgentConfig) throws(StateError) {
        let bytes: [UInt8]
        do {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.sortedKeys]
            bytes = Array(try encoder.encode(config))
        } catch {
            throw .corrupt(path: path)
        }
        try verifyDirectory()
        // A new file (O_EXCL), never through a planted link (O_NOFOLLOW); a leftover of a crash is replaced.
        let temporary = path + ".tmp.\(getpid())"
        var fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd < 0 && errno == EEXIST {
            unlink(temporary)
            fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        }
        guard fd >= 0 else { throw .io(path: temporary, call: "open", errno: errno) }
        var ok = false
        defer {
            close(fd)
            if !ok { unlink(temporary) }
        }
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 { if errno == EINTR { continue }; throw .io(path: temporary, call: "write", errno: errno) }
            offset += n
        }
        guard fsync(fd) == 0 else { throw .io(path: temporary, call: "fsync", errno: errno) }
        guard rename(temporary, path) == 0 else { throw .io(path: path, call: "rename", errno: errno) }
        ok = true
        let dir = open(directory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dir >= 0 {
            _ = fsync(dir)  // makes the rename itself durable
            close(dir)
        }
    }
}
