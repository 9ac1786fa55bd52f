// swift-tools-version:6.0
// CodeRunner: the coderunner-agent sidecar and the coderunner-controller service.
//
// Layout (one job per target; see README "Architecture"):
//   C interop      CCurl, COpenSSL, CMicroHTTPD, CSeccomp (Debian system libraries), CSystemShims (libc calls and
//                  macros Swift cannot make: signalfd, prctl, wait-status macros, the sandboxed spawn), CCurlShims
//                  (libcurl's variadic calls), CShims (libmicrohttpd's)
//   shared         CodeRunnerWire (the Codable types agent and controller speak), ChildProcess (posix_spawn, and a
//                  detached thread)
//   agent          Supervision, ProcSampling, Sandbox, AgentCore -> coderunner-agent
//   controller     Sealing, Scaling (pure), CurlHTTP (async HTTP over libcurl's multi interface), ControlPlane
//                  -> coderunner-controller
//   cli            CLICore (pure), CurlHTTP, WSClient -> coderunner (the command-line client)
//   pg             PostgresStore (the store on PostgreSQL, `serve --database`) and StoreContractTests
// The agent never depends on controller libraries, and links no SwiftNIO: its footprint is a feature.
//
// CODERUNNER_ONLY=agent (or core, or controller, or cli; comma-separated) limits the package to those parts, so
// that working on the agent or the pure libraries does not build Hummingbird and GRDB. Unset means all.
// "controller" implies "cli", which holds CurlHTTP (shared by both) and the coderunner command-line client, and "pg"
// (the controller links PostgresStore for `serve --database`).
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    // Swift 6's coming defaults: an import no longer leaks to a module's clients unless it is `public import`,
    // and a module's members are visible only in files that import it.
    .enableUpcomingFeature("MemberImportVisibility"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let parts: Set<String> = {
    guard let only = Context.environment["CODERUNNER_ONLY"], !only.isEmpty else {
        return ["agent", "core", "controller", "cli", "e2e", "pg"]
    }
    var set = Set(only.split(separator: ",").map(String.init))
    if set.contains("controller") { set.formUnion(["core", "cli", "pg"]) }
    return set
}()

let argumentParser = Target.Dependency.product(name: "ArgumentParser", package: "swift-argument-parser")
let hummingbird = Target.Dependency.product(name: "Hummingbird", package: "hummingbird")
let logging = Target.Dependency.product(name: "Logging", package: "swift-log")
let nioCore = Target.Dependency.product(name: "NIOCore", package: "swift-nio")
let nioHTTP1 = Target.Dependency.product(name: "NIOHTTP1", package: "swift-nio")
let httpTypes = Target.Dependency.product(name: "HTTPTypes", package: "swift-http-types")

/// The dashboard's templates and assets, compiled into the binary (PackageResources.<file>_<ext>): nothing to
/// install beside it, and a page can never meet a template of another version.
let webDashboardResources: [Resource] = [
    "layout.mustache", "nav.mustache", "login.mustache", "register.mustache", "dashboard.mustache", "project.mustache",
    "audit.mustache", "deployments.mustache", "denied.mustache", "tabs.mustache", "deployment.mustache",
    "live.mustache",
    "scaling.mustache",
].map { .embedInCode("Templates/\($0)") } + ["app.css", "live.js"].map { .embedInCode("Assets/\($0)") }

var products: [Product] = []
var dependencies: [Package.Dependency] = [
    .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2")
]
var targets: [Target] = [
    // MARK: C interop (Debian's libraries through pkg-config)
    .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev"])]),
    .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
    .systemLibrary(name: "CMicroHTTPD", pkgConfig: "libmicrohttpd", providers: [.apt(["libmicrohttpd-dev"])]),
    .target(name: "CSystemShims"),
    .target(name: "CCurlShims", dependencies: ["CCurl"]),
    .target(name: "CShims", dependencies: ["CMicroHTTPD"]),
    .systemLibrary(name: "CSeccomp", pkgConfig: "libseccomp", providers: [.apt(["libseccomp-dev"])]),
    // MARK: Shared wire types
    .target(name: "CodeRunnerWire", swiftSettings: swiftSettings),
    // MARK: Starting child processes without Foundation's Process (see its header), for the controller and tests
    .target(name: "ChildProcess", dependencies: ["CSystemShims"], swiftSettings: swiftSettings),
    // MARK: Shared by the test targets
    // The agent harness decodes the agent's and the controller's answers with the wire types.
    .target(name: "TestSupport", dependencies: ["ChildProcess", "CodeRunnerWire"], path: "Tests/TestSupport", swiftSettings: swiftSettings),
]

if parts.contains("agent") {
    products.append(.executable(name: "coderunner-agent", targets: ["coderunner-agent"]))
    targets += [
        .target(name: "Supervision", dependencies: ["CSystemShims"], swiftSettings: swiftSettings),
        .target(name: "ProcSampling", swiftSettings: swiftSettings),
        // The app's sandbox: bubblewrap namespaces, cgroup limits, a seccomp filter (libseccomp), another uid.
        .target(name: "Sandbox", dependencies: ["Supervision", "ProcSampling", "CSystemShims", "CSeccomp"], swiftSettings: swiftSettings),
        .target(
            name: "AgentCore",
            dependencies: ["Supervision", "ProcSampling", "Sandbox", "CodeRunnerWire", "ChildProcess", "CShims", "CCurlShims", "CSystemShims", "CCurl", "CMicroHTTPD"],
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "coderunner-agent",
            dependencies: ["AgentCore", "Supervision", argumentParser],
            swiftSettings: swiftSettings,
            // A static Swift stdlib: no Swift runtime to install next to a sidecar. FoundationEssentials
            // (pulled in by ArgumentParser) needs its C shims and Synchronization named when linked statically.
            linkerSettings: [
                .unsafeFlags(["-static-stdlib", "-l_FoundationCShims", "-l_FoundationCollections", "-lswiftSynchronization"])
            ]),
        // Test targets do not depend on the executables: SwiftPM would link the executable's -static-stdlib
        // flags into the test bundle, which then cannot find libTesting. Tests run the built binaries through
        // CODERUNNER_BIN_DIR instead (scripts/test builds them first).
        .testTarget(name: "SupervisionTests", dependencies: ["Supervision", "TestSupport", "ChildProcess"], swiftSettings: swiftSettings),
        .testTarget(name: "SandboxTests", dependencies: ["Sandbox", "ProcSampling", "TestSupport", "ChildProcess"], swiftSettings: swiftSettings),
        .testTarget(name: "ProcSamplingTests", dependencies: ["ProcSampling", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "AgentCoreTests", dependencies: ["AgentCore", "Supervision", "ProcSampling", "CodeRunnerWire", "TestSupport", "ChildProcess"], swiftSettings: swiftSettings),
    ]
}

if parts.contains("core") {
    targets += [
        .target(name: "Sealing", dependencies: ["COpenSSL"], swiftSettings: swiftSettings),
        .target(name: "Scaling", swiftSettings: swiftSettings),
        .target(name: "Rollout", swiftSettings: swiftSettings),
        .testTarget(name: "SealingTests", dependencies: ["Sealing", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "ScalingTests", dependencies: ["Scaling", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(name: "RolloutTests", dependencies: ["Rollout"], swiftSettings: swiftSettings),
    ]
}

if parts.contains("cli") {
    products.append(.executable(name: "coderunner", targets: ["coderunner"]))
    dependencies += [
        // `coderunner logs -f` follows the live stream with swift-websocket's client (Debian 12's libcurl has no
        // WebSocket); the controller serves that stream with the same package. Both parts need these three.
        .package(url: "https://github.com/hummingbird-project/swift-websocket", from: "1.6.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ]
    targets += [
        // The controller's outgoing HTTP (agents' /v1/status and /v1/logs, tenants' webhooks) and the CLI's: libcurl's
        // multi interface on a thread of its own, with Debian's OpenSSL. No SwiftNIO.
        .target(name: "CurlHTTP", dependencies: ["CCurl", "CCurlShims", "ChildProcess"], swiftSettings: swiftSettings),
        // The CLI's pure parts (config file, JSON, tables, exit codes, the live stream's frames); the executable does
        // the I/O: requests over CurlHTTP, and SwiftNIO only for `logs -f`'s WebSocket. No Hummingbird or GRDB: its
        // start-up time is a figure (BENCHMARKS.md).
        .target(name: "CLICore", dependencies: ["CodeRunnerWire"], swiftSettings: swiftSettings),
        .executableTarget(name: "coderunner",
                          dependencies: ["CLICore", "CurlHTTP", argumentParser, logging, httpTypes,
                                         .product(name: "WSClient", package: "swift-websocket")],
                          swiftSettings: swiftSettings),
        .testTarget(name: "CLICoreTests", dependencies: ["CLICore"], swiftSettings: swiftSettings),
    ]
}

if parts.contains("controller") {
    products.append(.executable(name: "coderunner-controller", targets: ["coderunner-controller"]))
    dependencies += [
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-auth", from: "2.5.0"),
        // The live streams (GET /api/ws): the WebSocket upgrade on Hummingbird's HTTP/1 server, and its client in tests.
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.8.1"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        // Tests only (HummingbirdTesting pulls it in already): the controller's own outgoing HTTP is CurlHTTP, so a
        // release build compiles no SwiftNIO TLS, HTTP/2 or vendored BoringSSL.
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        // Already in the graph through Hummingbird; named because ControlPlane and its tests import their modules
        // themselves, and every target depends on each module it imports rather than getting it transitively.
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        // The dashboard's server-rendered pages (docs/dashboard.md says why Mustache); no dependencies of its own.
        .package(url: "https://github.com/hummingbird-project/swift-mustache", from: "2.1.1"),
        // The controller's own /metrics (docs/observability.md): swift-metrics' API, exported in Prometheus's text format.
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ]
    targets += [
        .testTarget(name: "CurlHTTPTests", dependencies: ["CurlHTTP", hummingbird, httpTypes, nioCore,
                                                         .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
                    swiftSettings: swiftSettings),
        .target(
            name: "ControlPlane",
            dependencies: [
                "Sealing", "Scaling", "Rollout", "CodeRunnerWire", "ChildProcess", "CurlHTTP",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdBcrypt", package: "hummingbird-auth"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "WSCore", package: "swift-websocket"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                nioCore, nioHTTP1, httpTypes,
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            // The API's OpenAPI document, served as it is in the repository (PackageResources.openapi_yaml).
            resources: [.embedInCode("../../openapi/openapi.yaml")],
            swiftSettings: swiftSettings),
        // The web dashboard: pages, browser sessions' cookies and CSRF, embedded assets; ControlPlane's services do the work.
        .target(
            name: "WebDashboard",
            dependencies: [
                "ControlPlane", "Scaling", "Sealing", hummingbird, logging, httpTypes, nioCore,
                .product(name: "Mustache", package: "swift-mustache"),
            ],
            resources: webDashboardResources,
            swiftSettings: swiftSettings),
        .executableTarget(
            name: "coderunner-controller",
            dependencies: [
                "ControlPlane", "WebDashboard", "Scaling", "PostgresStore", argumentParser, hummingbird, logging,
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "WebDashboardTests",
            dependencies: [
                "WebDashboard", "ControlPlane", "Sealing", "TestSupport", hummingbird, httpTypes, nioCore, logging,
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "ControlPlaneTests",
            dependencies: [
                "ControlPlane", "Scaling", "Sealing", "CodeRunnerWire", "TestSupport", "ChildProcess", "CurlHTTP",
                hummingbird, logging, nioCore, nioHTTP1, httpTypes,
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOWebSocket", package: "swift-nio"),
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: swiftSettings),
    ]
}

// PostgreSQL as the store (issue 16, docs/cluster.md): a ControlPlaneStore and ScalingStore over postgres-nio's pooled
// client, linked by the controller for `serve --database`, and one store suite run against both backends.
if parts.contains("pg") && parts.contains("controller") {
    dependencies += [
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        // Already in the graph through postgres-nio; named for the TLS configuration that sslmode selects.
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
    ]
    targets += [
        .target(
            name: "PostgresStore",
            dependencies: [
                "ControlPlane", "Sealing", logging, nioCore,
                .product(name: "PostgresNIO", package: "postgres-nio"),
                // `migrate` reads the SQLite database it copies.
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "StoreContractTests",
            dependencies: ["PostgresStore", "ControlPlane", "Sealing", "Scaling", "CodeRunnerWire", "TestSupport", logging,
                           .product(name: "PostgresNIO", package: "postgres-nio"),
                           .product(name: "GRDB", package: "GRDB.swift")],
            swiftSettings: swiftSettings),
    ]
}

if parts.contains("e2e") && parts.contains("agent") && parts.contains("controller") {
    targets.append(
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["CodeRunnerWire", "TestSupport", "ChildProcess", "CLICore"],  // binaries via CODERUNNER_BIN_DIR (see above)
            swiftSettings: swiftSettings))
}

let package = Package(
    name: "coderunner",
    platforms: [.macOS(.v15)],
    products: products,
    dependencies: dependencies,
    targets: targets
)
