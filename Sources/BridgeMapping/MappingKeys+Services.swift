import BridgeCore

// The keys of `approvals`, `mcp_servers`, `pricing`, `limits`, `budgets` and `sessions` (see
// `MappingKeySet`).
extension Keys {
    // MARK: approvals

    @SnakeCaseRawValues
    enum Approvals: ModelKeySet {
        case table, key, status
        case expiresAtColumn
        case expiresAfter
        case responseColumn
        case respondedAtColumn
        case groupColumn
        case columns, values

        static let defaults = ApprovalsMapping()

        var field: KeyField<ApprovalsMapping> {
            switch self {
            // Required, so the model's placeholder is no default.
            case .table: .key(.init(.name, .required, "the table of approval requests"))
            case .key: .name(\.key, "its key column")
            case .status: .key(.init(.section(ApprovalStatus.self), "its status column and values"))
            case .expiresAtColumn:
                .name(\.expiresAtColumn, "receives the deadline; past it an undecided request is rejected")
            case .expiresAfter: .duration(\.expiresAfterSeconds, "how long a request waits for a decision")
            case .responseColumn: .name(\.responseColumn, "the reviewer's answer (json or text)")
            case .respondedAtColumn: .name(\.respondedAtColumn, "when it was decided")
            case .groupColumn: .name(\.groupColumn, "receives the task's group value")
            case .columns: .key(.init(.section(ApprovalColumn.self), "bridge's content → the table's columns"))
            case .values: .key(.init(.stringMap, "constant values for other columns"))
            }
        }
    }

    enum ApprovalStatus: String, ModelKeySet {
        case column, pending, approved, rejected, expired

        static let defaults = ApprovalsMapping()

        var field: KeyField<ApprovalsMapping> {
            switch self {
            case .column: .name(\.statusColumn, "the status column")
            case .pending: .name(\.pending, "a request waiting for a decision")
            case .approved: .name(\.approved, "an approved request")
            case .rejected: .name(\.rejected, "a rejected request")
            case .expired: .name(\.expired, "written when an undecided request expires (else it stays pending)")
            }
        }
    }

    @SnakeCaseRawValues
    enum ApprovalColumn: MappingKeySet {
        case title, description
        case proposedActions
        case context

        var declaration: MappingKey {
            switch self {
            case .title: .init(.name, "receives the request's title (text)")
            case .description: .init(.name, "receives its description (text)")
            case .proposedActions: .init(.name, "receives the proposed call (json)")
            case .context: .init(.name, "receives task id, trace id, tool, arguments and call id (json)")
            }
        }
    }

    // MARK: mcp_servers

    @SnakeCaseRawValues
    enum MCPServer: ModelKeySet {
        case name, stdio
        case streamableHTTP
        case toolFilter
        case cacheToolsList
        case timeoutMs
        case useStructuredContent

        // The name and transport are required, so the placeholders here are no defaults.
        static let defaults = MCPServerMapping(name: "", transport: .streamableHTTP(url: "", headers: [:]))

        var field: KeyField<MCPServerMapping> {
            let one = MappingKeyRequirement.when("exactly one of stdio, streamable_http")
            return switch self {
            case .name: .key(.init(.name, .required, "the server's name (^[a-zA-Z0-9_-]{1,64}$, unique)"))
            case .stdio: .key(.init(.section(MCPStdio.self), one, "a child process speaking JSON-RPC on stdin/stdout"))
            case .streamableHTTP: .key(.init(.section(MCPHTTP.self), one, "an MCP endpoint"))
            case .toolFilter: .key(.init(.section(MCPToolFilter.self), "which of its tools agents see"))
            case .cacheToolsList: .bool(\.cacheToolsList, "read the tool list once per worker")
            case .timeoutMs:
                .int(
                    \.timeoutMs, min: 1, max: MCPServerMapping.maxTimeoutMs,
                    "bound on starting it and on each request, in ms")
            case .useStructuredContent:
                .bool(\.useStructuredContent, "give the model structuredContent when a result has it")
            }
        }
    }

    enum MCPStdio: String, MappingKeySet {
        case command, args, env, cwd

        var declaration: MappingKey {
            switch self {
            case .command: .init(.name, .required, "the program (no shell)")
            case .args: .init(.names, "its arguments")
            case .env: .init(.names, "environment variables it may see besides PATH, HOME, LANG, TZ")
            case .cwd: .init(.name, defaultProse: "the mappings directory", "its directory (relative: to the mappings)")
            }
        }
    }

    enum MCPHTTP: String, MappingKeySet {
        case url, headers

        var declaration: MappingKey {
            switch self {
            case .url: .init(.name, .required, "an http(s) URL")
            case .headers: .init(.stringMap, "request headers; values may use ${env:VAR}")
            }
        }
    }

    enum MCPToolFilter: String, MappingKeySet {
        case allowed, blocked

        var declaration: MappingKey {
            switch self {
            case .allowed: .init(.names, defaultProse: "all tools", "only these tools")
            case .blocked: .init(.names, "never these tools")
            }
        }
    }

