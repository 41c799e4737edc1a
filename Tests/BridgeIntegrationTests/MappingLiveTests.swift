import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTestSupport
import BridgeTraceModel
import Foundation
import Testing

@Suite(.enabled(if: TestDatabase.isAvailable, "needs BRIDGE_TEST_DATABASE_URL (scripts/test.sh)"))
struct MappingLiveTests {
    static var mappingsDirectory: String { TestDatabase.projectRoot.appendingPathComponent("mappings").path }

    /// What `bridge migrate` adds that the shipped mappings use.
    static func addTraceColumns(_ c: PostgresConnection) async throws {
        try await c.simpleQuery("ALTER TABLE tasks ADD COLUMN openai_trace_id text")
        try await c.simpleQuery("ALTER TABLE task_executions ADD COLUMN openai_trace_id text")
    }

    @Test func shippedMappingsPassTheLiveCheck() async throws {
        let config = try MappingLoader.load(directory: Self.mappingsDirectory)
        let c = try await TestDatabase.connect(try await TestDatabase.createReference(seed: false))
        // Before migration, exactly the two trace id columns are missing.
        let before = await MappingValidator.checkLive(config, connection: c)
        #expect(
            before.map(\.message) == [
                "column tasks.openai_trace_id does not exist (bridge migrate adds it)",
                "column task_executions.openai_trace_id does not exist (bridge migrate adds it)",
            ])
        #expect(before.first?.description.hasPrefix("\(Self.mappingsDirectory)/bridge.yaml:") == true)
        #expect(before.first?.path == "results.trace_id_column")
        try await Self.addTraceColumns(c)
        let after = await MappingValidator.checkLive(config, connection: c)
        #expect(after == [])
        await c.close()
    }

    @Test func missingTablesColumnsAndBadToolSQLAreLocated() async throws {
        let text = """
            version: 1
            source:
              table: tasks
              status: {column: state}
              input: "{{task.nme}}"
              agent_selection: {table: agentz, match_column: role}
            results:
              result_column: result
              executions: {table: task_executions, columns: {status: status, error_type: err_type}}
            agents:
              - name: A
                instructions: "{{agent.system_prompt}}"
                tools: [q]
            tools:
              - name: q
                description: d
                sql: {query: "SELECT nosuch FROM agents WHERE id = :task.id"}
            """
        let config = try MappingLoader.load(documents: [("m/x.yaml", text)])
        let c = try await TestDatabase.connect(try await TestDatabase.createReference(seed: false))
        let lines = await MappingValidator.checkLive(config, connection: c).map(\.description)
        #expect(
            lines.contains(
                "m/x.yaml:4:20: source.status.column: column tasks.state does not exist (did you mean tasks.status?)"))
        #expect(
            lines.contains("m/x.yaml:5:10: source.input: column tasks.nme does not exist (did you mean tasks.name?)"))
        #expect(lines.contains("m/x.yaml:6:28: source.agent_selection.table: table agentz does not exist"))
        #expect(
            lines.contains {
                $0.hasPrefix(
                    "m/x.yaml:9:78: results.executions.columns.error_type: column task_executions.err_type does not exist"
                )
            })
        #expect(
            lines.contains {
                $0.hasPrefix("m/x.yaml:17:18: tools[0].sql.query: the SQL of tool 'q' does not prepare:")
                    && $0.contains("nosuch")
            })
        #expect(!lines.contains { $0.contains("agentz.") })
        await c.close()
    }

    @Test func runSpecForASeededProjectManagerTask() async throws {
        let config = try MappingLoader.load(directory: Self.mappingsDirectory)
        let bridge = DatabaseToSDKBridge(config: config)
        let c = try await TestDatabase.connect(try await TestDatabase.createReference(seed: true))
        let id = try #require(
            try await c.query(
                """
                SELECT t.id::text AS id FROM tasks t JOIN agents a ON a.id = t.agent_id
                WHERE a.role = \("Project Manager") AND t.status = \("pending") ORDER BY t.created_at, t.id LIMIT 1
                """
            ).first?["id"])
        let task = try #require(try await bridge.loadTask(id: TaskKey(id), connection: c))

        let (rows, edges) = try await bridge.loadAgentsAndEdges(for: task, connection: c)
        #expect(rows.count == 3)
        #expect(edges.count == 2)
        let spec = try bridge.runSpec(task: task, agentRows: rows, handoffEdges: edges, attempt: 1)
        #expect(spec.startingAgent == "Project Manager")
        #expect(Set(spec.agents.keys) == ["Project Manager", "Researcher", "Content Specialist"])
        #expect(
            spec.agents["Project Manager"]?.handoffs.map(\.toolName) == [
                "transfer_to_researcher", "transfer_to_content_specialist",
            ])
        #expect(
            spec.agents["Project Manager"]?.instructions.hasPrefix(
                "Break work down and route it to the right specialist.\n") == true)
        #expect(spec.traceId == TraceID.forTask(TaskKey(id), attempt: 1) && spec.traceId.isWellFormed)
        #expect(spec.metadata["task_id"] == id)
        #expect(spec.metadata["workspace_id"] == task["workspace_id"]?.stringValue)
        #expect(spec.metadata["agent_id"] == task["agent_id"]?.stringValue)
        #expect(Set(spec.metadata.keys) == ["task_id", "workspace_id", "agent_id", "attempt", "bridge_version"])
        #expect(spec.input.contains("Phase: ANALYSIS"))
        // The spec encodes as one JSON line with snake_case keys.
        let json = String(decoding: try JSONEncoder().encode(spec), as: UTF8.self)
        #expect(json.contains("\"starting_agent\":\"Project Manager\"") && !json.contains("\n"))
        await c.close()
    }

    @Test func shippedSQLToolsRunOnTheReferenceSchema() async throws {
        let config = try MappingLoader.load(directory: Self.mappingsDirectory)
        let bridge = DatabaseToSDKBridge(config: config)
        let c = try await TestDatabase.connect(
            try await TestDatabase.createReference(seed: true, workspaces: 2, tasksPerWorkspace: 6))
        let id = try #require(
            try await c.query(
                """
                SELECT t.id::text AS id FROM tasks t JOIN agents a ON a.id = t.agent_id
                WHERE a.role = \("Project Manager") AND t.status = \("pending") LIMIT 1
                """
            ).first?["id"])
        let task = try #require(try await bridge.loadTask(id: TaskKey(id), connection: c))

        func sql(_ name: String) throws -> SQLToolSpec {
            guard case .sql(let s)? = config.tool(named: name)?.implementation else {
                throw SQLCompileError(message: name)
            }
            return s
        }
        func json(_ q: PostgresQuery) async throws -> JSONValue {
            let rows = try await c.query(q)
            let text = try #require(rows.first?[rows.columns[0]])
            return try JSONValue.parse(text)
        }
        // Read tool: the workspace's three active agents.
        let team = try await c.query(
            try sql("get_team_roles_and_status").compile(arguments: ["include_inactive": false], task: task))
        #expect(Set(team.compactMap { $0["role"] }) == ["Project Manager", "Researcher", "Content Specialist"])
        #expect(team.allSatisfy { $0.int("open_tasks") != nil })
        // Write tool: creates once, then reports a duplicate; unknown roles are refused.
        let create = try sql("create_and_assign_sub_task")
        let args: JSONValue = [
            "role": "Researcher", "name": "Research the audience", "description": "Find facts.", "priority": "medium",
        ]
        let first = try await json(try create.compile(arguments: args, task: task))
        #expect(first["created"] == true)
        #expect(first["reason"] == "created")
        let second = try await json(try create.compile(arguments: args, task: task))
        #expect(second["created"] == false)
        #expect(second["reason"]?.stringValue?.hasPrefix("duplicate") == true)
        #expect(second["task_id"] == first["task_id"])
        var badRole = args.objectValue!
        badRole["role"] = "Janitor"
        badRole["name"] = "Other"
        let third = try await json(try create.compile(arguments: .object(badRole), task: task))
        #expect(third["reason"] == "no agent with this role in the workspace")
        let sub = try #require(
            try await c.query(
                """
                SELECT status, assigned_to_role, delegation_depth, creation_type, parent_task_id::text AS parent,
                       created_by_task_id::text AS creator, workspace_id::text AS ws
                FROM tasks WHERE id = \(first["task_id"]!.stringValue!)::uuid
                """
            ).first)
        #expect(
            sub["status"] == "pending" && sub["assigned_to_role"] == "Researcher" && sub.int("delegation_depth") == 1)
        #expect(sub["creation_type"] == "agent" && sub["parent"] == id && sub["creator"] == id)
        #expect(sub["ws"] == task["workspace_id"]?.stringValue)
        // A sub-task cannot create sub-tasks.
        let subTask = try #require(
            try await bridge.loadTask(id: TaskKey(first["task_id"]!.stringValue!), connection: c))

        var nested = args.objectValue!
        nested["name"] = "Nested"
        let fourth = try await json(try create.compile(arguments: .object(nested), task: subTask))
        #expect(fourth["created"] == false)
        #expect(fourth["reason"]?.stringValue?.hasPrefix("delegation depth") == true)
        // store_data logs the arguments and returns {"stored": true}.
        let stored = try await json(try sql("store_data").compile(arguments: ["key": "k", "value": "v"], task: task))
        #expect(stored == ["stored": true])
        let log = try #require(
            try await c.query(
                """
                SELECT content::text AS content FROM execution_logs WHERE type = 'stored_data' AND task_id = \(id)::uuid
                """
            ).first)
        #expect(try JSONValue.parse(log["content"]!) == ["key": "k", "value": "v"])
        await c.close()
    }
}
