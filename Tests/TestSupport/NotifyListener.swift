// A bound AF_UNIX datagram socket standing in for systemd's notification socket (NOTIFY_SOCKET), by path or in
// the abstract namespace: the tests read the exact bytes systemd would receive.
public import Foundation

public final class NotifyListener {
    public struct SetupError: Error, CustomStringConvertible {
        public let description: String
    }

    public let fd: Int32
    /// The value for NOTIFY_SOCKET.
    public let address: String
    private let path: String?

    /// Binds `<directory>/notify` when `directory` is given, else a unique abstract name.
    public init(directory: URL?) throws {
        fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw SetupError(description: "socket: \(String(cString: strerror(errno)))") }
        var timeout = timeval(tv_sec: 5, tv_usec: 0)  // a missing datagram fails the test instead of hanging it
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var name: [UInt8]
        if let directory {
            path = directory.appendingPathComponent("notify").path
            address = path!
            name = Array(address.utf8) + [0]
        } else {
            path = nil
            address = "@coderunner-test-notify-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
            name = Array(address.utf8)
            name[0] = 0
        }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &addr.sun_path) { $0.copyBytes(from: name) }
        let length = socklen_t(MemoryLayout<sockaddr_un>.offset(of: \.sun_path)! + name.count)
        let rc = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) } }
        guard rc == 0 else {
            let message = "bind \(address): \(String(cString: strerror(errno)))"
            close(fd)
            throw SetupError(description: message)
        }
    }

    /// One datagram, whole (MSG_TRUNC reports its real size even if the buffer were too small); nil after the
    /// 5 s receive timeout.
    public func receive() -> [UInt8]? {
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, Int32(MSG_TRUNC)) }
        guard n >= 0, n <= buffer.count else { return nil }
        return Array(buffer[..<n])
    }

    /// Whether a datagram is waiting (without blocking).
    public var hasPending: Bool {
        var byte: UInt8 = 0
        return recv(fd, &byte, 1, Int32(MSG_PEEK | MSG_DONTWAIT)) >= 0
    }

    deinit {
        close(fd)
        if let path { unlink(path) }
    }
}
