// swift-tools-version:6.0
// bridge: trace database-driven OpenAI-Agents-style runs, span for span.
//
// Layering, bottom to top; each target imports only targets below it:
//   0. Compile time BridgeMacros: `@MemberwiseInit`, `@SnakeCaseCodingKeys` (with `@CodedFlat`)
//                   and `@SnakeCaseRawValues` (swift-syntax), run by the compiler, not linked
//                   into bridge; BridgeCore declares them
//   1. C bindings   CBridgeLibPQ, CBridgeCurl (+ CBridgeCurlShim), CBridgeCrypto, CBridgeZlib,
//                   CBridgeSpawn (child processes)
//   2. Core         BridgeCore: errors, JSON, ids, durations, the thread executor, the
//                   child-process runner (ChildProcess) and the HTTP server (HTTPServer)
//   3. Clients      BridgePostgres (libpq: queries with binds, identifiers, advisory locks),
//                   BridgeHTTP (libcurl: one engine thread, whole-exchange deadlines)
//   4. Trace model  BridgeTraceModel: the SDK's span format, records and typed ids
//   5. Mappings     BridgeMapping (YAML -> run specs: the DatabaseToSDKBridge), BridgeMigrate
//   6. Runner       BridgeRunner: the SDK's agent loop, tools, MCP, guardrails, models
//   7. Tracing      BridgeTracing (ledger, exporters), BridgeMetrics (counters, histograms)
//   8. Operations   BridgeWorker (exec, backfill, leases, durable runs, approvals),
//                   BridgeMonitor (/metrics, top, OTLP metrics), BridgeVerify (the checklist)
//   CLI             bridge: one subcommand per file; parses flags, calls the libraries
//   Tests           BridgeTestSupport (a real PostgreSQL, loopback servers, the built binary)
import CompilerPluginSupport
import PackageDescription

let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny")
]

