import BridgeCore
import BridgeTraceModel

/// The loaded, validated mappings (every `*.yaml` in the mappings directory, merged).
///
/// Version 1 of the format. Sections: `source`, `results`, `tracing`, `handoffs_table`, `backfill`,
/// `agents`, `tools`. Column and table names are identifiers, never SQL text.
///
/// Only the loader sets these fields (`internal(set)`): a loaded configuration is never changed
/// in place, and a variant is a new value (`with(columnTypes:)`).
public struct MappingConfig: Sendable, Equatable {
    public internal(set) var version: Int = 1
    public internal(set) var source: SourceMapping
    public internal(set) var results: ResultsMapping
    public internal(set) var tracing: TracingMapping = .init()
    public internal(set) var handoffsTable: HandoffsTableMapping?
    public internal(set) var agents: [AgentMapping]
    public internal(set) var tools: [ToolMapping]
    /// Input and output guardrails that agents name.
    public internal(set) var guardrails: [GuardrailMapping] = []
    /// Where approval requests for `needs_approval` tools are written (the user's table).
    public internal(set) var approvals: ApprovalsMapping?
    /// How `bridge exec --backfill` reads historical runs (optional).
    public internal(set) var backfill: BackfillMapping?
    /// MCP servers whose tools agents may use (`mcp_servers`).
    public internal(set) var mcpServers: [MCPServerMapping] = []
    /// USD per 1M tokens per model (`pricing`); empty when there is no section.
    public internal(set) var pricing = Pricing()
    /// Fleet-wide model and tool limits and fair claims (`limits`).
    public internal(set) var limits: LimitsMapping?
    /// The application's budgets per group (`budgets`).
    public internal(set) var budgets: BudgetMapping?
    /// Conversation memory across runs (`sessions`).
    public internal(set) var sessions: SessionsMapping?
    /// The files the mappings were read from, in load order.
    public internal(set) var files: [String] = []
    /// Where each key was written, keyed by `file#keypath` (not encoded).
    public internal(set) var locations: [String: MappingLocation] = [:]
    /// The real SQL types of the mapped tables' columns, loaded from the catalog at start-up
    /// (`ColumnTypes.load`); empty until then (not encoded, not compared). Set only through
    /// `with(columnTypes:)`, so a loaded config is never changed in place.
    public private(set) var columnTypes = ColumnTypes()

    /// These mappings with the columns' types read from the catalog (a new value: the loaded
    /// one stays as it was).
    public func with(columnTypes: ColumnTypes) -> MappingConfig {
        var copy = self
        copy.columnTypes = columnTypes
        return copy
    }

    // MARK: What the worker and the migrations need

    /// The agent named `name`.
    public func agent(named name: String) -> AgentMapping? { agents.first { $0.name == name } }

    /// The MCP server named `name`.
    public func mcpServer(named name: String) -> MCPServerMapping? { mcpServers.first { $0.name == name } }

    /// The tool named `name`.
    public func tool(named name: String) -> ToolMapping? { tools.first { $0.name == name } }

    /// The guardrail named `name`.
    public func guardrail(named name: String) -> GuardrailMapping? { guardrails.first { $0.name == name } }

    /// Claim order for the priority column's values, highest first (empty: no priority).
    public var priorityOrder: [String] { source.priority?.order ?? [] }

    /// The execution table's logical columns (`status`, `trace_id`, …) mapped to real column
    /// names; only the configured ones. Empty when there is no `results.executions` section.
    public var executionColumns: [String: String] { results.executions?.columns.byLogicalName ?? [:] }

    /// Names that migrations substitute: `tasks_table`, `tasks_key` and the claim order's
    /// columns (`tasks_status_column`, `tasks_priority_column`, `tasks_created_at_column`,
    /// for `0011_claim_index.sql`; without a priority the status column stands in, without
    /// created_at the key) always, `executions_table` and its time columns
    /// (`executions_completed_at_column`, `executions_started_at_column`, for
    /// `0049_verify_window_indexes.sql`) only when `results.executions` is configured.
    public var placeholders: [String: String] {
        var p = [
            "tasks_table": source.table, "tasks_key": source.key,
            "tasks_status_column": source.status.column,
            "tasks_priority_column": source.priority?.column ?? source.status.column,
            "tasks_created_at_column": source.createdAtColumn ?? source.key,
            // For the opt-in fair claim index (migrations/fairness/0058): the fairness group.
            "tasks_group_column": limits?.fairnessGroup ?? source.groupColumn ?? source.status.column,
        ]
        if let e = results.executions {
            p["executions_table"] = e.table
            // For 0049's time indexes (verify --since); without a time column, the key.
            let c = e.columns
            p["executions_completed_at_column"] = c.completedAt ?? c.startedAt ?? e.key
            p["executions_started_at_column"] = c.startedAt ?? c.completedAt ?? e.key
        }
        return p
    }

    /// Where `path` (a key path relative to `origin`) was written; falls back to `origin`.
    public func location(_ origin: MappingLocation, _ path: String = "") -> MappingLocation {
        let full = path.isEmpty ? origin.path : (origin.path.isEmpty ? path : origin.path + "." + path)
        return locations[origin.file + "#" + full]
            ?? MappingLocation(
                file: origin.file, line: origin.line,
                column: origin.column, path: full)
    }

    public static func == (a: MappingConfig, b: MappingConfig) -> Bool {
        a.version == b.version && a.source == b.source && a.results == b.results && a.tracing == b.tracing
            && a.handoffsTable == b.handoffsTable && a.agents == b.agents && a.tools == b.tools
            && a.backfill == b.backfill && a.guardrails == b.guardrails && a.approvals == b.approvals
            && a.mcpServers == b.mcpServers
            && a.pricing == b.pricing && a.limits == b.limits && a.budgets == b.budgets
            && a.sessions == b.sessions
    }
}

extension MappingLocation {
    /// A placeholder for models built in code rather than loaded from a file.
    public static let unknown = MappingLocation(file: "<code>", line: 0, column: 0, path: "")
}
