// GET against the agents and controllers the tests start, through curl(1). FoundationNetworking's URLSession
// stalled for good here under the parallel suites (requests a server answered at once never completed).
import Foundation

public enum LoopbackHTTPError: Error, CustomStringConvertible {
    case failed(url: String, status: Int32?, message: String)
    public var description: String {
        switch self {
        case .failed(let url, let status, let message):
            "GET \(url): curl \(status.map(String.init) ?? "timed out"): \(message)"
        }
    }
}

extension TestSupport {
    /// The body of a successful (2xx) GET of `url`, bounded by `timeout`.
    public static func get(_ url: String, timeout: Duration = .seconds(10)) throws -> Data {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = ["-sSf", "--max-time", String(timeout.components.seconds), url]
        let output = Pipe(), errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let status = process.waitForExit(timeout: timeout + .seconds(5))
        guard status == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw LoopbackHTTPError.failed(url: url, status: status, message: message)
        }
        return data
    }
}
