import Glibc

/// Finds a command the way execvp does, but in the child's PATH rather than the agent's (posix_spawnp would use
/// the agent's, and a restart may change PATH).
public enum ExecutableLookup {
    public enum Resolution: Equatable, Sendable {
        case found(String)
        case notFound
        /// A file by that name exists but cannot be executed (the shell's 126).
        case permissionDenied(String)
    }

    /// glibc's default when PATH is unset (confstr(_CS_PATH)).
    public static let defaultPath = "/bin:/usr/bin"

    public static func resolve(_ name: String, path: String?) -> Resolution {
        if name.contains("/") {
            // execvp does no lookup either; posix_spawn reports ENOENT or EACCES for it.
            return .found(name)
        }
        guard !name.isEmpty else { return .notFound }
        var denied: String?
        for dir in (path ?? defaultPath).split(separator: ":", omittingEmptySubsequences: false) {
            let candidate = (dir.isEmpty ? "." : String(dir)) + "/" + name
            var st = stat()
            guard stat(candidate, &st) == 0 else { continue }
            if st.st_mode & S_IFMT == S_IFREG && access(candidate, X_OK) == 0 {
                return .found(candidate)
            }
            if denied == nil { denied = candidate }  // execvp remembers EACCES and keeps looking
        }
        return denied.map { .permissionDenied($0) } ?? .notFound
    }
}
