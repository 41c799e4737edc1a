import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgeRunner
import BridgeTestSupport
import BridgeTraceModel
import Foundation
import Testing

/// A context for tool executors that don't look at it.
private func context() -> ToolContext {
    let spec = RunSpec(
        traceId: TraceID.forTask("1", attempt: 1), workflowName: "test", groupId: nil, metadata: [:],
        startingAgent: "a", agents: [:], tools: [:], input: "", maxTurns: 10,
        traceIncludeSensitiveData: true, taskId: "1", attempt: 1)
    return ToolContext(spec: spec, taskRow: [:], agentName: "a")
}

private func httpTool(_ url: String, headers: [String: String] = [:], timeoutMs: Int = 10_000, maxBytes: Int = 1 << 20)
    -> ToolSpec
{
    ToolSpec(
        name: "lookup", description: "", parameters: ["type": "object"],
        implementation: .http(HTTPToolSpec(url: url, headers: headers, timeoutMs: timeoutMs, maxBytes: maxBytes)))
}

private func commandTool(_ argv: [String], timeoutMs: Int = 10_000, maxBytes: Int = 1 << 20) -> ToolSpec {
    ToolSpec(
        name: "run", description: "", parameters: ["type": "object"],
        implementation: .command(CommandToolSpec(argv: argv, timeoutMs: timeoutMs, maxBytes: maxBytes)))
}

@Suite struct HTTPToolExecutorTests {
    let client = HTTPClient()

    @Test func postsArgumentsAndReturnsBody() async throws {
        let server = try TestHTTPServer { request in .json(["echo": request.json ?? .null]) }
        defer { server.stop() }
        let executor = HTTPToolExecutor(client: client, environment: Environment([:]))
        let arguments: JSONValue = ["query": "status of task 7", "limit": 3, "flags": [true, false]]

        let output = try await executor.execute(
            httpTool(server.url("/tools/lookup")), arguments: arguments, context: context())
        #expect(try JSONValue.parse(output) == ["echo": arguments])
        let seen = try #require(server.requests.first)
        #expect(seen.method == "POST")
        #expect(seen.path == "/tools/lookup")
        #expect(seen.bodyText == arguments.compact)
        #expect(seen.header("Content-Type") == "application/json")
    }

    @Test func headerReferencesResolveFromTheInjectedEnvironment() async throws {
        let server = try TestHTTPServer { _ in .text("ok") }
        defer { server.stop() }
        let executor = HTTPToolExecutor(
            client: client, environment: Environment(["ACME_TOKEN": "tok-123", "TEAM": "blue"]))
        let tool = httpTool(
            server.url("/t"),
            headers: ["Authorization": "Bearer ${ACME_TOKEN}", "X-Team": "${TEAM}-${TEAM}", "X-Static": "plain"])

        #expect(try await executor.execute(tool, arguments: [:], context: context()) == "ok")
        let seen = try #require(server.requests.first)
        #expect(seen.header("Authorization") == "Bearer tok-123")
        #expect(seen.header("X-Team") == "blue-blue")
        #expect(seen.header("X-Static") == "plain")
    }

