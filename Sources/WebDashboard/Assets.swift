// The stylesheet, compiled into the binary and served with a strong ETag: a browser revalidates with
// If-None-Match and gets 304, and a page links it with ?v=<etag>, which may be cached for good.
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore
import Sealing

struct Asset: Sendable {
    let bytes: [UInt8]
    let contentType: String
    /// SHA-256 of the bytes, shortened: names this exact content.
    let version: String

    init(bytes: [UInt8], contentType: String) {
        self.bytes = bytes
        self.contentType = contentType
        version = String(Digest.sha256Hex(bytes).prefix(20))
    }

    var etag: String { "\"\(version)\"" }

    /// A year (the most RFC 9111 caches honour) for a versioned URL; otherwise revalidate on every use.
    static let immutable = "public, max-age=31536000, immutable"
    static let revalidate = "no-cache"

    func response(to request: Request) -> Response {
        let versioned = request.uri.queryParameters.get("v") == version
        var headers: HTTPFields = [
            .eTag: etag,
            .cacheControl: versioned ? Self.immutable : Self.revalidate,
            .xContentTypeOptions: "nosniff",
        ]
        if Self.matches(request.headers[.ifNoneMatch], etag: etag) {
            return Response(status: .notModified, headers: headers)
        }
        headers[.contentType] = contentType
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    /// RFC 9110 13.1.2: If-None-Match is `*` or a list of entity tags, compared weakly (W/ ignored).
    static func matches(_ header: String?, etag: String) -> Bool {
        guard let header else { return false }
        return header.split(separator: ",").contains { candidate in
            var tag = candidate.trimmingCharacters(in: .whitespaces)
            if tag == "*" { return true }
            if tag.hasPrefix("W/") { tag.removeFirst(2) }
            return tag == etag
        }
    }
}

enum Assets {
    static let stylesheet = Asset(bytes: PackageResources.app_css, contentType: "text/css; charset=utf-8")
}
