import BridgeCore
import BridgeTestSupport
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// MCP servers that misbehave, through the built binary (issue 23): a server whose setsid()
/// grandchild holds stdout, a server that cannot start, and tool names or timeouts that
/// `mappings check` must refuse.
@Suite(
    .serialized,
    .enabled(
        if: TestDatabase.isAvailable && ProcessInfo.processInfo.environment["BRIDGE_MCP_PYTHON"] != nil,
        "needs BRIDGE_TEST_DATABASE_URL and BRIDGE_MCP_PYTHON (scripts/test.sh)"))
struct MCPHardeningCLITests {
    static var raw: String { TestDatabase.projectRoot.appendingPathComponent("Tests/Fixtures/mcp/raw_server.py").path }

    /// The shipped mappings with `team_tools` served by raw_server.py in `mode` (plus `args`).
    static func rawServer(_ mode: String, _ args: [String] = [], extra: String = "") throws -> URL {
        let argv = ([Self.raw, mode] + args).map { "\"\($0)\"" }.joined(separator: ", ")
        return try MCPCLITests.mappings(
            """
            version: 1
            mcp_servers:
              - name: team_tools
                stdio: {command: "\(MCPCLITests.python)", args: [\(argv)]}
            \(extra.contains("timeout_ms") ? extra : extra + "\n    timeout_ms: 180000")
            """)
    }

    /// True once `pid` is gone (a zombie still counts as there: it was not reaped).
    static func waitGone(_ pid: Int32) async -> Bool {
        for _ in 0..<100 {
            if kill(pid, 0) != 0 { return true }
            try? await Task.sleep(for: .milliseconds(100))
        }
        return false
    }

    /// A migrated reference database and the shipped mappings whose server is fork_holder,
    /// writing its grandchild's pid to `file`; the file and the mappings go after `body`.
    static func withForkHolder(_ body: (_ url: String, _ file: String, _ mappings: String) async throws -> Void)
        async throws
    {
        let url = try await ExecCLITests.migratedReference()
        let file = TemporaryPath.unique("bridge-holder")
        defer { try? FileManager.default.removeItem(atPath: file) }
        let dir = try Self.rawServer("fork_holder", [file])
        defer { try? FileManager.default.removeItem(at: dir) }
        try await body(url, file, dir.path)
    }

    /// A watching worker on `mappings`, and its server's grandchild once it is there (the
    /// server starts before anything is claimed).
    static func watchingWorker(_ url: String, _ file: String, _ mappings: String) async throws
        -> (BackgroundBridge, holder: Int32)
    {
        let worker = try BackgroundBridge([
            "exec", "--offline", "--watch", "--database-url", url, "--mappings", mappings,
        ])
        return (worker, try await holder(file))
    }