    @Test func missingVariableFailsBeforeSending() async throws {
        let server = try TestHTTPServer { _ in .text("ok") }
        defer { server.stop() }
        let executor = HTTPToolExecutor(client: client, environment: Environment(["OTHER": "x"]))
        let tool = httpTool(server.url("/t"), headers: ["Authorization": "Bearer ${ACME_TOKEN}"])

        let f = await #expect(throws: ToolFailure.self) {
            try await executor.execute(tool, arguments: [:], context: context())
        }
        #expect(f?.message.contains("ACME_TOKEN") == true)
        #expect(f?.message.contains("Authorization") == true)
        #expect(server.requests.isEmpty)
    }

    @Test func non2xxIsAToolFailureWithoutHeaderValues() async throws {
        // The server echoes the credential back in its error body; it must not surface.
        let server = try TestHTTPServer { request in
            .text("upstream broke for \(request.header("Authorization") ?? "")", status: 502)
        }
        defer { server.stop() }
        let executor = HTTPToolExecutor(client: client, environment: Environment(["ACME_TOKEN": "tok-secret-123"]))
        let tool = httpTool(server.url("/t"), headers: ["Authorization": "Bearer ${ACME_TOKEN}"])

        let f = await #expect(throws: ToolFailure.self) {
            try await executor.execute(tool, arguments: ["a": 1], context: context())
        }
        #expect(f?.message.hasPrefix("HTTP 502: upstream broke for Bearer ") == true)
        #expect(f?.message.contains("tok-secret-123") == false)
        #expect(f?.data == ["status": 502])
    }

    @Test func responseOverMaxBytesFails() async throws {
        let server = try TestHTTPServer { _ in TestHTTPResponse(body: [UInt8](repeating: 0x61, count: 5_000)) }
        defer { server.stop() }
        let executor = HTTPToolExecutor(client: client, environment: Environment([:]))

        let f = await #expect(throws: ToolFailure.self) {
            try await executor.execute(httpTool(server.url("/t"), maxBytes: 1_000), arguments: [:], context: context())
        }
        #expect(f?.message.contains("max_bytes (1000 bytes)") == true)
        // At the cap exactly is fine.
        let output = try await executor.execute(
            httpTool(server.url("/t"), maxBytes: 5_000), arguments: [:], context: context())
        #expect(output.utf8.count == 5_000)
    }

    @Test func timeoutFails() async throws {
        let server = try TestHTTPServer { _ in TestHTTPResponse.text("late").delayed(.seconds(30)) }
        defer { server.stop() }
        let executor = HTTPToolExecutor(client: client, environment: Environment([:]))

        let f = await #expect(throws: ToolFailure.self) {
            try await executor.execute(httpTool(server.url("/t"), timeoutMs: 200), arguments: [:], context: context())
        }
        #expect(f?.message == "HTTP request timed out after 200 ms")
    }

    @Test func unreachableAndWrongKind() async throws {
        let executor = HTTPToolExecutor(client: client, environment: Environment([:]))
        let f = await #expect(throws: ToolFailure.self) {
            try await executor.execute(httpTool("http://127.0.0.1:1/t"), arguments: [:], context: context())
        }
        #expect(f?.message.hasPrefix("HTTP request failed:") == true)
        let g = await #expect(throws: ToolFailure.self) {
            try await executor.execute(commandTool(["/bin/cat"]), arguments: [:], context: context())
        }
        #expect(g?.message == "tool 'run' is not an http tool")
    }
}

@Suite struct CommandToolExecutorTests {
    let executor = CommandToolExecutor(environment: Environment(["PATH": "/usr/bin:/bin"]))

    @Test func catEchoesTheArguments() async throws {
        let arguments: JSONValue = ["text": "héllo \"world\"", "n": [1, 2, 3]]
        let output = try await executor.execute(commandTool(["/bin/cat"]), arguments: arguments, context: context())
        #expect(output == arguments.compact)
    }

    @Test func programIsLookedUpOnPathWithoutAShell() async throws {
        // `$HOME; echo` stays one literal argument: no shell is involved.
        let output = try await executor.execute(
            commandTool(["echo", "$HOME; echo", "*"]), arguments: [:], context: context())
        #expect(output == "$HOME; echo *\n")
    }

