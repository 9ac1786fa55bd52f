// The agent's config query names its instance (`?instance=`), so that during a rollout the controller serves an agent
// on the deployment's shared token the version of its own turn; the id travels percent-encoded.
@testable import AgentCore
import Testing

@Suite struct ControllerClientURLTests {
    @Test(arguments: [
        (nil, nil, "http://c:8480/api/agent/v1/config"),
        (nil, "web-1", "http://c:8480/api/agent/v1/config?instance=web-1"),
        (7, nil, "http://c:8480/api/agent/v1/config?index=7&wait=30000ms"),
        (7, "web-1", "http://c:8480/api/agent/v1/config?index=7&wait=30000ms&instance=web-1"),
        // An empty --instance names nobody (the controller refuses an empty id): the query leaves it out.
        (7, "", "http://c:8480/api/agent/v1/config?index=7&wait=30000ms"),
        // What a label may hold that a query may not: & # % + = ? / and non-unreserved marks.
        (nil, "a&b#c%d+e=f?g/h:i~j_k.l", "http://c:8480/api/agent/v1/config?instance=a%26b%23c%25d%2Be%3Df%3Fg%2Fh%3Ai~j_k.l"),
    ] as [(Int64?, String?, String)])
    func configURL(index: Int64?, instance: String?, url: String) {
        #expect(ControllerClient.configURL(base: "http://c:8480", index: index, wait: .seconds(30), instance: instance) == url)
    }

    @Test func everyByteOutsideTheUnreservedSetIsEncodedWithTwoHexDigits() {
        #expect(ControllerClient.percentEncoded("\u{1}!é") == "%01%21%C3%A9")
    }
}