    /// The pid the fork_holder server wrote, once it is there.
    static func holder(_ file: String) async throws -> Int32 {
        for _ in 0..<300 {
            if let text = try? String(contentsOfFile: file, encoding: .utf8), let pid = Int32(text) { return pid }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw CocoaError(.fileNoSuchFile)
    }

    /// Neither `mappings check` nor `exec` waits for a grandchild that called setsid() and holds
    /// the server's stdout (it sleeps 300 s; the time limit is the hang guard), and neither
    /// leaves it behind.
    @Test(.timeLimit(.minutes(3))) func checkAndExecDoNotWaitForAGrandchildHoldingStdout() async throws {
        try await Self.withForkHolder { url, file, dir in
            let check = try await BridgeBinary.run(["mappings", "check", "--database-url", url, "--mappings", dir])
            #expect(check.status == 0, "\(check.stderr)")
            #expect(check.stdout.contains("\n  MCP server team_tools: t0, t1, t2, t3, t4\n"), "\(check.stdout)")
            let first = try await Self.holder(file)
            #expect(await Self.waitGone(first), "mappings check left grandchild \(first) behind")
            try FileManager.default.removeItem(atPath: file)

            let exec = try await BridgeBinary.run(["exec", "--offline", "--database-url", url, "--mappings", dir])
            #expect(exec.status == 0, "\(exec.stderr)")
            #expect(exec.stderr.contains("completed"), "\(exec.stderr)")
            let second = try await Self.holder(file)
            #expect(await Self.waitGone(second), "exec left grandchild \(second) behind")
        }
    }

    /// A watching worker whose server has such a grandchild stops at the first SIGTERM, and
    /// takes the grandchild with it.
    @Test(.timeLimit(.minutes(3))) func theFirstSIGTERMStopsAWorkerWhoseServerHasAGrandchild() async throws {
        try await Self.withForkHolder { url, file, dir in
            let (worker, holder) = try await Self.watchingWorker(url, file, dir)
            #expect(kill(holder, 0) == 0)
            worker.send(SIGTERM)
            let end = await worker.wait(timeout: 60)
            #expect(end?.status == 0 && end?.signalled == false, "\(worker.output)")
            #expect(await Self.waitGone(holder), "grandchild \(holder) outlived the worker")
        }
    }

    /// A worker killed outright takes the grandchild with it too (the supervisor's death signal).
    @Test(.timeLimit(.minutes(3))) func aKilledWorkerTakesTheGrandchildWithIt() async throws {
        try await Self.withForkHolder { url, file, dir in
            let (worker, holder) = try await Self.watchingWorker(url, file, dir)
            worker.send(SIGKILL)
            _ = await worker.wait(timeout: 60)
            #expect(await Self.waitGone(holder), "grandchild \(holder) outlived a killed worker")
        }
    }

    /// The quick start in a shell whose python3 lacks the `mcp` package: exec exits 2 before
    /// claiming anything, naming the server and its stderr; nothing changed.
    @Test func execWithAServerThatCannotInitializeIsAConfigurationError() async throws {
        let url = try await ExecCLITests.migratedReference()
        // A python3 first on PATH that has no `mcp` (no site-packages: -S).
        let bin = try TemporaryPath.directory("bridge-nompc")
        defer { try? FileManager.default.removeItem(at: bin) }
        let wrapper = bin.appendingPathComponent("python3")
        try "#!/bin/sh\nexec \"\(MCPCLITests.python)\" -S \"$@\"\n".write(
            to: wrapper, atomically: true, encoding: .utf8)
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: wrapper.path)
        let env = BridgeBinary.environment([
            "PATH": bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
        ])

        let before = try await ExecCLITests.snapshot(url)
        let r = try await BridgeBinary.run(
            ["exec", "--offline", "--database-url", url, "--mappings", BridgeBinary.mappings],
            environment: env)
        #expect(r.status == 2, "\(r.stderr)")
        #expect(
            r.stderr.contains(
                "mcp.yaml:8:5: mcp_servers[0]: MCP server 'team_tools' exited with status 1 during initialize; stderr: "
            ),
            "\(r.stderr)")
        #expect(r.stderr.contains("No module named 'mcp'"), "\(r.stderr)")
        #expect(!r.stderr.contains("completed"), "\(r.stderr)")
        #expect(try await ExecCLITests.snapshot(url) == before)
        let c = try await TestDatabase.connect(url)
        let traces = try await c.simpleQuery("SELECT count(*) AS n FROM bridge.traces")
        await c.close()
        #expect(traces.first?["n"] == "0")
    }

    /// Tool names OpenAI refuses, and a timeout_ms of three years, are errors of `mappings check`.
    @Test func checkRefusesBadToolNamesAndTimeouts() async throws {
        let url = try await ExecCLITests.migratedReference()
        let names = try Self.rawServer("names")
        defer { try? FileManager.default.removeItem(at: names) }
        let r = try await BridgeBinary.run(["mappings", "check", "--database-url", url, "--mappings", names.path])
        #expect(r.status == 2, "\(r.stderr)")
        for shown in [
            #""""#, #""has space""#, #""new\nline""#, #""xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"… (300 characters)"#,
        ] {
            #expect(
                r.stderr.contains(
                    "mcp.yaml:3:5: mcp_servers[0]: MCP server 'team_tools' offers a tool named \(shown), which OpenAI refuses"
                ),
                "\(shown): \(r.stderr)")
        }
        #expect(!r.stderr.contains("\"ok_name\""), "\(r.stderr)")
        // Leaving them out is the way out.
        let blocked = try Self.rawServer("names", extra: "    tool_filter: {allowed: [ok_name]}")
        defer { try? FileManager.default.removeItem(at: blocked) }
        let ok = try await BridgeBinary.run(["mappings", "check", "--database-url", url, "--mappings", blocked.path])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(ok.stdout.contains("  MCP server team_tools: ok_name\n"), "\(ok.stdout)")

        let slow = try Self.rawServer("paged", extra: "    timeout_ms: 99999999999")
        defer { try? FileManager.default.removeItem(at: slow) }
        let t = try await BridgeBinary.run(["mappings", "check", "--static-only", "--mappings", slow.path])
        #expect(t.status == 2, "\(t.stderr)")
        #expect(t.stderr.contains("mcp.yaml:5:17: mcp_servers[0].timeout_ms: must be at most 3600000"), "\(t.stderr)")
    }
}
