// Validation rules for configuration input. Pure: values in, values or typed errors out.
import Foundation

/// The deployment stages a config or a deployment belongs to (stored in environment_configs.environment
/// and deployments.environment).
public enum EnvironmentName: String, Codable, Sendable, CaseIterable {
    case development, staging, production
}

/// What a variable's value must look like (`variable_type`); `secret` is always sealed at rest.
public enum VariableType: String, Codable, Sendable, CaseIterable {
    case string, number, boolean, json, url, secret
}

public enum Validation {
    /// Longest key the schema accepts (environment_variables.key is VARCHAR(255)).
    public static let maxKeyLength = 255
    /// Longest value; an environment larger than this is almost certainly a mistake and bloats every agent poll.
    public static let maxValueBytes = 64 * 1024
    public static let maxNameLength = 255

    /// `[A-Za-z_][A-Za-z0-9_]*`, at most 255 characters: what a POSIX shell accepts as a variable name.
    public static func checkKey(_ key: String, field: String = "key") throws(ControlPlaneError) {
        guard !key.isEmpty else { throw .validation(field: field, reason: "must not be empty") }
        guard key.utf8.count <= maxKeyLength else {
            throw .validation(field: field, reason: "must be at most \(maxKeyLength) characters")
        }
        for (index, byte) in key.utf8.enumerated() {
            let letter = (byte >= 0x41 && byte <= 0x5A) || (byte >= 0x61 && byte <= 0x7A) || byte == 0x5F
            let digit = byte >= 0x30 && byte <= 0x39
            guard letter || (digit && index > 0) else {
                throw .validation(field: field, reason: "must match [A-Za-z_][A-Za-z0-9_]*")
            }
        }
    }

    /// Checks a value against its declared type. NUL bytes are refused because execve cannot pass them.
    public static func checkValue(_ value: String, type: VariableType, field: String = "value") throws(ControlPlaneError) {
        guard value.utf8.count <= maxValueBytes else {
            throw .validation(field: field, reason: "must be at most \(maxValueBytes) bytes")
        }
        guard !value.utf8.contains(0) else {
            throw .validation(field: field, reason: "must not contain a NUL byte")
        }
        switch type {
        case .string, .secret:
            return
        case .number:
            let trimmed = value.trimmingCharacters(in: .whitespaces)
            guard trimmed == value, !value.isEmpty, Double(value) != nil,
                  value.lowercased() != "nan", !value.lowercased().contains("inf")
            else { throw .validation(field: field, reason: "must be a number for variableType number") }
        case .boolean:
            guard ["true", "false"].contains(value) else {
                throw .validation(field: field, reason: "must be true or false for variableType boolean")
            }
        case .json:
            guard let data = value.data(using: .utf8),
                  (try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed])) != nil
            else { throw .validation(field: field, reason: "must be valid JSON for variableType json") }
        case .url:
            guard let components = URLComponents(string: value), let scheme = components.scheme,
                  !scheme.isEmpty, components.host.map({ !$0.isEmpty }) ?? false
            else { throw .validation(field: field, reason: "must be an absolute URL with a scheme and host for variableType url") }
        }
    }

    /// A required, non-blank, bounded display name.
    public static func checkName(_ name: String?, field: String = "name") throws(ControlPlaneError) -> String {
        guard let name, !name.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw .validation(field: field, reason: "is required")
        }
        guard name.count <= maxNameLength else {
            throw .validation(field: field, reason: "must be at most \(maxNameLength) characters")
        }
        guard !name.utf8.contains(0) else { throw .validation(field: field, reason: "must not contain a NUL byte") }
        return name
    }

    /// A syntactically plausible e-mail address: one @, something on both sides, no spaces.
    public static func checkEmail(_ email: String?) throws(ControlPlaneError) -> String {
        guard let email, !email.isEmpty else { throw .validation(field: "email", reason: "is required") }
        let parts = email.split(separator: "@", omittingEmptySubsequences: false)
        guard email.count <= 254, parts.count == 2, !parts[0].isEmpty, parts[1].contains("."),
              !parts[1].hasPrefix("."), !parts[1].hasSuffix("."),
              !email.contains(where: { $0.isWhitespace || $0 == "\0" })
        else { throw .validation(field: "email", reason: "must be an e-mail address") }
        return email.lowercased()
    }

    /// bcrypt reads at most 72 bytes; refusing longer passwords avoids silently ignoring their tail.
    public static func checkPassword(_ password: String?) throws(ControlPlaneError) -> String {
        guard let password, !password.isEmpty else { throw .validation(field: "password", reason: "is required") }
        guard password.utf8.count >= 8 else { throw .validation(field: "password", reason: "must be at least 8 characters") }
        guard password.utf8.count <= 72 else { throw .validation(field: "password", reason: "must be at most 72 bytes (bcrypt's limit)") }
        guard !password.utf8.contains(0) else { throw .validation(field: "password", reason: "must not contain a NUL byte") }
        return password
    }
}
