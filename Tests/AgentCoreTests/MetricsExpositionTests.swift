// The Prometheus renderer: exact text, and the agent's whole /metrics body through Debian's promtool.
import AgentCore
import CodeRunnerWire
import Foundation
import ProcSampling
import Supervision
import TestSupport
import Testing

struct MetricsExpositionTests {
    @Test func rendersExactTextWithEscapedLabels() throws {
        let families = [
            MetricFamily(name: "demo_requests_total", help: "Requests.\nSecond line with \\ backslash.", type: .counter, samples: [
                MetricSample(labels: [MetricLabel("path", "/a\"b\\c\nd")], value: 3),
                MetricSample(labels: [MetricLabel("path", "/")], value: 1.5),
            ]),
            .single("demo_ratio", "A ratio.", .gauge, 0.25),
            .single("demo_unknown", "Not known yet.", .gauge, nil),
        ]
        let text = PrometheusText.render(families, commonLabels: [MetricLabel("deployment", "dep-1")])
        #expect(text == """
            # HELP demo_requests_total Requests.\\nSecond line with \\\\ backslash.
            # TYPE demo_requests_total counter
            demo_requests_total{deployment="dep-1",path="/a\\"b\\\\c\\nd"} 3
            demo_requests_total{deployment="dep-1",path="/"} 1.5
            # HELP demo_ratio A ratio.
            # TYPE demo_ratio gauge
            demo_ratio{deployment="dep-1"} 0.25
            # HELP demo_unknown Not known yet.
            # TYPE demo_unknown gauge

            """)
        let (status, output) = try Promtool.check(text)
        #expect(status == 0)
        #expect(output.isEmpty, "promtool: \(output)")
    }

    @Test func mergesFamiliesThatShareAName() {
        let text = PrometheusText.render([
            .single("x_total", "First.", .counter, 1),
            MetricFamily(name: "x_total", help: "Second.", type: .counter, samples: [MetricSample(labels: [MetricLabel("a", "b")], value: 2)]),
        ])
        #expect(text == "# HELP x_total First.\n# TYPE x_total counter\nx_total 1\nx_total{a=\"b\"} 2\n")
    }

    @Test(arguments: [
        (0.0, "0"), (42.0, "42"), (-3.0, "-3"), (0.5, "0.5"), (1e-05, "1e-05"), (1.0e20, "1e+20"),
        (Double.infinity, "+Inf"), (-Double.infinity, "-Inf"), (Double.nan, "NaN"), (12.345678, "12.345678"),
    ])
    func formatsValues(_ value: Double, _ expected: String) {
        #expect(PrometheusText.formatValue(value) == expected)
    }

    static let snapshot = SupervisorSnapshot(state: .running, pid: 4321, startedAt: 1_795_740_000.5, restarts: 2,
                                             lastExit: .signaled(9), nextRestartAt: nil)
    static let sample = ProcessTreeSample(
        time: SampleTime(monotonicSeconds: 100, wallSeconds: 1_795_740_100), rootPresent: true, cpuSecondsTotal: 12.34,
        cpuCores: 0.5, cpuUtilizationPercent: 25, memoryRSSBytes: 10_485_760, memoryUtilizationPercent: 1.5625,
        processes: 3, threads: 7, openFds: 21, ioReadBytesTotal: 4096, ioWriteBytesTotal: 8192, tcpConnections: 5,
        allocation: ResourceAllocation(cpuCores: 2, cpuSource: .host, memoryBytes: 671_088_640, memorySource: .flag),
        cpuDemandCores: 4.5, cpuDemandPercent: 225)
    static let agentUsage = AgentUsage(cpuSecondsTotal: 0.25, residentMemoryBytes: 6_291_456, virtualMemoryBytes: 200_000_000,
                                       startTimeSeconds: 1_795_739_999.75, openFds: 9, maxFds: 1024)

    @Test func agentMetricsPassPromtoolWithExactLines() throws {
        let observations = AgentObservations(
            identity: AgentIdentity(deployment: "dep-1", instance: "inst \"a\"", version: "0.1.0"),
            snapshot: { Self.snapshot }, logs: nil, selfUsage: { Self.agentUsage })
        observations.publish(Self.sample)
        let text = observations.metricsText()
        let (status, output) = try Promtool.check(text)
        #expect(status == 0)
        #expect(output.isEmpty, "promtool: \(output)")

        let labels = "deployment=\"dep-1\",instance=\"inst \\\"a\\\"\""
        let lines = Set(text.split(separator: "\n").map(String.init))
        for expected in [
            "coderunner_agent_info{\(labels),version=\"0.1.0\"} 1",
            "coderunner_app_up{\(labels)} 1",
            "coderunner_app_restarts_total{\(labels)} 2",
            "coderunner_app_start_time_seconds{\(labels)} 1795740000.5",
            "coderunner_app_last_exit_code{\(labels)} 137",
            "coderunner_app_cpu_seconds_total{\(labels)} 12.34",
            "coderunner_app_cpu_cores{\(labels)} 0.5",
            "coderunner_app_cpu_utilization_percent{\(labels)} 25",
            "coderunner_app_cpu_demand_cores{\(labels)} 4.5",
            "coderunner_app_cpu_demand_percent{\(labels)} 225",
            "# TYPE coderunner_app_cpu_demand_cores gauge",
            "coderunner_app_memory_rss_bytes{\(labels)} 10485760",
            "coderunner_app_memory_utilization_percent{\(labels)} 1.5625",
            "coderunner_app_processes{\(labels)} 3",
            "coderunner_app_threads{\(labels)} 7",
            "coderunner_app_open_fds{\(labels)} 21",
            "coderunner_app_io_read_bytes_total{\(labels)} 4096",
            "coderunner_app_io_write_bytes_total{\(labels)} 8192",
            "coderunner_app_tcp_connections{\(labels)} 5",
            "process_cpu_seconds_total{\(labels)} 0.25",
            "process_resident_memory_bytes{\(labels)} 6291456",
            "process_start_time_seconds{\(labels)} 1795739999.75",
            "process_open_fds{\(labels)} 9",
            "process_max_fds{\(labels)} 1024",
            "# TYPE coderunner_app_cpu_seconds_total counter",
            "# TYPE coderunner_app_tcp_connections gauge",
        ] {
            #expect(lines.contains(expected), "missing: \(expected)")
        }
        // Every family exactly once.
        let helps = text.split(separator: "\n").filter { $0.hasPrefix("# HELP ") }.map { $0.split(separator: " ")[2] }
        #expect(helps.count == Set(helps).count)
    }

    @Test func beforeAnySampleAndExitTheFamiliesStayValid() throws {
        let observations = AgentObservations(identity: AgentIdentity(version: "0.1.0"),
                                             snapshot: { SupervisorSnapshot(state: .starting) }, logs: nil)
        let text = observations.metricsText()
        let (status, output) = try Promtool.check(text)
        #expect(status == 0 && output.isEmpty, "promtool: \(output)")
        let lines = Set(text.split(separator: "\n").map(String.init))
        #expect(lines.contains("coderunner_app_up 0"))
        #expect(lines.contains("# TYPE coderunner_app_last_exit_code gauge"))
        #expect(!lines.contains { $0.hasPrefix("coderunner_app_last_exit_code") })  // no value before the first exit
        // The real /proc/self figures of this test process.
        let rss = try #require(lines.first { $0.hasPrefix("process_resident_memory_bytes ") })
        #expect((Double(rss.split(separator: " ")[1]) ?? 0) > 1_000_000)
    }

    struct ReloadCounter: MetricFamilyProvider {
        func metricFamilies() -> [MetricFamily] { [.single("coderunner_config_reloads_total", "Config reloads applied.", .counter, 4)] }
    }

    @Test func otherModulesAddFamilies() throws {
        let observations = AgentObservations(identity: AgentIdentity(instance: "i-1", version: "0.1.0"),
                                             snapshot: { SupervisorSnapshot(state: .running, pid: 1) }, logs: nil)
        observations.register(ReloadCounter())
        let text = observations.metricsText()
        #expect(text.contains("# TYPE coderunner_config_reloads_total counter\ncoderunner_config_reloads_total{instance=\"i-1\"} 4\n"))
        let (status, output) = try Promtool.check(text)
        #expect(status == 0 && output.isEmpty, "promtool: \(output)")
    }

    @Test func statusCarriesTheSameFigures() {
        let status = StatusReport.status(snapshot: Self.snapshot, sample: Self.sample, agent: Self.agentUsage,
                                         identity: AgentIdentity(deployment: "dep-1", instance: "i-1", version: "0.1.0"))
        #expect(status == AgentStatus(
            state: "running", pid: 4321, restarts: 2, lastExit: AgentExit(signal: 9, shellCode: 137), startedAt: 1_795_740_000.5,
            deployment: "dep-1", instance: "i-1", version: "0.1.0", sampledAt: 1_795_740_100,
            app: AppUsage(cpuSecondsTotal: 12.34, cpuCores: 0.5, cpuUtilizationPercent: 25, cpuLimitCores: 2, memoryRssBytes: 10_485_760,
                          memoryUtilizationPercent: 1.5625, memoryLimitBytes: 671_088_640, processes: 3, threads: 7, openFds: 21,
                          ioReadBytesTotal: 4096, ioWriteBytesTotal: 8192, tcpConnections: 5, cpuDemandCores: 4.5,
                          cpuDemandPercent: 225),
            agent: Self.agentUsage))
    }
}
