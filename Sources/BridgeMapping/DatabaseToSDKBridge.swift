import BridgeCore
import BridgePostgres
import BridgeTraceModel

/// One row of the handoffs edge table: the source and target agents' keys (as text) and the
/// edge's description.
public struct HandoffEdge: Sendable, Equatable, Hashable {
    public var sourceId: String
    public var targetId: String
    public var description: String?
}

/// Why a task row could not become a run spec. Ends a task as failed, not the process.
public struct RunSpecError: BridgeError, Sendable, Equatable {
    public var taskId: TaskKey
    public var message: String

    public var exitStatus: ExitStatus { .failed }
    public var description: String { "task \(taskId): \(message)" }
}

/// Turns a task row plus the mappings into a `RunSpec`: selects the starting agent, renders
/// instructions and input, resolves handoffs (from YAML and the edge table) and collects every
/// agent reachable by handoffs, with their tools.
public struct DatabaseToSDKBridge: Sendable {
    /// Reported in trace metadata as `bridge_version`.
    public static let bridgeVersion = "0.1.0"
    /// `max_turns` when the starting agent sets none.
    public static let defaultMaxTurns = 10

    public let config: MappingConfig

    public init(config: MappingConfig) { self.config = config }

    /// Builds the run spec for one attempt (1-based) of `task`.
    ///
    /// - Parameters:
    ///   - task: the task row, column name → value (json/jsonb columns as JSON values).
    ///   - agentRows: the database agent rows of the task's group (workspace).
    ///   - handoffEdges: rows of `handoffs_table` (ignored when it is not configured).
    public func runSpec(
        task: [String: JSONValue], agentRows: [[String: JSONValue]], handoffEdges: [HandoffEdge],
        attempt: Int
    ) throws(RunSpecError) -> RunSpec {
        let source = config.source
        guard let taskId = source.taskKey(of: task) else {
            throw RunSpecError(taskId: "?", message: "the task row has no value for its key column '\(source.key)'")
        }
        let selection = source.agentSelection

        // The task's own agent row, then the YAML agent it selects.
        var taskAgentRow: [String: JSONValue]?
        if let sel = selection, let col = sel.taskColumn, let ref = task[col], !ref.isNull {
            taskAgentRow = agentRows.first { $0[sel.key]?.templateText == ref.templateText }
        }
        let starting = try startingAgent(taskId: taskId, task: task, agentRow: taskAgentRow)

        let reached = reachable(
            from: starting, taskAgentRow: taskAgentRow, task: task, agentRows: agentRows, edges: handoffEdges)
        var (metadata, groupId) = traceMetadata(taskId: taskId, attempt: attempt, task: task, agentRow: taskAgentRow)

        // A session groups the conversation's traces (the SDK's group_id is the thread's id).
        let session = config.sessions?.sessionKey(task: task).map { SessionSpec(id: $0) }
        if let session {
            groupId = session.id
            metadata["session_id"] = session.id
        }
        let startingRow = taskAgentRow ?? row(for: starting, in: agentRows)
        var spec = RunSpec(
            traceId: TraceID.forTask(taskId, attempt: attempt), workflowName: config.tracing.workflowName,
            groupId: groupId, metadata: metadata, startingAgent: starting.name, agents: reached.agents,
            tools: reached.tools, input: source.input.render(task: task, agent: startingRow),
            maxTurns: starting.maxTurns ?? Self.defaultMaxTurns,
            traceIncludeSensitiveData: config.tracing.includeSensitiveData, taskId: taskId, attempt: attempt,
            guardrails: reached.guardrails)
        spec.session = session
        return spec
    }

