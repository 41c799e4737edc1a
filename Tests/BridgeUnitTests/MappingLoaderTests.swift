import BridgeCore
import Foundation
import Testing

@testable import BridgeMapping

/// Helpers shared by the mapping unit tests.
enum MappingFixtures {
    static var projectRoot: URL {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
            dir.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }

    static var shippedDirectory: String { projectRoot.appendingPathComponent("mappings").path }

    static func shippedDocuments() throws -> [(file: String, text: String)] {
        try ["agents.yaml", "bridge.yaml", "mcp.yaml", "spend.yaml", "tools.yaml"].map {
            ("mappings/\($0)", try String(contentsOfFile: shippedDirectory + "/" + $0, encoding: .utf8))
        }
    }

    /// Loads documents, returning the issues (empty on success).
    static func issues(_ docs: [(file: String, text: String)]) -> [MappingIssue] {
        do {
            _ = try MappingLoader.load(documents: docs)
            return []
        } catch { return error.issues }
    }

    static let base = """
        version: 1
        source:
          input: "{{task.name}}"
          agent_selection: {match_column: role, task_column: agent_id, default_agent: A}
        results: {result_column: result}

        """
}

@Suite struct MappingLoaderTests {
    @Test func shippedMappingsLoadWithoutIssues() throws {
        let config = try MappingLoader.load(directory: MappingFixtures.shippedDirectory)
        #expect(config.agents.map(\.name) == ["Project Manager", "Researcher", "Content Specialist"])
        #expect(
            Set(config.tools.map(\.name)) == [
                "get_team_roles_and_status", "create_and_assign_sub_task",
                "store_data", "web_search",
            ])
        #expect(
            config.files.map { ($0 as NSString).lastPathComponent } == [
                "agents.yaml", "bridge.yaml", "mcp.yaml", "sessions.yaml", "spend.yaml", "tools.yaml",
            ])
        #expect(config.mcpServers.map(\.name) == ["team_tools"])
        #expect(config.agent(named: "Researcher")?.mcpServers == ["team_tools"])
        #expect(config.source.status.running == "in_progress")
        #expect(config.priorityOrder == ["high", "medium", "low"])
        #expect(config.results.traceIdColumn == "openai_trace_id")
        #expect(config.executionColumns["duration_seconds"] == "execution_time_seconds")
        #expect(
            config.placeholders == [
                "tasks_table": "tasks", "tasks_key": "id", "executions_table": "task_executions",
                "tasks_status_column": "status", "tasks_priority_column": "priority",
                "tasks_created_at_column": "created_at", "tasks_group_column": "workspace_id",
                "executions_completed_at_column": "completed_at", "executions_started_at_column": "started_at",
            ])
        #expect(config.source.input.columns(root: "task") == ["name", "description", "context_data"])
        guard case .sql(let create)? = config.tool(named: "create_and_assign_sub_task")?.implementation else {
            Issue.record("create_and_assign_sub_task is not a SQL tool")
            return
        }
        #expect(create.writes)
        #expect(Set(create.namedParameters.argumentNames) == ["role", "name", "description", "priority"])
        guard case .hosted(let ws)? = config.tool(named: "web_search")?.implementation else {
            Issue.record("web_search is not hosted")
            return
        }
        #expect(ws.type == "web_search")
        // Loading from a path with a trailing slash names files the same way.
        let again = try MappingLoader.load(directory: MappingFixtures.shippedDirectory + "/")
        #expect(again == config)
    }

    @Test func brokenYAMLLineGivesFileLineColumn() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mappings-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["agents.yaml", "bridge.yaml", "mcp.yaml", "spend.yaml", "tools.yaml"] {
            try FileManager.default.copyItem(
                atPath: MappingFixtures.shippedDirectory + "/" + name,
                toPath: dir.appendingPathComponent(name).path)
        }
        let agentsPath = dir.appendingPathComponent("agents.yaml").path
        var lines = try String(contentsOfFile: agentsPath, encoding: .utf8).components(separatedBy: "\n")
        let idx = try #require(lines.firstIndex { $0.contains("model: gpt-4.1") })
        lines[idx] = "    model: [gpt-4.1"  // unterminated flow sequence
        try lines.joined(separator: "\n").write(toFile: agentsPath, atomically: true, encoding: .utf8)
        do {
            _ = try MappingLoader.load(directory: dir.path)
            Issue.record("expected errors")
        } catch {
            #expect(error.exitStatus == .badInput)
            let issue = try #require(error.issues.first)
            #expect(issue.file == agentsPath)
            #expect(issue.line >= idx + 1)
            #expect(issue.column > 0)
            #expect(issue.message.hasPrefix("YAML syntax error"))
            #expect(error.description.hasPrefix("\(agentsPath):\(issue.line):\(issue.column): "))
        }
    }

    @Test func allProblemsAreReportedTogetherWithLocations() {
        let text =
            MappingFixtures.base + """
                agents:
                  - name: A
                    tools: [t1, nope]
                    colour: blue
                  - name: A
                tools:
                  - name: t1
                    description: x
                    parameters:
                      type: object
                      properties:
                        a: {type: strng}
                        b: {type: string}
                      required: [a]
                    sql: {query: "SELECT :a, :c"}
                """
        let issues = MappingFixtures.issues([("m/all.yaml", text)])
        let lines = issues.map(\.description)
        #expect(lines.contains("m/all.yaml:8:17: agents[0].tools[1]: unknown tool 'nope'"))
        #expect(
            lines.contains(
                "m/all.yaml:9:5: agents[0].colour: unknown key 'colour' (expected one of: \(LoadState.agentKeys.joined(separator: ", ")))"
            ))
        #expect(
            lines.contains(
                "m/all.yaml:10:11: agents[1].name: duplicate agent name 'A' (first defined at m/all.yaml:7:5)"))
        #expect(
            lines.contains {
                $0.hasPrefix(
                    "m/all.yaml:17:19: tools[0].parameters.properties.a.type: 'strng' is not a JSON Schema type")
            })
        #expect(
            lines.contains {
                $0.hasPrefix("m/all.yaml:14:5: tools[0].parameters: strict schemas need additionalProperties: false")
            })
        #expect(
            lines.contains {
                $0.contains(
                    "tools[0].parameters.required: strict schemas must list every property in required (missing: b)")
            })
        #expect(lines.contains { $0.contains("tools[0].sql.query: SQL parameter ':c' is not a property") })
        #expect(!lines.contains { $0.contains("':a'") })
        // Sorted by line.
        #expect(issues.map(\.line) == issues.map(\.line).sorted())
    }

    @Test func mcpServersParseAndReportProblemsWithLocations() throws {
        let good =
            MappingFixtures.base + """
                mcp_servers:
                  - name: local
                    stdio: {command: python3, args: [server.py], env: [HOME, TEAM_TOKEN], cwd: tools}
                    tool_filter: {blocked: [danger]}
                    cache_tools_list: true
                    timeout_ms: 5000
                  - name: remote
                    streamable_http: {url: "http://127.0.0.1:8765/mcp", headers: {Authorization: "Bearer ${env:T}"}}
                    tool_filter: {allowed: [a, b]}
                agents:
                  - name: A
                    mcp_servers: [local, remote]
                """
        let config = try MappingLoader.load(documents: [("/m/good.yaml", good)])
        #expect(config.agent(named: "A")?.mcpServers == ["local", "remote"])
        let local = try #require(config.mcpServer(named: "local"))
        #expect(
            local.transport
                == .stdio(command: "python3", args: ["server.py"], env: ["HOME", "TEAM_TOKEN"], cwd: "/m/tools"))
        #expect(local.cacheToolsList && local.timeoutMs == 5000 && local.blockedTools == ["danger"])
        #expect(local.admits("x") && !local.admits("danger"))
        let remote = try #require(config.mcpServer(named: "remote"))
        #expect(
            remote.transport
                == .streamableHTTP(url: "http://127.0.0.1:8765/mcp", headers: ["Authorization": "Bearer ${env:T}"]))
        #expect(remote.admits("a") && !remote.admits("c"))
        #expect(!remote.cacheToolsList && remote.timeoutMs == MCPServerMapping.defaultTimeoutMs)

        let bad =
            MappingFixtures.base + """
                mcp_servers:
                  - name: s1
                    stdio: {command: python3, env: [BAD-NAME]}
                    streamable_http: {url: "http://x/mcp"}
                  - name: s2
                    streamable_http: {url: "ftp://x"}
                    retries: 3
                  - name: s2
                    stdio: {command: x}
                    tool_filter: {allowed: [t1]}
                agents:
                  - name: A
                    tools: [t1]
                    mcp_servers: [s2, nope, s2]
                tools:
                  - name: t1
                    description: x
                    sql: {query: "SELECT 1"}
                """
        let lines = MappingFixtures.issues([("m/mcp.yaml", bad)]).map(\.description)
        #expect(
            lines.contains(
                "m/mcp.yaml:7:5: mcp_servers[0]: give exactly one transport, found stdio and streamable_http"))
        #expect(
            lines.contains(
                "m/mcp.yaml:8:36: mcp_servers[0].stdio.env[0]: 'BAD-NAME' is not an environment variable name"))
        #expect(lines.contains("m/mcp.yaml:11:28: mcp_servers[1].streamable_http.url: not an http(s) URL: 'ftp://x'"))
        #expect(lines.contains { $0.hasPrefix("m/mcp.yaml:12:5: mcp_servers[1].retries: unknown key 'retries'") })
        #expect(
            lines.contains(
                "m/mcp.yaml:13:11: mcp_servers[2].name: duplicate MCP server name 's2' (first defined at m/mcp.yaml:10:5)"
            ))
        #expect(
            lines.contains {
                $0.hasPrefix(
                    "m/mcp.yaml:15:29: mcp_servers[2].tool_filter.allowed[0]: MCP tool 't1' has the same name as the YAML tool"
                )
            })
        #expect(lines.contains("m/mcp.yaml:19:23: agents[0].mcp_servers[1]: unknown MCP server 'nope'"))
        #expect(lines.contains("m/mcp.yaml:19:29: agents[0].mcp_servers[2]: MCP server 's2' is listed twice"))
    }

    /// A string map's keys are free (`values`) or declared (`columns`); either way a value that
    /// is not a string is reported, a block at its key, a flow collection at its bracket, and a
    /// declared map's unknown key at the key.
    @Test func stringMapsReportTheirValuesLikeSections() {
        let text =
            MappingFixtures.base + """
                agents: [{name: A}]
                approvals:
                  table: requests
                  values:
                    request_type:
                      nested: x
                    priority: [1]
                  columns:
                    title:
                      nested: x
                    colour: c
                """
        let lines = MappingFixtures.issues([("m.yaml", text)]).map(\.description)
        #expect(
            lines.contains("m.yaml:10:5: approvals.values.request_type: expected a string, got a mapping"), "\(lines)")
        #expect(lines.contains("m.yaml:12:15: approvals.values.priority: expected a string, got a list"), "\(lines)")
        #expect(lines.contains("m.yaml:14:5: approvals.columns.title: expected a string, got a mapping"), "\(lines)")
        #expect(lines.contains { $0.hasPrefix("m.yaml:16:5: approvals.columns.colour: unknown key 'colour'") })
    }

    @Test func duplicateToolAndSectionAcrossFiles() {
        let one =
            MappingFixtures.base + """
                agents: [{name: A, tools: [t]}]
                tools:
                  - {name: t, description: d, hosted: {type: web_search}}
                """
        let two = """
            version: 1
            results: {result_column: r}
            tools:
              - {name: t, description: d, hosted: {type: code_interpreter}}
            """
        let lines = MappingFixtures.issues([("m/a.yaml", one), ("m/b.yaml", two)]).map(\.description)
        #expect(lines.contains("m/b.yaml:2:1: results: section 'results' is already defined at m/a.yaml:5:1"))
        #expect(
            lines.contains {
                $0.hasPrefix("m/b.yaml:4:12: tools[0].name: duplicate tool name 't' (first defined at m/a.yaml:8:5)")
            })
    }

    @Test func versionIsRequiredAndChecked() {
        #expect(
            MappingFixtures.issues([("v.yaml", "tools: []\n")]).map(\.description)
                .contains("v.yaml:1:1: missing required key 'version'"))
        #expect(
            MappingFixtures.issues([("v.yaml", "version: 2\n")]).map(\.description)
                .contains("v.yaml:1:10: version: unsupported version '2' (this bridge reads version 1)"))
    }

    @Test func unknownModelAPIIsReportedWhereItIsWritten() {
        let text =
            MappingFixtures.base + """
                agents:
                  - name: A
                    model_api: completions
                """
        let lines = MappingFixtures.issues([("t.yaml", text)]).map(\.description)
        #expect(
            lines.contains {
                $0.hasPrefix("t.yaml:")
                    && $0.contains(
                        "agents[0].model_api: unknown model_api 'completions' (expected responses or chat_completions)")
            })
    }

    @Test func typesRequiredKeysAndImplementations() {
        let text =
            MappingFixtures.base + """
                agents:
                  - name: A
                    max_turns: many
                    model_api: chat_completions
                    tools: [ws, both]
                    handoffs: [{agent: B}]
                    tool_use_behavior: {stop_at_tool_names: [zzz]}
                tools:
                  - name: ws
                    hosted: {type: web_search}
                  - name: both
                    description: d
                    sql: {query: SELECT 1}
                    command: {argv: [/bin/true]}
                  - description: nameless
                    http: {url: "ftp://x"}
                  - name: fs
                    hosted: {type: file_search}
                """
        let lines = MappingFixtures.issues([("t.yaml", text)]).map(\.description)
        #expect(lines.contains("t.yaml:8:16: agents[0].max_turns: expected an integer, got a string"))
        #expect(
            lines.contains {
                $0.hasPrefix(
                    "t.yaml:10:13: agents[0].tools[0]: hosted tool 'ws' (web_search) needs model_api responses")
            })
        #expect(lines.contains("t.yaml:11:24: agents[0].handoffs[0].agent: unknown agent 'B' (did you mean 'A'?)"))
        #expect(
            lines.contains(
                "t.yaml:12:46: agents[0].tool_use_behavior.stop_at_tool_names[0]: 'zzz' is not one of this agent's tools"
            ))
        #expect(lines.contains("t.yaml:16:5: tools[1]: give exactly one implementation, found sql and command"))
        #expect(lines.contains("t.yaml:20:5: tools[2]: missing required key 'name'"))
        #expect(lines.contains("t.yaml:21:17: tools[2].http.url: not an http(s) URL: 'ftp://x'"))
        #expect(lines.contains("t.yaml:23:13: tools[3].hosted: file_search needs vector_store_ids"))
    }

    @Test func templateRootsAndDefaultAgent() {
        let text = """
            version: 1
            source:
              input: "{{tsk.name}}"
              agent_selection: {match_column: role, default_agent: Nobody}
            results: {}
            agents:
              - name: A
                instructions: "Hello {{agent.name"
            """
        let lines = MappingFixtures.issues([("r.yaml", text)]).map(\.description)
        #expect(
            lines.contains {
                $0.hasPrefix("r.yaml:3:10: source.input: template reference '{{tsk.name}}' has unknown root 'tsk'")
            })
        #expect(lines.contains("r.yaml:8:19: agents[0].instructions: unterminated '{{' in template"))
        // default_agent is only checked once source parses; the input error keeps source nil.
        #expect(!lines.isEmpty)
        let ok = MappingFixtures.issues([
            (
                "r.yaml",
                text.replacingOccurrences(of: "tsk", with: "task")
                    .replacingOccurrences(of: "{{agent.name\"", with: "{{agent.name}}\"")
            )
        ]).map(\.description)
        #expect(ok == ["r.yaml:4:56: source.agent_selection.default_agent: unknown agent 'Nobody'"])
    }

    @Test func sqlPositionalParametersAndUnknownRootsAreRejected() {
        let text =
            MappingFixtures.base + """
                agents: [{name: A, tools: [q]}]
                tools:
                  - name: q
                    description: d
                    sql: {query: "SELECT $1, :agent.id, ':nope', \\"x:y\\", 1::int"}
                """
        let lines = MappingFixtures.issues([("s.yaml", text)]).map(\.description)
        #expect(lines.contains { $0.contains("positional parameter '$1' is not allowed") })
        #expect(lines.contains { $0.contains("SQL parameter ':agent.id' has an unknown root") })
        #expect(lines.count == 2)
    }

    @Test func errorsConformToBridgeError() {
        let e = MappingErrors([MappingIssue(file: "f.yaml", line: 2, column: 3, path: "agents[0]", message: "m")])
        #expect(e.exitStatus == .badInput)
        #expect(e.description == "f.yaml:2:3: agents[0]: m")
    }
}