let package = Package(
    name: "bridge",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "bridge", targets: ["bridge"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swiftlang/swift-syntax", from: "603.0.0"),
    ],
    targets: [
        // 0. Compile time: the macros' implementation (runs in the compiler)
        .macro(
            name: "BridgeMacros",
            dependencies: [
                .product(name: "SwiftSyntaxMacros", package: "swift-syntax"),
                .product(name: "SwiftCompilerPlugin", package: "swift-syntax"),
            ]
        ),
        // 1. C bindings
        .systemLibrary(
            name: "CBridgeLibPQ",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(
            name: "CBridgeCurl",
            pkgConfig: "libcurl",
            providers: [.apt(["libcurl4-openssl-dev"])]
        ),
        // SHA-256 from OpenSSL's libcrypto (libpq and libcurl already load it)
        .systemLibrary(
            name: "CBridgeCrypto",
            pkgConfig: "libcrypto",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "CBridgeCurlShim",
            dependencies: ["CBridgeCurl"]
        ),
        // fork/exec under a supervisor (process group, subreaper, PR_SET_PDEATHSIG): no orphans
        .target(name: "CBridgeSpawn"),
        // 2. Clients
        // gzip for OTLP bodies (zlib)
        .systemLibrary(name: "CBridgeZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .target(
            name: "BridgeCore", dependencies: ["CBridgeCrypto", "CBridgeZlib", "CBridgeSpawn", "BridgeMacros"],
            swiftSettings: strict),
        // The trace model: ids, SpanData (the SDK's span shapes), trace and span records with
        // their ledger row codec (so it binds its ids through BridgePostgres, one layer down).
        // Below everything that writes or reads a trace.
        .target(name: "BridgeTraceModel", dependencies: ["BridgeCore", "BridgePostgres"], swiftSettings: strict),
        .target(
            name: "BridgePostgres",
            dependencies: ["CBridgeLibPQ", "BridgeCore"],
            swiftSettings: strict
        ),
        .target(
            name: "BridgeHTTP",
            dependencies: ["CBridgeCurl", "CBridgeCurlShim", "BridgeCore"],
            swiftSettings: strict
        ),
        // 3. Schema upgrades, the mapping model and the DatabaseToSDKBridge
        .target(
            name: "BridgeMapping",
            dependencies: [
                "BridgeCore", "BridgePostgres", "BridgeMigrate", "BridgeTraceModel",
                .product(name: "Yams", package: "Yams"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "BridgeMigrate",
            dependencies: ["BridgePostgres", "BridgeCore"],
            swiftSettings: strict
        ),
        // 4. The runner: model providers and tool executors
        .target(
            name: "BridgeRunner",
            dependencies: [
                "BridgeCore", "BridgeTraceModel", "BridgePostgres", "BridgeHTTP", "BridgeMapping",
            ],
            swiftSettings: strict
        ),
        // Metrics: every instrument's name and labels, recorded through swift-metrics
        .target(
            name: "BridgeMetrics",
            dependencies: ["BridgeCore", "BridgeRunner", .product(name: "CoreMetrics", package: "swift-metrics")],
            swiftSettings: strict
        ),
        // 5. Tracing: spans, the ledger and exporters
        .target(
            name: "BridgeTracing",
            dependencies: [
                "BridgeCore", "BridgeTraceModel", "BridgePostgres", "BridgeHTTP", "BridgeMapping", "BridgeRunner",
                "BridgeMetrics",
            ],
            swiftSettings: strict
        ),
        // The exec worker: claims tasks, runs them traced, records results
        .target(
            name: "BridgeWorker",
            dependencies: [
                "BridgeCore", "BridgeTraceModel", "BridgePostgres", "BridgeHTTP", "BridgeMapping", "BridgeRunner",
                "BridgeTracing",
                "BridgeMetrics",
            ],
            swiftSettings: strict
        ),
        // Monitoring: the Prometheus endpoint, `bridge top` and `bridge trace tail`
        .target(
            name: "BridgeMonitor",
            dependencies: [
                "BridgeCore", "BridgeTraceModel", "BridgePostgres", "BridgeHTTP", "BridgeMapping", "BridgeMetrics",
                "BridgeTracing",
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // 6. Verify: the tracing validation checklist and trace views
        .target(
            name: "BridgeVerify",
            dependencies: ["BridgeCore", "BridgeTraceModel", "BridgePostgres", "BridgeMapping"],
            swiftSettings: strict
        ),
        .target(
            name: "BridgeTestSupport",
            dependencies: ["CBridgeLibPQ", "BridgeCore", "BridgePostgres"],
            swiftSettings: strict
        ),
        // CLI
        .executableTarget(
            name: "bridge",
            dependencies: [
                "BridgeCore", "BridgeTraceModel", "BridgePostgres", "BridgeMigrate", "BridgeMapping", "BridgeRunner",
                "BridgeTracing", "BridgeWorker", "BridgeHTTP", "BridgeVerify", "BridgeMonitor",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "BridgeUnitTests",
            dependencies: [
                "BridgeCore", "BridgeTraceModel", "BridgePostgres", "BridgeMigrate", "BridgeMapping", "BridgeRunner",
                "BridgeTracing", "BridgeHTTP",
                "BridgeVerify", "BridgeMetrics", "BridgeMacros",
                .product(name: "SwiftSyntaxMacroExpansion", package: "swift-syntax"),
                .product(name: "SwiftSyntaxMacrosGenericTestSupport", package: "swift-syntax"),
            ]
        ),
        .testTarget(
            name: "BridgeIntegrationTests",
            dependencies: [
                "BridgeCore", "BridgeTraceModel", "BridgePostgres", "BridgeMigrate", "BridgeMapping", "BridgeRunner",
                "BridgeTracing", "BridgeWorker", "BridgeHTTP", "BridgeTestSupport", "BridgeVerify",
                "BridgeMetrics", "BridgeMonitor",
            ]
        ),
        .testTarget(
            name: "BridgeEndToEndTests",
            dependencies: [
                "BridgeCore", "BridgeTraceModel", "BridgePostgres", "BridgeMapping", "BridgeTestSupport", "BridgeHTTP",
            ]
        ),
    ]
)
