// Helpers shared by the test targets: locating the built binaries, temporary directories,
// and bounded waiting. Every wait here is bounded in time; nothing loops forever.
public import Foundation

public enum TestSupport {
    /// Directory holding the built executables: $CODERUNNER_BIN_DIR (set by scripts/test),
    /// else the directory of the running test bundle (SwiftPM puts both in the same bin path).
    public static var binDirectory: URL {
        if let dir = ProcessInfo.processInfo.environment["CODERUNNER_BIN_DIR"], !dir.isEmpty {
            return URL(fileURLWithPath: dir, isDirectory: true)
        }
        var url = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        // On Linux the test bundle is `<bin>/coderunnerPackageTests.xctest`.
        while url.pathComponents.count > 1 {
            url.deleteLastPathComponent()
            if FileManager.default.fileExists(atPath: url.appendingPathComponent("coderunner-agent").path) {
                return url
            }
        }
        return URL(fileURLWithPath: ".build/debug", isDirectory: true)
    }

    /// Absolute path of a built executable, e.g. `binary("coderunner-agent")`.
    public static func binary(_ name: String) -> String {
        binDirectory.appendingPathComponent(name).path
    }

    /// A fresh private temporary directory; the caller removes it.
    public static func makeTemporaryDirectory(_ prefix: String = "coderunner-test") throws -> URL {
        let url = FileManager.default.temporaryDirectory
            .appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))", isDirectory: true)
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Polls `condition` every `interval` until it holds or `timeout` passes. Returns whether it held: assert it
    /// (`#require`), or a check that follows runs on whatever state the wait gave up on.
    public static func waitUntil(
        timeout: Duration = .seconds(10), interval: Duration = .milliseconds(20),
        _ condition: () throws -> Bool
    ) rethrows -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            if try condition() { return true }
            Thread.sleep(forTimeInterval: Double(interval.components.attoseconds) / 1e18 + Double(interval.components.seconds))
        }
        return try condition()
    }

    /// Async variant of `waitUntil`.
    public static func waitUntil(
        timeout: Duration = .seconds(10), interval: Duration = .milliseconds(20),
        _ condition: () async throws -> Bool
    ) async rethrows -> Bool {
        let clock = ContinuousClock()
        let deadline = clock.now.advanced(by: timeout)
        while clock.now < deadline {
            if try await condition() { return true }
            try? await Task.sleep(for: interval)
        }
        return try await condition()
    }

    /// A loopback TCP port that was free a moment ago (bind to port 0, read it back, close).
    public static func freeLoopbackPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        precondition(fd >= 0, "socket() failed")
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { sa -> Bool in
                bind(fd, sa, len) == 0 && getsockname(fd, sa, &len) == 0
            }
        }
        precondition(bound, "bind to 127.0.0.1:0 failed")
        return Int(UInt16(bigEndian: addr.sin_port))
    }

    /// A TCP client connection to 127.0.0.1:port (blocking); the caller closes it. `receiveTimeout` bounds each
    /// read, so that a server that never answers fails the test instead of hanging it.
    public static func connectLoopback(_ port: UInt16, receiveTimeout: Int = 5) throws(POSIXError) -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EIO) }
        var timeout = timeval(tv_sec: receiveTimeout, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = port.bigEndian
        let rc = withUnsafePointer(to: &addr) { p in
            p.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard rc == 0 else {
            let code = errno
            close(fd)
            throw POSIXError(POSIXErrorCode(rawValue: code) ?? .EIO)
        }
        return fd
    }
}
