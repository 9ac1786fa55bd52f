// Decoding policy JSON (a single policy or an array of them) with messages that name the field, for the
// simulate command and the controller's policy API alike.
public import Foundation

public struct PolicyDocumentError: Error, Sendable, Equatable, CustomStringConvertible {
    public let message: String
    public var description: String { message }
}

public enum PolicyDocument {
    /// Decodes one policy object or an array of policies, then validates them together.
    public static func decode(_ data: Data, configuration: ScalingEngine.Configuration = .init()) throws(PolicyDocumentError) -> [ScalingPolicy] {
        let isArray = data.first(where: { ![0x20, 0x09, 0x0A, 0x0D].contains($0) }) == UInt8(ascii: "[")
        let policies: [ScalingPolicy]
        do {
            policies = isArray
                ? try JSONDecoder().decode([ScalingPolicy].self, from: data)
                : [try JSONDecoder().decode(ScalingPolicy.self, from: data)]
        } catch let error as DecodingError {
            throw PolicyDocumentError(message: describe(error))
        } catch {
            throw PolicyDocumentError(message: "\(error)")
        }
        do {
            _ = try ScalingEngine(policies: policies, configuration: configuration)
        } catch {
            throw PolicyDocumentError(message: error.problems.joined(separator: "\n"))
        }
        return policies
    }

    /// "scaleUpRules[0].metric: unknown metric ..." rather than DecodingError's debug dump.
    public static func describe(_ error: DecodingError) -> String {
        func path(_ keys: [any CodingKey]) -> String {
            var out = ""
            for k in keys {
                if let i = k.intValue { out += "[\(i)]" } else { out += (out.isEmpty ? "" : ".") + k.stringValue }
            }
            return out.isEmpty ? "the document" : out
        }
        switch error {
        case .dataCorrupted(let c):
            if c.codingPath.isEmpty {
                let detail = (c.underlyingError as? NSError)?.userInfo[NSDebugDescriptionErrorKey] as? String
                return "not valid JSON\(detail.map { ": \($0)" } ?? "")"
            }
            return "\(path(c.codingPath)): \(c.debugDescription)"
        case .keyNotFound(let key, let c):
            return "\(path(c.codingPath + [key])): required field is missing"
        case .typeMismatch(let type, let c):
            return "\(path(c.codingPath)): expected \(typeName(type))"
        case .valueNotFound(let type, let c):
            return "\(path(c.codingPath)): expected \(typeName(type)), got null"
        @unknown default:
            return "\(error)"
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is Double.Type, is Int.Type: "a number"
        case is String.Type: "a string"
        case is Bool.Type: "true or false"
        case is [Any].Type: "an array"
        default: "an object"
        }
    }
}