    /// The agents reachable from `starting` by handoffs and as guardrail agents, breadth first,
    /// with the tools and guardrails they use.
    func reachable(
        from starting: AgentMapping, taskAgentRow: [String: JSONValue]?, task: [String: JSONValue],
        agentRows: [[String: JSONValue]], edges: [HandoffEdge]
    ) -> (agents: [String: AgentSpec], tools: [String: ToolSpec], guardrails: [String: GuardrailSpec]) {
        var order: [String] = [starting.name]
        var specs: [String: AgentSpec] = [:]
        var tools: [String: ToolSpec] = [:]
        var guardrails: [String: GuardrailSpec] = [:]
        var queue = [starting]
        func visit(_ name: String) {
            guard !order.contains(name), let next = config.agent(named: name) else { return }
            order.append(name)
            queue.append(next)
        }
        while !queue.isEmpty {
            let a = queue.removeFirst()
            let row =
                a.name == starting.name
                ? (taskAgentRow ?? self.row(for: a, in: agentRows)) : self.row(for: a, in: agentRows)
            let handoffs = resolveHandoffs(of: a, row: row, agentRows: agentRows, edges: edges)
            for h in handoffs where !order.contains(h.agent) {
                order.append(h.agent)
                if let next = config.agent(named: h.agent) { queue.append(next) }
            }
            for name in a.tools {
                guard let t = config.tool(named: name) else { continue }
                tools[name] = t.spec
                // A tool guardrail's agent travels with the spec, like an agent guardrail's.
                for g in t.spec.allGuardrails {
                    if case .agent(let checker) = g.check.implementation { visit(checker) }
                }
            }
            for name in a.inputGuardrails + a.outputGuardrails {
                guard let g = config.guardrail(named: name) else { continue }
                guardrails[name] = g.spec
                if case .agent(let checker) = g.implementation { visit(checker) }
            }
            var spec = AgentSpec(
                name: a.name, instructions: a.instructions.render(task: task, agent: row),
                model: a.model, modelSettings: a.modelSettings, tools: a.tools,
                handoffs: handoffs, toolUseBehavior: a.toolUseBehavior, modelAPI: a.modelAPI,
                outputSchema: a.outputType, inputGuardrails: a.inputGuardrails,
                outputGuardrails: a.outputGuardrails)
            spec.mcpServers = a.mcpServers
            specs[a.name] = spec
        }
        return (specs, tools, guardrails)
    }

    /// The trace's metadata (flat strings only) and group id (the task's group column).
    func traceMetadata(taskId: TaskKey, attempt: Int, task: [String: JSONValue], agentRow: [String: JSONValue]?)
        -> (metadata: [String: String], groupId: String?)
    {
        let source = config.source
        var metadata: [String: String] = [
            "task_id": taskId.text, "attempt": String(attempt),
            "bridge_version": Self.bridgeVersion,
        ]
        var groupId: String?
        if let g = source.groupColumn, let v = task[g], !v.isNull {
            groupId = v.templateText
            metadata["workspace_id"] = groupId
        }
        if let sel = source.agentSelection, let row = agentRow, let id = row[sel.key], !id.isNull {
            metadata["agent_id"] = id.templateText
        } else if let sel = source.agentSelection, let col = sel.taskColumn, let id = task[col], !id.isNull {
            metadata["agent_id"] = id.templateText
        }
        return (metadata, groupId)
    }

    /// The agent a task starts with: its agent row's match column matched against the YAML
    /// agents' `match`, else the fallback column's value, else `default_agent`, else the only
    /// agent when there is no `agent_selection`. `bridge exec` and `--backfill` both choose so.
    ///
    /// - Parameters:
    ///   - task: the task row (only the fallback column is read).
    ///   - agentRow: the task's own agent row (only the match column is read), nil when none.
    public func startingAgent(
        taskId: TaskKey, task: [String: JSONValue], agentRow taskAgentRow: [String: JSONValue]?
    ) throws(RunSpecError) -> AgentMapping {
        let selection = config.source.agentSelection
        var starting: AgentMapping?
        if let sel = selection, let row = taskAgentRow, let m = row[sel.matchColumn], !m.isNull {
            starting = agent(matching: m.templateText)
        }
        if starting == nil, let col = selection?.fallbackColumn, let v = task[col], !v.isNull {
            starting = agent(matching: v.templateText)
        }
        if starting == nil, let d = selection?.defaultAgent { starting = config.agent(named: d) }
        if starting == nil, selection == nil, config.agents.count == 1 { starting = config.agents[0] }
        guard let starting else {
            var tried: [String] = []
            // The values tried, for the message: a NULL shows as '' (it matched no agent either).
            if let sel = selection {
                if let row = taskAgentRow {
                    tried.append("\(sel.matchColumn)='\(row[sel.matchColumn]?.templateText ?? "")'")
                }
                if let col = sel.fallbackColumn { tried.append("\(col)='\(task[col]?.templateText ?? "")'") }
            }
            throw RunSpecError(
                taskId: taskId,
                message: "no mapped agent for this task"
                    + (tried.isEmpty ? "" : " (tried \(tried.joined(separator: ", ")))") + " and no default_agent")
        }
        return starting
    }

    /// The handoffs the YAML gives `agent` (targets that exist, each once): what an agent span
    /// lists when no handoff edge rows are read (the backfill).
    public func yamlHandoffs(of agent: AgentMapping) -> [String] {
        resolveHandoffs(of: agent, row: nil, agentRows: [], edges: []).map(\.agent)
    }

    /// The YAML agent whose `match` equals `value`.
    public func agent(matching value: String) -> AgentMapping? { config.agents.first { $0.match == value } }

    /// The first database agent row whose match column equals the YAML agent's `match`.
    func row(for agent: AgentMapping, in rows: [[String: JSONValue]]) -> [String: JSONValue]? {
        guard let sel = config.source.agentSelection else { return nil }
        return rows.first { $0[sel.matchColumn]?.templateText == agent.match }
    }

