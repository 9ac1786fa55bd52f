// The controller token file (--token-file): the deployment's agent token, which the agent sends as a bearer
// token. It grants the deployment's config, secrets included, so a file others can read earns a warning.
import Glibc
import Supervision

/// Reads the controller token file; warns (through `warn`) when others can read it.
public enum TokenFile {
    public static func read(path: String, warn: (String) -> Void) throws(StateError) -> String {
        var st = stat()
        guard stat(path, &st) == 0 else { throw .io(path: path, call: "stat", errno: errno) }
        if st.st_mode & 0o077 != 0 {
            warn("the token file \(path) has mode \(String(st.st_mode & 0o777, radix: 8)); it should be 0600 (chmod 600 \(path))")
        }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .io(path: path, call: "open", errno: errno) }
        defer { close(fd) }
        var buffer = [UInt8](repeating: 0, count: 4096)
        let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
        guard n >= 0 else { throw .io(path: path, call: "read", errno: errno) }
        let token = String(decoding: buffer[0..<n], as: UTF8.self).trimmingWhitespace
        guard !token.isEmpty else { throw .corrupt(path: path) }
        return token
    }
}
