import BridgeCore
import Foundation

#if canImport(Glibc)
    import Glibc
#endif

/// The built `bridge` binary (scripts/test.sh builds it with `swift build --build-tests`), for
/// end-to-end tests. Every wait for it happens off the cooperative pool (see `OffPool`).
public enum BridgeBinary {
    public static var path: String { TestDatabase.projectRoot.appendingPathComponent(".build/debug/bridge").path }
    /// The shipped migrations folder.
    public static var migrations: String { TestDatabase.projectRoot.appendingPathComponent("migrations").path }
    /// The shipped mappings folder itself.
    public static var shippedMappings: String { TestDatabase.projectRoot.appendingPathComponent("mappings").path }
    /// The shipped mappings as tests run them: one copy per test process, made by
    /// `TestMappings.copy`, so that MCP servers get room to start while the whole suite runs.
    /// Line and column numbers are those of the shipped files.
    public static let mappings: String = {
        guard let dir = try? TestMappings.copy(prefix: "bridge-suite-mappings") else { return shippedMappings }
        return dir.path
    }()

    /// The test process's environment without `DATABASE_URL`, with `changes` applied (a nil
    /// value removes the variable).
    public static func environment(_ changes: [String: String?] = [:]) -> [String: String] {
        var env = ProcessInfo.processInfo.environment
        env["DATABASE_URL"] = nil
        for (name, value) in changes { env[name] = value }
        return env
    }

    /// The environment for a run against a loopback OpenAI stand-in at `server`, with API key
    /// `key`. With `exportTraces` the openai trace exporter sends to the stand-in too.
    public static func openAIEnvironment(_ server: TestHTTPServer, key: String, exportTraces: Bool = false) -> [String:
        String]
    {
        environment([
            "OPENAI_BASE_URL": server.url("/v1"), "OPENAI_API_KEY": key,
            "OPENAI_AGENTS_DISABLE_TRACING": exportTraces ? nil : "1",
        ])
    }

    /// Runs bridge with `args` to its end (in `BridgeBinary.environment()` unless given one).
    public static func run(_ args: [String], environment: [String: String]? = nil) async throws -> TestProcess.Result {
        try await TestProcess.run(path, args, environment: environment ?? self.environment())
    }

    /// Runs `bridge migrate` with the shipped migrations (or `dir`) on `url`; its result.
    @discardableResult
    public static func migrate(_ url: String, dir: String = migrations, _ extra: [String] = []) async throws
        -> TestProcess.Result
    {
        try await run(["migrate", "--database-url", url, "--dir", dir] + extra)
    }
}

/// A `bridge` process running in the background (output to a file), for crash and signal tests.
/// Started through `ChildProcess` without its supervisor (like `TestProcess`): signals reach
/// bridge itself, and what bridge leaves behind is left for the tests to find.
public final class BackgroundBridge: Sendable {
    public let child: ChildProcess
    public let logPath: String

    public init(_ args: [String], environment: [String: String]? = nil) throws {
        logPath =
            TemporaryPath.unique("bridge-bg", suffix: ".log")
        FileManager.default.createFile(atPath: logPath, contents: nil)
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        var handlers = ChildProcess.Handlers()
        handlers.stdout = { _, chunk in log.write(Data(chunk)) }
        handlers.stderr = { _, chunk in log.write(Data(chunk)) }
        handlers.exited = { _, _ in try? log.close() }
        var options = ChildProcess.Options()
        options.supervised = false
        options.threadName = "test-bridge-io"
        child = ChildProcess(
            ChildProcess.Command(
                path: BridgeBinary.path, argv: [BridgeBinary.path] + args,
                environment: environment ?? BridgeBinary.environment()),
            options: options, handlers: handlers)
        try child.startBlocking()
    }

    /// bridge's pid.
    public var pid: Int32 { child.pid ?? 0 }

    /// Whether bridge still runs (its output not yet all read).
    public var isRunning: Bool { child.termination == nil }

    public func send(_ sig: Int32) { child.signal(sig) }

    /// Sends `sig` as soon as `condition` holds, or when `timeout` has passed. The condition is
    /// polled on a thread of its own, which also sends the signal (`OffPool.when`), so a busy
    /// cooperative pool cannot delay the signal past the moment the test is about. Afterwards,
    /// still on that thread, `then` runs (for a measurement of that moment); its result comes
    /// back with whether the condition held.
    public func send<T: Sendable>(
        _ sig: Int32, when condition: @escaping @Sendable () throws -> Bool, timeout: Duration,
        then after: @escaping @Sendable () throws -> T
    ) async throws -> (held: Bool, after: T) {
        try await OffPool.when(timeout: timeout, condition) { held in
            self.send(sig)
            return (held, try after())
        }
    }

    /// `send(_:when:timeout:then:)` with nothing to measure afterwards; whether the condition held.
    public func send(_ sig: Int32, when condition: @escaping @Sendable () throws -> Bool, timeout: Duration) async
        -> Bool
    {
        (try? await send(sig, when: condition, timeout: timeout, then: {}).held) ?? false
    }

    /// Kills bridge (SIGKILL) as soon as `condition` holds, or when `timeout` has passed, and
    /// waits up to 10 s for it to end; whether the condition held.
    public func kill(when condition: @escaping @Sendable () throws -> Bool, timeout: Duration) async -> Bool {
        let held = await send(SIGKILL, when: condition, timeout: timeout)
        _ = await wait(timeout: 10)
        return held
    }

    /// Waits for the process to end; nil on timeout (the process is then killed).
    public func wait(timeout: Double) async -> (status: Int32, signalled: Bool)? {
        guard let end = await child.wait(within: .milliseconds(Int(timeout * 1000))) else {
            send(SIGKILL)
            _ = await child.wait()
            return nil
        }
        switch end {
        case .exit(let code): return (code, false)
        case .signal(let sig): return (sig, true)
        }
    }

    public var output: String { (try? String(contentsOfFile: logPath, encoding: .utf8)) ?? "" }

    deinit {
        if isRunning { send(SIGKILL) }
        try? FileManager.default.removeItem(atPath: logPath)
    }
}

/// Temporary copies of the shipped mappings, edited for one test.
public enum TestMappings {
    /// A new folder with the shipped mappings' YAML files, each passed through `edits[name]`
    /// when there is one (`mcp.yaml`'s relative path to the example server made absolute, so
    /// the copy starts it as the shipped folder does). Remove it when done.
    public static func copy(
        prefix: String = "bridge-mappings", editing edits: [String: (String) throws -> String] = [:]
    ) throws -> URL {
        let dir = try TemporaryPath.directory(prefix)
        let shipped = BridgeBinary.shippedMappings
        for name in try FileManager.default.contentsOfDirectory(atPath: shipped) where name.hasSuffix(".yaml") {
            var text = try String(contentsOfFile: shipped + "/" + name, encoding: .utf8)
            if name == "mcp.yaml" {
                text = text.replacingOccurrences(of: "../examples/", with: shipped + "/../examples/")
                // The whole suite starts dozens of Python MCP servers at once on a small machine:
                // give their start-up the room that one server on its own never needs.
                text = text.replacingOccurrences(of: "timeout_ms: 30000", with: "timeout_ms: 180000")
            }
            if let edit = edits[name] { text = try edit(text) }
            try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        return dir
    }
}
