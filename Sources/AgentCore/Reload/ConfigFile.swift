// `--config-file PATH --config-format dotenv|json`: the config's variables rendered to a file as well as to the
// environment, for an app that re-reads its configuration on a signal (an environment cannot change under a
// running process). Rendering is pure; writing is one atomic replace.
import CodeRunnerWire
import Glibc

/// The file's format.
public enum ConfigFileFormat: String, Sendable, Equatable, CaseIterable {
    /// `KEY="value"` lines, keys sorted, every value double-quoted with `\\ \" \n \r \t \$` escaped: the controller's
    /// own dotenv export, which docker compose, python-dotenv and Node's dotenv read back unchanged.
    case dotenv
    /// One JSON object of strings, keys sorted.
    case json
}

/// Where the file goes and who reads it.
public struct ConfigFileSettings: Sendable, Equatable {
    /// Absolute path on the host.
    public var path: String
    public var format: ConfigFileFormat
    /// The path as the app sees it (inside its sandbox's view), given to it as `CODERUNNER_CONFIG_FILE`.
    public var appPath: String
    /// The sandboxed app's uid and gid, which the file is given to; nil: the agent's own (the app runs as the agent).
    public var owner: (uid: UInt32, gid: UInt32)?

    public init(path: String, format: ConfigFileFormat, appPath: String? = nil, owner: (uid: UInt32, gid: UInt32)? = nil) {
        self.path = path; self.format = format; self.appPath = appPath ?? path; self.owner = owner
    }

    public static func == (a: ConfigFileSettings, b: ConfigFileSettings) -> Bool {
        a.path == b.path && a.format == b.format && a.appPath == b.appPath && a.owner?.uid == b.owner?.uid
            && a.owner?.gid == b.owner?.gid
    }

    /// The variable that tells the app where its file is.
    public static let environmentName = "CODERUNNER_CONFIG_FILE"
}

public struct ConfigFileError: Error, Equatable, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}

public enum ConfigFile {
    /// The file's text for `variables`, keys in ascending byte order.
    public static func render(_ variables: [String: String], format: ConfigFileFormat) -> String {
        let keys = variables.keys.sorted { Array($0.utf8).lexicographicallyPrecedes(Array($1.utf8)) }
        switch format {
        case .dotenv:
            var out = ""
            for key in keys { DotenvText.append(key: key, value: variables[key] ?? "", to: &out) }
            return out
        case .json:
            let members = keys.map { "  \(jsonString($0)): \(jsonString(variables[$0] ?? ""))" }
            return members.isEmpty ? "{}\n" : "{\n" + members.joined(separator: ",\n") + "\n}\n"
        }
    }

    /// A JSON string literal (RFC 8259: `"` `\` and the control characters escaped).
    static func jsonString(_ s: String) -> String { QuotedText.quoted(s) }

    /// Replaces the file at `settings.path` with `variables`, atomically: a temporary file in the same directory
    /// (mode 0600, given to the owner) renamed over it, so that a reader sees the old file or the new one, never a
    /// part. Not synced to disk: the agent writes it again before every start, so a crash loses nothing, and a
    /// signalled reload does not wait for the disk.
    public static func write(_ variables: [String: String], to settings: ConfigFileSettings) throws(ConfigFileError) {
        let bytes = Array(render(variables, format: settings.format).utf8)
        let directory = settings.path.lastIndex(of: "/").map { String(settings.path[..<$0]) } ?? "."
        let name = settings.path.split(separator: "/").last.map(String.init) ?? settings.path
        let temporary = (directory.isEmpty ? "" : directory) + "/.\(name).\(getpid()).tmp"
        _ = unlink(temporary)  // a leftover of a crash of this very pid
        // The app's own directory for it, when missing (outside a sandbox; the sandbox's is made at the agent's start).
        if !directory.isEmpty, mkdir(directory, 0o700) != 0, errno != EEXIST {
            throw ConfigFileError("cannot create \(directory) for the config file: \(String(cString: strerror(errno)))")
        }
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw ConfigFileError("cannot create \(temporary): \(String(cString: strerror(errno)))") }
        func fail(_ what: String) -> ConfigFileError {
            let reason = String(cString: strerror(errno))
            close(fd)
            unlink(temporary)
            return ConfigFileError("cannot write the config file \(settings.path): \(what): \(reason)")
        }
        // The umask may have narrowed the mode; 0600 is what the app's owner needs, and nobody else gets.
        guard fchmod(fd, 0o600) == 0 else { throw fail("fchmod") }
        if let owner = settings.owner, fchown(fd, owner.uid, owner.gid) != 0 { throw fail("fchown to \(owner.uid)") }
        var offset = 0
        while offset < bytes.count {
            let n = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress! + offset, bytes.count - offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw fail("write")
            }
            offset += n
        }
        close(fd)
        guard rename(temporary, settings.path) == 0 else {
            let reason = String(cString: strerror(errno))
            unlink(temporary)
            throw ConfigFileError("cannot write the config file \(settings.path): rename: \(reason)")
        }
    }
}
