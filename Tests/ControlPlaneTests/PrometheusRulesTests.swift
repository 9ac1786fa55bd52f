// packaging/prometheus/: the shipped rules pass Debian's promtool and their own unit tests.
import Foundation
import Testing
import TestSupport

@Suite struct PrometheusRulesTests {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("packaging/prometheus")

    @Test func rulesPassPromtoolCheck() throws {
        let (status, output) = try Promtool.rules("check", Self.directory.appendingPathComponent("coderunner.rules.yml").path)
        #expect(status == 0, "\(output)")
        #expect(output.contains("SUCCESS: 13 rules found"), "\(output)")
    }

    @Test func rulesPassTheirUnitTests() throws {
        let (status, output) = try Promtool.rules("test", Self.directory.appendingPathComponent("coderunner.rules.test.yml").path)
        #expect(status == 0, "\(output)")
        #expect(output.contains("SUCCESS"), "\(output)")
    }
}
