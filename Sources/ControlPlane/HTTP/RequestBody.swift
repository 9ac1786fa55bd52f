// Decoding request bodies with errors that name the offending field.
import Foundation
import Hummingbird

enum RequestBody {
    /// Collects at most 1 MiB (413 beyond) and decodes JSON; an empty body decodes as `{}`.
    static func decode<T: Decodable>(_ type: T.Type, from request: Request, context: ControlPlaneContext) async throws -> T {
        let bytes = try await collect(request, context: context)
        let data = bytes.isEmpty ? Data("{}".utf8) : Data(bytes)
        do {
            return try JSONDecoder().decode(T.self, from: data)
        } catch let error as DecodingError {
            throw describe(error)
        }
    }

    static func collect(_ request: Request, context: ControlPlaneContext) async throws -> [UInt8] {
        let buffer = try await request.body.collect(upTo: context.maxUploadSize)
        return Array(buffer.readableBytesView)
    }

    static func describe(_ error: DecodingError) -> ControlPlaneError {
        func path(_ codingPath: [any CodingKey]) -> String {
            let joined = codingPath.map { $0.intValue.map { "[\($0)]" } ?? ".\($0.stringValue)" }.joined()
            let trimmed = joined.hasPrefix(".") ? String(joined.dropFirst()) : joined
            return trimmed.isEmpty ? "body" : trimmed
        }
        switch error {
        case .typeMismatch(let type, let context):
            return .validation(field: path(context.codingPath), reason: "has the wrong type (expected \(typeName(type)))")
        case .valueNotFound(let type, let context):
            return .validation(field: path(context.codingPath), reason: "must not be null (expected \(typeName(type)))")
        case .keyNotFound(let key, let context):
            return .validation(field: path(context.codingPath + [key]), reason: "is required")
        case .dataCorrupted(let context):
            if context.codingPath.isEmpty {
                return .validation(field: "body", reason: "is not valid JSON")
            }
            return .validation(field: path(context.codingPath), reason: "has an invalid value")
        @unknown default:
            return .validation(field: "body", reason: "could not be decoded")
        }
    }

    private static func typeName(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "string"
        case is Bool.Type: "boolean"
        case is Int.Type, is Int64.Type, is Double.Type: "number"
        case is [Any].Type: "array"
        default: "\(type)".contains("Dictionary") ? "object" : "\(type)"
        }
    }
}
