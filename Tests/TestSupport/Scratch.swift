public import Foundation

/// A scratch directory with helpers to write scripts and read files back.
public struct Scratch {
    public let url: URL

    public init() throws {
        url = try TestSupport.makeTemporaryDirectory("scratch")
    }

    public func path(_ name: String) -> String { url.appendingPathComponent(name).path }

    /// Writes an executable script and returns its path.
    @discardableResult
    public func script(_ name: String, _ text: String, executable: Bool = true) throws -> String {
        let p = path(name)
        try text.write(toFile: p, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: executable ? 0o755 : 0o644], ofItemAtPath: p)
        return p
    }

    public func read(_ name: String) -> String {
        (try? String(contentsOfFile: path(name), encoding: .utf8)) ?? ""
    }

    public func lines(_ name: String) -> [String] {
        read(name).split(separator: "\n").map(String.init)
    }

    public func remove() {
        try? FileManager.default.removeItem(at: url)
    }
}

/// One entry of /proc: pid, state letter and parent pid (parsed after the last ')', as comm may hold anything).
public struct ProcEntry {
    public let pid: Int32
    public let state: Character
    public let ppid: Int32

    public static func all() -> [ProcEntry] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc") else { return [] }
        return names.compactMap { name in
            guard let pid = Int32(name), let entry = read(pid) else { return nil }
            return entry
        }
    }

    public static func read(_ pid: Int32) -> ProcEntry? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
            let close = text.lastIndex(of: ")")
        else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 2, let state = fields[0].first, let ppid = Int32(fields[1]) else { return nil }
        return ProcEntry(pid: pid, state: state, ppid: ppid)
    }

    public static func exists(_ pid: Int32) -> Bool { read(pid) != nil }
}
