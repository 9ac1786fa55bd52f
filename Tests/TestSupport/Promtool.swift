// Debian's promtool, the reference check of the Prometheus text format.
import Foundation

public enum Promtool {
    /// Runs `promtool check metrics` on `text`; returns (exit status, combined output).
    public static func check(_ text: String) throws -> (Int32, String) {
        let result = try TestSupport.run("/usr/bin/promtool", ["check", "metrics"], input: Data(text.utf8), timeout: .seconds(30))
        return (result.status ?? -1, String(decoding: result.stdout + result.stderr, as: UTF8.self))
    }
}

extension Promtool {
    /// `promtool check rules FILE` and `promtool test rules FILE`: (exit status, combined output).
    public static func rules(_ verb: String, _ path: String) throws -> (Int32, String) {
        let result = try TestSupport.run("/usr/bin/promtool", [verb, "rules", path], timeout: .seconds(60))
        return (result.status ?? -1, String(decoding: result.stdout + result.stderr, as: UTF8.self))
    }
}
