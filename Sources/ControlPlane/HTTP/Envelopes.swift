// Every answer is CodeRunnerWire's Envelope. Handlers return `Reply`; errors become envelopes in ErrorMiddleware.
import CodeRunnerWire
import Foundation
import HTTPTypes
import Hummingbird

enum EnvelopeCoding {
    static func encoder() -> JSONEncoder {
        let encoder = JSONEncoder()
        encoder.dateEncodingStrategy = .custom { date, encoder in
            var container = encoder.singleValueContainer()
            try container.encode(Timestamps.format(date))
        }
        encoder.outputFormatting = [.withoutEscapingSlashes]
        return encoder
    }

    static func response<T: Encodable & Sendable>(_ envelope: Envelope<T>, status: HTTPResponse.Status,
                                                 headers extra: HTTPFields = [:]) -> Response {
        let data = (try? encoder().encode(envelope)) ?? Data(#"{"success":false,"error":"response encoding failed"}"#.utf8)
        var headers: HTTPFields = [.contentType: "application/json; charset=utf-8"]
        headers.append(contentsOf: extra)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }

    static func error(status: HTTPResponse.Status, message: String, headers: HTTPFields = [:]) -> Response {
        response(Envelope<Empty>(success: false, error: message, timestamp: Timestamps.format(Date())), status: status,
                 headers: headers)
    }
}

/// A successful answer: data, optional message, status (200 unless a create says 201).
struct Reply<T: Encodable & Sendable>: ResponseGenerator {
    var data: T?
    var message: String?
    /// Set for an answer that reports a failure along with data (success false, as every error envelope).
    var error: String?
    var status: HTTPResponse.Status = .ok
    var headers: HTTPFields = [:]

    init(_ data: T?, message: String? = nil, status: HTTPResponse.Status = .ok, headers: HTTPFields = [:]) {
        self.data = data
        self.message = message
        self.status = status
        self.headers = headers
    }

    /// A failure that still carries data (the scaling event a failed override recorded).
    init(_ data: T?, error: String, status: HTTPResponse.Status) {
        self.data = data
        self.error = error
        self.status = status
    }

    func response(from request: Request, context: some RequestContext) throws -> Response {
        EnvelopeCoding.response(Envelope(success: error == nil, data: data, error: error, message: message,
                                         timestamp: Timestamps.format(Date())),
                                status: status, headers: headers)
    }
}

extension Reply where T == Empty {
    static func message(_ text: String) -> Reply<Empty> { Reply(nil, message: text) }
}

/// The agents' endpoint answer: the envelope around a config encoded once per version.
struct AgentConfigReply: ResponseGenerator {
    let rendered: RenderedAgentConfig

    func response(from request: Request, context: some RequestContext) throws -> Response {
        var buffer = ByteBuffer()
        buffer.writeString(#"{"success":true,"data":"#)
        buffer.writeBytes(rendered.dataJSON)
        buffer.writeString(#","timestamp":""# + Timestamps.format(Date()) + #""}"#)
        return Response(status: .ok,
                        headers: [.contentType: "application/json; charset=utf-8",
                                  HTTPField.Name("X-CodeRunner-Index")!: String(rendered.config.version)],
                        body: .init(byteBuffer: buffer))
    }
}