    // MARK: pricing, limits, budgets

    @SnakeCaseRawValues
    enum Price: MappingKeySet {
        case input
        case cachedInput
        case output

        var declaration: MappingKey {
            switch self {
            case .input: .init(.number(positive: false), .required, "USD per 1M input tokens")
            case .cachedInput:
                .init(.number(positive: false), defaultProse: "the input price", "USD per 1M cached input tokens")
            case .output: .init(.number(positive: false), .required, "USD per 1M output (and reasoning) tokens")
            }
        }
    }

    enum Limits: String, MappingKeySet {
        case models, tools, fairness

        var declaration: MappingKey {
            switch self {
            case .models: .init(.named("<model>", ModelLimit.self), "fleet-wide limits per model name")
            case .tools: .init(.named("<tool>", ToolLimit.self), "fleet-wide limits per tool name")
            case .fairness: .init(.section(Fairness.self), "fair claims across groups")
            }
        }
    }

    @SnakeCaseRawValues
    enum ModelLimit: MappingKeySet {
        case requestsPerMinute
        case tokensPerMinute
        case concurrency

        var declaration: MappingKey {
            switch self {
            case .requestsPerMinute: .init(.number(positive: true), "requests per minute, fleet-wide")
            case .tokensPerMinute: .init(.number(positive: true), "tokens per minute, fleet-wide")
            case .concurrency: .init(.int(min: 1, max: 100_000), "calls at once, fleet-wide")
            }
        }
    }

    enum ToolLimit: String, MappingKeySet {
        case concurrency

        var declaration: MappingKey { .init(.int(min: 1, max: 100_000), .required, "calls at once, fleet-wide") }
    }

    enum Fairness: String, MappingKeySet {
        case group

        var declaration: MappingKey { .init(.name, .required, "the task column whose values share claims fairly") }
    }

    @SnakeCaseRawValues
    enum Budgets: ModelKeySet {
        case table, key, limit
        case spentColumn
        case onExceeded

        // The table and limit are required, so the placeholders here are no defaults.
        static let defaults = BudgetMapping(table: "", limit: "")

        var field: KeyField<BudgetMapping> {
            switch self {
            case .table: .key(.init(.name, .required, "the table of budgets (one row per group)"))
            case .key: .name(\.key, "its key column, compared with source.group_column")
            case .limit: .key(.init(.sql, .required, "one SQL expression over its row: the budget in USD"))
            case .spentColumn: .name(\.spentColumn, "receives the group's spend")
            case .onExceeded:
                .key(
                    .init(
                        .choice(BudgetMapping.OnExceeded.allCases.map(\.rawValue)),
                        default: Self.defaults.onExceeded.rawValue, "what happens to a group's tasks over budget"))
            }
        }
    }

    // MARK: sessions

    @SnakeCaseRawValues
    enum Sessions: ModelKeySet {
        case key, table
        case sessionColumn
        case item, values, roles, limit

        static let defaults = SessionsMapping(key: Template(""))

        var field: KeyField<SessionsMapping> {
            let withTable = MappingKeyRequirement.when("with table")
            return switch self {
            case .key: .key(.init(.template, .required, "the session key, from the task row ({{task.…}}); empty: none"))
            case .table: .key(.init(.name, defaultProse: "bridge's own tables", "the application's table of messages"))
            // Read by hand: only with table, and then required.
            case .sessionColumn:
                .key(
                    .init(.name, withTable, default: Self.defaults.sessionColumn, "the column holding the session key"))
            case .item: .key(.init(.section(SessionItem.self), withTable, "item fields → the table's columns"))
            case .values: .key(.init(.stringMap, "constant values for other columns (with table)"))
            case .roles:
                .key(.init(.section(SessionRole.self), "bridge's roles → the role column's values (with table)"))
            case .limit: .int(\.limit, min: 1, max: SessionsMapping.maxLimit, "items read before a run")
            }
        }
    }

    @SnakeCaseRawValues
    enum SessionItem: MappingKeySet {
        case role, content
        case createdAt
        case id, data
        case toolsUsed

        var declaration: MappingKey {
            switch self {
            case .role: .init(.name, .required, "the role column")
            case .content: .init(.name, .required, "the message text column")
            case .createdAt: .init(.name, .when("created_at or id"), "orders the items")
            case .id: .init(.name, .when("created_at or id"), "orders items written at the same time")
            case .data: .init(.name, "the whole item as JSON, to replay tool calls exactly")
            case .toolsUsed: .init(.name, "an assistant message's tool calls and results (json list)")
            }
        }
    }

    enum SessionRole: String, MappingKeySet {
        case user, assistant, system, tool

        var declaration: MappingKey {
            switch self {
            case .user, .assistant, .system: .init(.name, default: rawValue, "the value of this role")
            case .tool: .init(.name, "the value of tool items; unmapped: they are not rows of their own")
            }
        }
    }
}