    /// YAML handoffs first, then edges from this agent's database row (mapped to YAML agents
    /// through the target row's match column); one handoff per target.
    ///
    /// Tool description: the SDK's default, with the target's `handoff_description`, else the
    /// YAML handoff's `description`, else the edge's description.
    func resolveHandoffs(
        of agent: AgentMapping, row: [String: JSONValue]?, agentRows: [[String: JSONValue]],
        edges: [HandoffEdge]
    ) -> [HandoffSpec] {
        var targets: [(name: String, description: String?)] = agent.handoffs.map { ($0.agent, $0.description) }
        if config.handoffsTable != nil, let sel = config.source.agentSelection, let id = row?[sel.key]?.templateText {
            for e in edges where e.sourceId == id {
                guard let targetRow = agentRows.first(where: { $0[sel.key]?.templateText == e.targetId }),
                    let m = targetRow[sel.matchColumn], let target = self.agent(matching: m.templateText)
                else { continue }
                targets.append((target.name, e.description))
            }
        }
        var out: [HandoffSpec] = []
        for t in targets where !out.contains(where: { $0.agent == t.name }) {
            guard let target = config.agent(named: t.name) else { continue }
            out.append(
                HandoffSpec(
                    agent: target.name, toolName: HandoffSpec.defaultToolName(for: target.name),
                    toolDescription: HandoffSpec.defaultDescription(
                        for: target.name, handoffDescription: target.handoffDescription ?? t.description)))
        }
        return out
    }
}

// MARK: Reading rows

extension DatabaseToSDKBridge {
    /// Reads the task row with key `taskId` as column → JSON value (jsonb columns as JSON).
    public func loadTask(id taskId: TaskKey, connection: PostgresConnection) async throws(PostgresError) -> [String:
        JSONValue]?
    {
        let rows = try await connection.query(taskQuery(id: taskId))
        return rows.first?["j"].flatMap(Self.parseRow)
    }

    /// The task row by key, the key bound with its column's type (so the primary key serves it).
    func taskQuery(id taskId: TaskKey) -> PostgresQuery {
        let s = config.source
        let keyCast = config.columnTypes.cast(s.table, s.key)
        return
            "SELECT to_jsonb(t)::text AS j FROM \(identifier: s.table) t WHERE \(identifier: s.key) = \(taskId)\(keyCast)"
    }

    /// The bridge's statements that run per task on the task table, with a sample key (see
    /// `TaskStore.hotPathStatements`).
    public func hotPathStatements(taskKey: TaskKey) -> [(name: String, query: PostgresQuery)] {
        [("load task", taskQuery(id: taskKey))]
    }

    /// Reads the agent rows of the task's group (all rows when `agent_selection.group_column`
    /// or `source.group_column` is not set) and the handoff edges among them.
    public func loadAgentsAndEdges(for task: [String: JSONValue], connection: PostgresConnection)
        async throws(PostgresError) -> (agentRows: [[String: JSONValue]], edges: [HandoffEdge])
    {
        guard let sel = config.source.agentSelection else { return ([], []) }
        var q: PostgresQuery = "SELECT to_jsonb(a)::text AS j FROM \(identifier: sel.table) a"
        if let agentGroup = sel.groupColumn, let taskGroup = config.source.groupColumn,
            let g = task[taskGroup], !g.isNull
        {
            q.append(
                " WHERE \(identifier: agentGroup) = \(g.templateText)\(config.columnTypes.cast(sel.table, agentGroup))")
        }
        let rows = try await connection.query(q).compactMap { $0["j"].flatMap(Self.parseRow) }
        guard let h = config.handoffsTable else { return (rows, []) }
        let ids = rows.compactMap { $0[sel.key].map(\.templateText) }
        guard !ids.isEmpty else { return (rows, []) }
        let idList = PostgresArray.text(ids)
        let idsCast = config.columnTypes.arrayCast(h.table, h.sourceColumn)
        let desc: PostgresQuery = h.descriptionColumn.map { "\(identifier: $0)::text" } ?? "NULL::text"
        let edges = try await connection.query(
            """
            SELECT \(identifier: h.sourceColumn)::text AS s, \(identifier: h.targetColumn)::text AS t, \(desc) AS d
            FROM \(identifier: h.table)
            WHERE \(identifier: h.sourceColumn) = ANY(\(idList)\(idsCast))
            """)
        return (
            rows,
            edges.compactMap { r in
                // A row without both ends is no edge (the user's table may hold such rows).
                guard let s = r["s"], let t = r["t"] else { return nil }
                return HandoffEdge(sourceId: s, targetId: t, description: r["d"])
            }
        )
    }

    static func parseRow(_ text: String) -> [String: JSONValue]? {
        (try? JSONValue.parse(text))?.objectValue
    }
}