    @Test func nonZeroExitFailsWithCodeAndStderr() async throws {
        let f = await #expect(throws: ToolFailure.self) {
            try await executor.execute(
                commandTool(["/bin/sh", "-c", "echo partial; echo 'bad input' >&2; exit 3"]),
                arguments: [:], context: context())
        }
        #expect(f?.message == "command exited with status 3: bad input")
        #expect(f?.data?["exit_code"] == 3)
    }

    @Test func timeoutKillsTheProcess() async throws {
        let started = ContinuousClock.now
        let f = await #expect(throws: ToolFailure.self) {
            try await executor.execute(
                commandTool(["/bin/sleep", "60"], timeoutMs: 200), arguments: [:], context: context())
        }
        #expect(f?.message == "command timed out after 200 ms and was killed")
        // Returned long before the 60 s sleep could have ended: the process was killed.
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    @Test func timeoutKillsGrandchildrenToo() async throws {
        // The shell's child `sleep` holds stdout open; the whole process group is stopped.
        let started = ContinuousClock.now
        let f = await #expect(throws: ToolFailure.self) {
            try await executor.execute(
                commandTool(["/bin/sh", "-c", "sleep 60; echo done"], timeoutMs: 200), arguments: [:],
                context: context())
        }
        #expect(f?.message.contains("timed out") == true)
        // Returned long before the 60 s sleep could have ended: the process was killed.
        #expect(ContinuousClock.now - started < .seconds(30))
    }

    /// Issue 23: a grandchild that leaves the process group with setsid() and holds stdout
    /// (300 s) neither keeps the call waiting (the time limit is the hang guard) nor outlives it.
    @Test(.timeLimit(.minutes(3))) func aGrandchildThatCallsSetsidAndHoldsStdoutIsStopped() async throws {
        let output = try await executor.execute(
            commandTool(["/bin/sh", "-c", "setsid sleep 300 & echo $!"]),
            arguments: [:], context: context())
        let pid = try #require(Int32(output.trimmingCharacters(in: .whitespacesAndNewlines)), "\(output)")
        var gone = false
        for _ in 0..<100 where !gone {
            gone = kill(pid, 0) != 0
            if !gone { try await Task.sleep(for: .milliseconds(100)) }
        }
        #expect(gone, "grandchild \(pid) outlived its command")
    }

    @Test func childStartsWithNoBlockedSignals() async throws {
        // Swift's worker threads block SIGTERM and friends; a child must not inherit that mask,
        // or a timeout's SIGTERM would go unnoticed until SIGKILL.
        let output = try await executor.execute(
            commandTool(["/bin/grep", "SigBlk", "/proc/self/status"]), arguments: [:], context: context())
        #expect(output.trimmingCharacters(in: .whitespacesAndNewlines).hasSuffix("0000000000000000"))
    }

    @Test(arguments: ["/nonexistent/bridge-tool", "bridge-no-such-program", "/tmp"])
    func missingExecutable(_ program: String) async throws {
        let f = await #expect(throws: ToolFailure.self) {
            try await executor.execute(commandTool([program]), arguments: [:], context: context())
        }
        #expect(f?.message == "command not found: \(program)")
    }

    @Test func outputOverMaxBytesStopsTheCommand() async throws {
        let f = await #expect(throws: ToolFailure.self) {
            try await executor.execute(commandTool(["yes"], maxBytes: 1_000), arguments: [:], context: context())
        }
        #expect(f?.message.contains("max_bytes (1000 bytes)") == true)
    }

    @Test func childThatIgnoresStdinDoesNotBreakBridge() async throws {
        let big: JSONValue = ["blob": .string(String(repeating: "x", count: 1 << 20))]
        let output = try await executor.execute(commandTool(["/bin/true"]), arguments: big, context: context())
        #expect(output == "")
    }

    @Test func childGetsOnlyTheBaselineAndItsAllowlist() async throws {
        let executor = CommandToolExecutor(
            environment: Environment([
                "PATH": "/usr/bin:/bin", "BRIDGE_TEST_VAR": "v1", "OPENAI_API_KEY": "sk-secret",
                "PGPASSWORD": "pw-secret",
                "DATABASE_URL": "postgres://u:pw-secret@h/db", "LANG": "C.UTF-8",
            ]))
        let script = "echo \"${BRIDGE_TEST_VAR:-unset}:${HOME:-unset}:${LANG:-unset}\"; env"
        var tool = commandTool(["/bin/sh", "-c", script])
        let bare = try await executor.execute(tool, arguments: [:], context: context())
        #expect(bare.hasPrefix("unset:unset:C.UTF-8\n"))
        #expect(!bare.contains("secret") && !bare.contains("DATABASE_URL"), "\(bare)")
        tool.implementation = .command(
            CommandToolSpec(argv: ["/bin/sh", "-c", script], env: ["BRIDGE_TEST_VAR", "NOT_SET"]))
        let allowed = try await executor.execute(tool, arguments: [:], context: context())
        #expect(allowed.hasPrefix("v1:unset:C.UTF-8\n"))
        #expect(!allowed.contains("secret") && !allowed.contains("NOT_SET"), "\(allowed)")
    }
}
