// Checks on what a user types, before anything is sent: KEY=VALUE assignments, variable names, the server URL,
// and how a name or an id picks one item of a list the API returned.
import CodeRunnerWire

public enum Arguments {
    /// A variable name as the controller accepts it: a letter or underscore, then letters, digits, underscores.
    public static func isVariableName(_ key: String) -> Bool {
        guard let first = key.unicodeScalars.first, key.unicodeScalars.count <= 256 else { return false }
        func ok(_ c: Unicode.Scalar, first: Bool) -> Bool {
            (c >= "A" && c <= "Z") || (c >= "a" && c <= "z") || c == "_" || (!first && c >= "0" && c <= "9")
        }
        return ok(first, first: true) && key.unicodeScalars.dropFirst().allSatisfy { ok($0, first: false) }
    }

    /// `KEY=VALUE` (the value may be empty and may hold "="); `KEY` alone gives a nil value (asked for later).
    public static func assignment(_ text: String) throws(CLIError) -> (key: String, value: String?) {
        let key: String, value: String?
        if let eq = text.firstIndex(of: "=") {
            key = String(text[..<eq])
            value = String(text[text.index(after: eq)...])
        } else {
            key = text
            value = nil
        }
        guard isVariableName(key) else {
            throw CLIError(.usage, "\(key.isEmpty ? "\"\"" : key) is not a variable name: use letters, digits and _, not starting with a digit")
        }
        return (key, value)
    }

    /// A server URL: http or https, with a host; a trailing "/" is dropped.
    public static func serverURL(_ text: String) throws(CLIError) -> String {
        var url = text
        while url.hasSuffix("/") { url.removeLast() }
        for scheme in ["http://", "https://"] where url.hasPrefix(scheme) && url.count > scheme.count {
            return url
        }
        throw CLIError(.usage, "--server must be an http:// or https:// URL, got \(text)")
    }

    /// The item whose `id` is `wanted`, else the only one whose `name` is. Several with that name is a usage error.
    public static func pick(_ items: [JSON], _ wanted: String, kind: String) throws(CLIError) -> JSON {
        if let byId = items.first(where: { $0["id"]?.string == wanted }) { return byId }
        let named = items.filter { $0["name"]?.string == wanted }
        if named.count == 1 { return named[0] }
        if named.isEmpty { throw CLIError(.notFound, "\(kind) \(wanted) not found") }
        throw CLIError(.usage, "\(named.count) \(kind)s are named \(wanted): give the id instead")
    }

    /// RFC 3986 percent-encoding (CodeRunnerWire.URLText: one encoder for agent, controller and CLI).
    public static func percentEncoded(_ s: String) -> String { URLText.percentEncoded(s) }
}

/// Where the server and token come from: CODERUNNER_SERVER and CODERUNNER_TOKEN override the current context.
public struct ServerTarget: Sendable, Equatable {
    public var server: String
    public var token: String?

    public init(server: String, token: String?) {
        self.server = server
        self.token = token
    }

    public static func resolve(config: CLIConfig, contextName: String?, serverEnv: String?, tokenEnv: String?) throws(CLIError) -> ServerTarget {
        let context: CLIContext?
        if let contextName {
            guard let named = config.contexts.first(where: { $0.name == contextName }) else {
                throw CLIError(.notFound, "context \(contextName) not found (coderunner context list)")
            }
            context = named
        } else {
            context = config.current
        }
        let server: String
        if let env = serverEnv, !env.isEmpty { server = try Arguments.serverURL(env) } else if let context { server = context.server } else {
            throw CLIError(.unauthorized, "not logged in: run coderunner login --server URL, or set CODERUNNER_SERVER and CODERUNNER_TOKEN")
        }
        let token = (tokenEnv?.isEmpty == false ? tokenEnv : nil) ?? context?.token
        return ServerTarget(server: server, token: token)
    }
}
