// The CLI's edges with the terminal and the file system: stdout/stderr, prompts without echo (termios), the
// config file (mode 0600, written atomically) and whole files read for import and apply.
import CLICore
import Glibc

enum Terminal {
    static func out(_ text: String) {
        var text = text
        text.withUTF8 { writeAll(1, $0) }
    }

    static func err(_ text: String) {
        var text = text
        text.withUTF8 { writeAll(2, $0) }
    }

    private static func writeAll(_ fd: Int32, _ buffer: UnsafeBufferPointer<UInt8>) {
        var offset = 0
        while offset < buffer.count {
            let n = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { return }
            offset += n
        }
    }

    static var stdinIsTerminal: Bool { isatty(0) == 1 }
    static var stdoutIsTerminal: Bool { isatty(1) == 1 }
    static var stderrIsTerminal: Bool { isatty(2) == 1 }

    static func environment(_ name: String) -> String? { getenv(name).map { String(cString: $0) } }

    static var colour: Bool { Table.useColour(isTerminal: stdoutIsTerminal, noColor: environment("NO_COLOR")) }

    /// One line of stdin without its newline; nil at end of input.
    static func readLine() -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let n = read(0, &byte, 1)
            if n < 0 && errno == EINTR { continue }
            guard n == 1 else { return bytes.isEmpty ? nil : String(decoding: bytes, as: UTF8.self) }
            if byte == 0x0A { break }
            bytes.append(byte)
        }
        if bytes.last == 0x0D { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Asks on stderr and reads a line from the terminal. Off a terminal nothing is asked: `what` must come from a flag.
    static func prompt(_ question: String, what flag: String) throws(CLIError) -> String {
        guard stdinIsTerminal else { throw CLIError(.usage, "stdin is not a terminal: give \(flag)") }
        err(question)
        guard let line = readLine() else { throw CLIError(.usage, "no input") }
        return line
    }

    /// Asks on stderr and reads a line with echo off (termios), restored afterwards even on error.
    static func promptSecret(_ question: String, what flag: String) throws(CLIError) -> String {
        guard stdinIsTerminal else { throw CLIError(.usage, "stdin is not a terminal: give \(flag)") }
        var saved = termios()
        guard tcgetattr(0, &saved) == 0 else { throw CLIError(.error, "cannot read the terminal's settings") }
        var quiet = saved
        quiet.c_lflag &= ~tcflag_t(ECHO)
        quiet.c_lflag |= tcflag_t(ECHONL)
        err(question)
        _ = tcsetattr(0, TCSAFLUSH, &quiet)
        defer { _ = tcsetattr(0, TCSAFLUSH, &saved) }
        guard let line = readLine() else { throw CLIError(.usage, "no input") }
        return line
    }

    /// All of stdin, without one trailing newline (a secret piped with echo).
    static func readAllStdin() -> String {
        var bytes = readAll(0)
        if bytes.last == 0x0A { bytes.removeLast() }
        if bytes.last == 0x0D { bytes.removeLast() }
        return String(decoding: bytes, as: UTF8.self)
    }

    static func readAll(_ fd: Int32, limit: Int = 16 << 20) -> [UInt8] {
        var out: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while out.count < limit {
            let n = read(fd, &buffer, buffer.count)
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else { break }
            out.append(contentsOf: buffer[..<n])
        }
        return out
    }

    static func readFile(_ path: String) throws(CLIError) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw CLIError(.error, "cannot read \(path): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        return readAll(fd)
    }
}

/// $XDG_CONFIG_HOME/coderunner/config.toml.
struct ConfigStore {
    let directory: String
    var path: String { directory + "/" + ConfigFile.fileName }

    static func standard() throws(CLIError) -> ConfigStore {
        guard let directory = ConfigFile.directory(xdgConfigHome: Terminal.environment("XDG_CONFIG_HOME"),
                                                   home: Terminal.environment("HOME")) else {
            throw CLIError(.error, "neither XDG_CONFIG_HOME nor HOME is set: nowhere to keep the configuration")
        }
        return ConfigStore(directory: directory)
    }

    /// The configuration, or an empty one when there is no file yet. A file wider than 0600 is refused.
    func load() throws(CLIError) -> CLIConfig {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 {
            if errno == ENOENT { return CLIConfig() }
            throw CLIError(.error, "cannot read \(path): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else { throw CLIError(.error, "cannot stat \(path)") }
        try ConfigFile.checkMode(UInt32(info.st_mode), path: path)
        return try ConfigFile.parse(String(decoding: Terminal.readAll(fd), as: UTF8.self))
    }

    /// Writes a new file (mode 0600 from its creation) and renames it over the old one.
    func save(_ config: CLIConfig) throws(CLIError) {
        var parent = ""
        for part in directory.split(separator: "/") {
            parent += "/" + part
            if mkdir(parent, 0o700) != 0 && errno != EEXIST {
                throw CLIError(.error, "cannot create \(parent): \(String(cString: strerror(errno)))")
            }
        }
        let temporary = path + ".tmp.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0o600)
        guard fd >= 0 else { throw CLIError(.error, "cannot write \(temporary): \(String(cString: strerror(errno)))") }
        _ = fchmod(fd, 0o600)
        var text = ConfigFile.render(config)
        let written = text.withUTF8 { buffer in write(fd, buffer.baseAddress, buffer.count) == buffer.count }
        let synced = fsync(fd) == 0
        close(fd)
        guard written, synced, rename(temporary, path) == 0 else {
            unlink(temporary)
            throw CLIError(.error, "cannot write \(path): \(String(cString: strerror(errno)))")
        }
    }
}
