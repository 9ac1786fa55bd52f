// The live parts of the dashboard: live.js (the one script, embedded like the stylesheet) and the log export it
// links to. The script itself talks to GET /api/ws with the session cookie; this file only serves what it needs.
import ControlPlane
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

extension Assets {
    static let liveScript = Asset(bytes: PackageResources.live_js, contentType: "text/javascript; charset=utf-8")
}

extension WebDashboard {
    func addLivePages(to router: Router<ControlPlaneContext>) {
        router.get("assets/live.js") { request, _ in Assets.liveScript.response(to: request) }
        router.get("deployments/:id/logs.txt") { request, context in
            try await handle(request, context, signedIn: true) { web in try await exportLogs(web) }
        }
        router.get("deployments/:id/instances.json") { request, context in
            try await handle(request, context, signedIn: true) { web in try await instanceRows(web) }
        }
    }

    /// The deployment page's instance table as JSON rows (the same texts the page renders): live.js reads it again
    /// when status_update says the status or the instance count changed, as no event carries the rows. Owner only:
    /// another user's deployment gets the same 404 page as an unknown one.
    func instanceRows(_ web: WebRequest) async throws -> Response {
        let deployment = try await controlPlane.deployments.get(try web.parameter("id"), actor: web.actor)
        let instances = try await controlPlane.instances.instances(deploymentId: deployment.id)
        let rows = instances.sorted { $0.instanceId < $1.instanceId }.map(InstanceRow.init)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var headers = WebSecurity.pageHeaders()
        headers[.contentType] = "application/json; charset=utf-8"
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(bytes: try encoder.encode(rows))))
    }

    /// A plain link, so it works without script, and it holds what the live view already dropped from its window:
    /// the recent lines of every live instance, read from the agents as the API's `format=text` gives them.
    func exportLogs(_ web: WebRequest) async throws -> Response {
        let id = try web.parameter("id")
        let text = try await controlPlane.exportLogs(deploymentId: id, actor: web.actor)
        var headers = WebSecurity.pageHeaders()
        headers[.contentType] = "text/plain; charset=utf-8"
        headers[.contentDisposition] = "attachment; filename=\"\(Self.exportFilename(id))\""
        return Response(status: .ok, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// `deployment-<id>-logs.txt`; an id is the service's (a UUID), but the header must never carry a quote or a
    /// control character whatever it holds.
    static func exportFilename(_ id: String) -> String {
        let safe = id.unicodeScalars.map { scalar -> String in
            scalar.isASCII && (CharacterSet.alphanumerics.contains(scalar) || scalar == "-") ? String(scalar) : "_"
        }.joined()
        return "deployment-\(safe)-logs.txt"
    }
}
