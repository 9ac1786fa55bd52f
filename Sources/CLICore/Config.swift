// The CLI's configuration file ($XDG_CONFIG_HOME/coderunner/config.toml): contexts, each a server, a session token
// and the current project, environment and deployment. A small subset of TOML, written and read here: a top-level
// `current-context`, and one `[contexts."NAME"]` table per context with string values. The file holds tokens, so
// it must be mode 0600 (checked by `ConfigFile.checkMode`); the executable does the reading and writing.

import CodeRunnerWire

public struct CLIContext: Sendable, Equatable {
    public var name: String
    public var server: String
    public var token: String?
    public var email: String?
    public var project: String?
    public var environment: String?
    public var deployment: String?

    public init(name: String, server: String, token: String? = nil, email: String? = nil, project: String? = nil,
                environment: String? = nil, deployment: String? = nil) {
        self.name = name
        self.server = server
        self.token = token
        self.email = email
        self.project = project
        self.environment = environment
        self.deployment = deployment
    }

    static let keys = ["server", "token", "email", "project", "environment", "deployment"]

    public subscript(key: String) -> String? {
        get {
            switch key {
            case "server": server
            case "token": token
            case "email": email
            case "project": project
            case "environment": environment
            case "deployment": deployment
            default: nil
            }
        }
        set {
            switch key {
            case "server": server = newValue ?? ""
            case "token": token = newValue
            case "email": email = newValue
            case "project": project = newValue
            case "environment": environment = newValue
            case "deployment": deployment = newValue
            default: break
            }
        }
    }
}

public struct CLIConfig: Sendable, Equatable {
    public var currentContext: String?
    /// In file order.
    public var contexts: [CLIContext]

    public init(currentContext: String? = nil, contexts: [CLIContext] = []) {
        self.currentContext = currentContext
        self.contexts = contexts
    }

    public var current: CLIContext? {
        guard let currentContext else { return nil }
        return contexts.first { $0.name == currentContext }
    }

    /// Adds or replaces the context of that name.
    public mutating func upsert(_ context: CLIContext) {
        if let i = contexts.firstIndex(where: { $0.name == context.name }) { contexts[i] = context } else { contexts.append(context) }
    }

    /// Removes a context; when it was the current one, no context is current any more.
    @discardableResult
    public mutating func remove(_ name: String) -> Bool {
        guard let i = contexts.firstIndex(where: { $0.name == name }) else { return false }
        contexts.remove(at: i)
        if currentContext == name { currentContext = nil }
        return true
    }
}

public enum ConfigFile {
    public static let fileName = "config.toml"

    /// The file's directory: $XDG_CONFIG_HOME/coderunner, or $HOME/.config/coderunner (XDG Base Directory).
    public static func directory(xdgConfigHome: String?, home: String?) -> String? {
        if let xdg = xdgConfigHome, xdg.hasPrefix("/") { return xdg + "/coderunner" }
        guard let home, !home.isEmpty else { return nil }
        return home + "/.config/coderunner"
    }

    /// The file holds session tokens: any permission for group or others (beyond 0600) is refused, as ssh does
    /// with a private key.
    public static func checkMode(_ mode: UInt32, path: String) throws(CLIError) {
        let permissions = mode & 0o777
        guard permissions & 0o077 == 0 else {
            throw CLIError(.error, "\(path) is mode \(octal(permissions)); it holds tokens and must be 0600: run chmod 600 \(path)")
        }
    }

    static func octal(_ v: UInt32) -> String {
        let s = String(v, radix: 8)
        return String(repeating: "0", count: max(0, 4 - s.count)) + s
    }

    public static func render(_ config: CLIConfig) -> String {
        var out = "# coderunner CLI configuration (mode 0600: it holds session tokens)\n"
        if let current = config.currentContext { out += "current-context = \(quote(current))\n" }
        for context in config.contexts {
            out += "\n[contexts.\(quote(context.name))]\n"
            for key in CLIContext.keys {
                if let value = context[key] { out += "\(key) = \(quote(value))\n" }
            }
        }
        return out
    }

    public static func parse(_ text: String) throws(CLIError) -> CLIConfig {
        var config = CLIConfig()
        var section: String?  // the context's name, nil at top level
        for (number, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            func fail(_ reason: String) -> CLIError { CLIError(.error, "config.toml line \(number + 1): \(reason)") }
            let line = rawLine.trimmingSpaces()
            if line.isEmpty || line.hasPrefix("#") { continue }
            if line.hasPrefix("[") {
                guard line.hasSuffix("]"), line.hasPrefix("[contexts.") else { throw fail("expected [contexts.\"NAME\"]") }
                var inner = Substring(line.dropFirst("[contexts.".count).dropLast())
                let name: String
                if inner.hasPrefix("\"") {
                    guard let (parsed, rest) = unquote(inner), rest.trimmingSpaces().isEmpty else { throw fail("bad context name") }
                    name = parsed
                } else {
                    inner = Substring(inner.trimmingSpaces())
                    guard !inner.isEmpty, inner.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" || $0 == "_" }) else {
                        throw fail("bad context name")
                    }
                    name = String(inner)
                }
                guard !config.contexts.contains(where: { $0.name == name }) else { throw fail("context \(name) defined twice") }
                config.contexts.append(CLIContext(name: name, server: ""))
                section = name
                continue
            }
            guard let eq = line.firstIndex(of: "=") else { throw fail("expected key = \"value\"") }
            let key = String(line[..<eq]).trimmingSpaces()
            let rawValue = Substring(line[line.index(after: eq)...].trimmingSpaces())
            guard let (value, rest) = unquote(rawValue) else { throw fail("the value of \(key) must be a quoted string") }
            let trailing = rest.trimmingSpaces()
            guard trailing.isEmpty || trailing.hasPrefix("#") else { throw fail("unexpected text after the value of \(key)") }
            if let section {
                guard CLIContext.keys.contains(key) else { throw fail("unknown key \(key)") }
                config.contexts[config.contexts.count - 1][key] = value
                _ = section
            } else {
                guard key == "current-context" else { throw fail("unknown key \(key)") }
                config.currentContext = value
            }
        }
        for context in config.contexts where context.server.isEmpty {
            throw CLIError(.error, "config.toml: context \(context.name) has no server")
        }
        return config
    }

    /// A TOML basic string.
    static func quote(_ s: String) -> String { QuotedText.quoted(s, escapingDelete: true) }

    /// A TOML basic string at the start of `s`, and what follows it.
    static func unquote(_ s: Substring) -> (String, Substring)? {
        guard s.first == "\"" else { return nil }
        var out = String.UnicodeScalarView()
        var it = s.unicodeScalars.dropFirst()
        while let c = it.first {
            it = it.dropFirst()
            switch c {
            case "\"": return (String(out), Substring(it))
            case "\\":
                guard let e = it.first else { return nil }
                it = it.dropFirst()
                switch e {
                case "\"": out.append("\"")
                case "\\": out.append("\\")
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                case "u":
                    let hex = String(String.UnicodeScalarView(it.prefix(4)))
                    guard hex.count == 4, let v = UInt32(hex, radix: 16), let u = Unicode.Scalar(v) else { return nil }
                    it = it.dropFirst(4)
                    out.append(u)
                default: return nil
                }
            default: out.append(c)
            }
        }
        return nil
    }
}

extension StringProtocol {
    func trimmingSpaces() -> String {
        var s = Substring(self)
        while let c = s.first, c == " " || c == "\t" || c == "\r" { s = s.dropFirst() }
        while let c = s.last, c == " " || c == "\t" || c == "\r" { s = s.dropLast() }
        return String(s)
    }
}
