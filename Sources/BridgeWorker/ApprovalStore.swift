import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeRunner
import BridgeTraceModel
import BridgeTracing
import Foundation
import Synchronization

/// Durable approvals in the database: pausing a run (request rows in the user's approvals table,
/// the run state in `bridge.run_states`, the task marked waiting, the lease released; one
/// transaction), finding runs whose requests are all decided, claiming them again, and the
/// shell's `bridge approvals` / `approve` / `reject`. Table and column names come from the
/// mappings and are quoted; every value is bound.
public struct ApprovalStore: Sendable {
    public let config: MappingConfig
    /// The mappings' column types, read once per process when the configuration came without
    /// them (the `bridge approvals` commands; the worker's configuration has them).
    private let loadedTypes = Loaded()

    public init(config: MappingConfig) { self.config = config }

    final class Loaded: Sendable {
        let types = Mutex<ColumnTypes?>(nil)
    }

    /// The task column that marks a waiting task (`migrations/0020_approvals.sql`).
    public static let waitingColumn = "bridge_waiting_since"

    var source: SourceMapping { config.source }
    var tasks: PostgresQuery { .identifier(source.table) }

    /// The approvals mapping, or a configuration error.
    func mapping() throws -> ApprovalsMapping {
        guard let a = config.approvals else {
            throw PostgresError(kind: .client, message: "the mappings have no 'approvals' section")
        }
        return a
    }

    /// A run state as stored.
    public struct Stored: Sendable {
        public var taskKey: TaskKey
        public var traceId: TraceID
        public var attempt: Int
        public var executionKey: String?
        public var spec: RunSpec
        public var paused: PausedRun
        public var openSpans: [TraceRecorder.OpenSpan]
    }

    static func encode<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }

    /// Pauses the task in one transaction: one request row per pending call (its key comes
    /// back), the run state, the waits, `bridge_waiting_since = now()` and the lease released,
    /// guarded on the lease token. Returns the request keys, or throws `TaskStore.LeaseLost`.
    public func pause(
        on conn: PostgresConnection, task: Row, taskKey: TaskKey, token: LeaseToken, executionKey: String?,
        spec: RunSpec, paused: PausedRun, openSpans: [TraceRecorder.OpenSpan]
    ) async throws -> [String] {
        let a = try mapping()
        let specText = try Self.encode(spec)
        let stateText = try Self.encode(paused)
        let spansText = try Self.encode(openSpans)
        let inserts = paused.pending.map { requestInsert(a, task: task, taskKey: taskKey, spec: spec, call: $0) }
        let waiting: PostgresQuery = """
            UPDATE \(tasks) SET \(identifier: Self.waitingColumn) = now(), \(identifier: TaskStore.Lease.token) = NULL,
                \(identifier: TaskStore.Lease.expiresAt) = NULL, \(identifier: TaskStore.Lease.workerId) = NULL
            WHERE \(identifier: TaskStore.Lease.token) = \(token) AND \(identifier: source.status.column) = \(source.status.running)
            """
        let state: PostgresQuery = """
            INSERT INTO bridge.run_states (task_key, trace_id, attempt, execution_key, spec, state, open_spans, paused_at)
            VALUES (\(taskKey), \(spec.traceId), \(spec.attempt)::int, \(executionKey), \(specText)::jsonb,
                    \(stateText)::jsonb, \(spansText)::jsonb, now())
            ON CONFLICT (task_key) DO UPDATE SET trace_id = EXCLUDED.trace_id, attempt = EXCLUDED.attempt,
                execution_key = EXCLUDED.execution_key, spec = EXCLUDED.spec, state = EXCLUDED.state,
                open_spans = EXCLUDED.open_spans, paused_at = EXCLUDED.paused_at
            """
        let clear: PostgresQuery = "DELETE FROM bridge.approval_waits WHERE task_key = \(taskKey)"
        let calls = paused.pending
        return try await conn.transaction { c in
            guard try c.query(waiting).affectedRows == 1 else { throw TaskStore.LeaseLost(taskKey: taskKey) }
            try c.query(state)
            try c.query(clear)
            var keys: [String] = []
            for (insert, call) in zip(inserts, calls) {
                guard let key = try c.query(insert).first?["k"] else {
                    throw PostgresError(kind: .client, message: "the approval request insert returned no key")
                }
                try c.query(
                    """
                    INSERT INTO bridge.approval_waits (request_key, task_key, call_id, tool_name, arguments)
                    VALUES (\(key), \(taskKey), \(call.callId), \(call.name), \(call.arguments))
                    """)
                keys.append(key)
            }
            return keys
        }
    }

    /// The INSERT of one request row: status pending, expiry, the task's group, bridge's
    /// content in the mapped columns, the constant values.
    func requestInsert(
        _ a: ApprovalsMapping, task: Row, taskKey: TaskKey, spec: RunSpec,
        call: PendingApproval
    ) -> PostgresQuery {
        var cols: [PostgresQuery] = [.identifier(a.statusColumn)]
        var vals: [PostgresQuery] = ["\(a.pending)"]
        func add(_ column: String?, _ value: PostgresQuery) {
            guard let column else { return }
            cols.append(.identifier(column))
            vals.append(value)
        }
        add(a.expiresAtColumn, "now() + \(a.expiresAfterSeconds)::double precision * interval '1 second'")
        if let g = source.groupColumn, let v = task[g], !v.isNull { add(a.groupColumn, "\(v.templateText)") }
        let arguments = (try? JSONValue.parse(call.arguments)) ?? .string(call.arguments)
        // Empty default: a tool the spec does not describe.
        let description = spec.tools[call.name]?.description ?? ""
        let content: [String: JSONValue] = [
            "title": .string("Approve \(call.name) for task \(taskKey)"),
            "description": .string(
                "Agent \(call.agent) wants to call \(call.name)\(description.isEmpty ? "" : " (\(description))") with \(arguments.compact)."
            ),
            "proposed_actions": [
                [
                    "type": "tool_call", "tool_name": .string(call.name), "arguments": arguments,
                    "call_id": call.callId.json,
                ]
            ],
            "context": [
                "task_id": taskKey.json, "trace_id": spec.traceId.json,
                "attempt": .number(Double(spec.attempt)),
                "agent": .string(call.agent), "tool_name": .string(call.name), "call_id": call.callId.json,
                "arguments": arguments, "source": "bridge",
            ],
        ]
        for name in ApprovalsMapping.contentNames {
            guard let column = a.columns[name], let v = content[name] else { continue }
            add(column, "\(v.stringValue ?? v.compact)")
        }
        for (column, value) in a.values.sorted(by: { $0.key < $1.key }) { add(column, "\(value)") }
        return """
            INSERT INTO \(identifier: a.table) (\(cols)) VALUES (\(vals)) RETURNING \(identifier: a.key)::text AS k
            """
    }

    /// Whether `migrations/0020_approvals.sql` is applied (the state tables and the waiting column).
    public func isMigrated(on conn: PostgresConnection) async throws -> Bool {
        guard try await conn.ledgerHas([.runStates, .approvalWaits]) else { return false }
        let rows = try await conn.query(
            """
            SELECT EXISTS (SELECT 1 FROM pg_attribute WHERE attrelid = to_regclass(\(tasks.sql)) AND attname = \(Self.waitingColumn)
                               AND NOT attisdropped) AS ok
            """)
        return rows.first?["ok"] == "t"
    }

    /// The SQL type of `table.column` (to cast bridge's text keys to it, so the user's column
    /// is compared as it is and its index applies).
    func columnType(_ table: String, _ column: String, on conn: PostgresConnection) async throws -> String {
        if let t = config.columnTypes.type(table, column) { return t }
        var types = loadedTypes.types.withLock { $0 }
        if types == nil {
            let loaded = try await ColumnTypes.load(for: config, connection: conn)
            loadedTypes.types.withLock { $0 = loaded }
            types = loaded
        }
        guard let t = types?.type(table, column) else {
            throw PostgresError(kind: .client, message: "column \(table).\(column) does not exist")
        }
        return t
    }

    /// Waiting tasks whose every request is decided (approved, rejected, or past its expiry),
    /// oldest pause first.
    public func ready(on conn: PostgresConnection, limit: Int) async throws -> [TaskKey] {
        guard config.approvals != nil else { return [] }
        return try await conn.query(try await readyQuery(on: conn, limit: limit)).from("bridge.run_states").map {
            try $0.decode(TaskKey.self, "task_key")
        }
    }

    /// The statement of `ready`: driven by `bridge.run_states` (one row per waiting task); the
    /// user's tables are reached by their keys (bridge's text keys cast to the key types), so
    /// their primary key indexes apply however large they grow.
    public func readyQuery(on conn: PostgresConnection, limit: Int) async throws -> PostgresQuery {
        let a = try mapping()
        let keyType = try await columnType(a.table, a.key, on: conn)
        let taskKeyType = try await columnType(source.table, source.key, on: conn)
        let expiry: PostgresQuery =
            // Empty default: without an expiry column no request expires.
            a.expiresAtColumn.map { "AND (r.\(identifier: $0) IS NULL OR r.\(identifier: $0) > now())" } ?? ""
        return """
            SELECT s.task_key FROM bridge.run_states s
            JOIN \(tasks) t ON t.\(identifier: source.key) = s.task_key::\(catalogType: taskKeyType)
            WHERE t.\(identifier: Self.waitingColumn) IS NOT NULL
              AND NOT EXISTS (
                SELECT 1 FROM bridge.approval_waits w
                JOIN \(identifier: a.table) r ON r.\(identifier: a.key) = w.request_key::\(catalogType: keyType)
                WHERE w.task_key = s.task_key AND r.\(identifier: a.statusColumn) = \(a.pending) \(expiry))
            ORDER BY s.paused_at LIMIT \(limit)
            """
    }

    /// Claims a waiting task for resumption (one worker wins): clears the waiting mark and
    /// takes a lease. Returns the claim, or nil when another worker took it.
    public func claim(
        on conn: PostgresConnection, taskKey: TaskKey, workerId: String,
        lease duration: Duration
    ) async throws -> TaskStore.Claim? {
        let lease = TaskStore.Lease.self
        // The key and status bound with their columns' types, as the claim binds them.
        let types = config.columnTypes
        let rows = try await conn.query(
            """
            UPDATE \(tasks) AS x SET \(identifier: Self.waitingColumn) = NULL, \(identifier: lease.token) = gen_random_uuid()::text,
                \(identifier: lease.expiresAt) = now() + \(duration.inSeconds)::double precision * interval '1 second', \(identifier: lease.workerId) = \(workerId)
            WHERE \(identifier: source.key) = \(taskKey)\(types.cast(source.table, source.key))
              AND \(identifier: Self.waitingColumn) IS NOT NULL
              AND \(identifier: source.status.column) = \(source.status.running)\(types.cast(source.table, source.status.column))
            RETURNING to_jsonb(x.*)::text AS row, x.\(identifier: source.key)::text AS k, x.\(identifier: lease.token) AS token,
                      coalesce(x.\(identifier: lease.attempts), 1) AS attempt
            """)
        return try TaskStore.parseClaims(rows).first
    }

    /// When the task's run paused for approval, if a paused run's state is stored for it.
    public func pausedAt(on conn: PostgresConnection, taskKey: TaskKey) async throws -> Date? {
        try await conn.query(
            """
            SELECT extract(epoch FROM paused_at)::float8 AS at FROM bridge.run_states WHERE task_key = \(taskKey)
            """
        ).first?.double("at").map { Date(timeIntervalSince1970: $0) }
    }

    /// The stored state of a waiting task and the decisions on its requests.
    public func load(on conn: PostgresConnection, taskKey: TaskKey) async throws -> (Stored, [ApprovalDecision])? {
        let a = try mapping()
        guard
            let row = try await conn.query(
                """
                SELECT trace_id, attempt, execution_key, spec::text AS spec, state::text AS state, open_spans::text AS spans
                FROM bridge.run_states WHERE task_key = \(taskKey)
                """
            ).from("bridge.run_states").first
        else { return nil }
        let keyType = try await columnType(a.table, a.key, on: conn)
        let response: PostgresQuery = a.responseColumn.map { "r.\(identifier: $0)::text" } ?? "NULL::text"
        let waits = try await conn.query(
            """
            SELECT w.request_key, w.call_id, w.tool_name, r.\(identifier: a.statusColumn)::text AS status,
                   \(response) AS response
            FROM bridge.approval_waits w
            LEFT JOIN \(identifier: a.table) r ON r.\(identifier: a.key) = w.request_key::\(catalogType: keyType)
            WHERE w.task_key = \(taskKey) ORDER BY w.created_at, w.request_key
            """)
        let decoder = JSONDecoder()
        let stored = Stored(
            taskKey: taskKey, traceId: try row.decode(TraceID.self, "trace_id"),
            attempt: try row.decode(Int.self, "attempt"),
            executionKey: try row.optional(String.self, "execution_key"),
            spec: try decoder.decode(RunSpec.self, from: Data(row.decode(String.self, "spec").utf8)),
            paused: try decoder.decode(PausedRun.self, from: Data(row.decode(String.self, "state").utf8)),
            openSpans: try decoder.decode(
                [TraceRecorder.OpenSpan].self, from: Data(row.decode(String.self, "spans").utf8)))
        // The request row's status and response are NULL when the row is gone or unanswered.
        let decisions = try waits.map { w in
            Self.decision(
                a, requestKey: try w.decode(String.self, "request_key"), callId: try w.decode(CallID.self, "call_id"),
                toolName: try w.decode(String.self, "tool_name"),
                status: try w.optional(String.self, "status"), response: try w.optional(String.self, "response"))
        }
        return (stored, decisions)
    }

    /// One decision from a request row: approved, or rejected (the reviewer's message from the
    /// response: a JSON string, or an object's `message` / `reason`), or expired (undecided past
    /// its expiry, or the row is gone: treated as rejected).
    static func decision(
        _ a: ApprovalsMapping, requestKey: String, callId: CallID, toolName: String, status: String?,
        response: String?
    ) -> ApprovalDecision {
        let json = response.flatMap { try? JSONValue.parse($0) }
        let message =
            json?.stringValue ?? json?["message"]?.stringValue ?? json?["reason"]?.stringValue
            ?? (json == nil ? response : nil)
        let by = json?["by"]?.stringValue ?? json?["decided_by"]?.stringValue
        let outcome: ApprovalDecision.Outcome =
            switch status {
            case a.approved?: .approved
            case a.rejected?: .rejected
            default: .expired
            }
        return ApprovalDecision(
            callId: callId, outcome: outcome, message: outcome == .approved ? nil : message,
            decidedBy: by, requestId: requestKey, toolName: toolName)
    }

    /// After the resumed run finished: the state is no longer needed; requests that expired
    /// undecided get the `expired` status value (when mapped).
    public func finished(on conn: PostgresConnection, taskKey: TaskKey, expiredRequests: [String]) async throws {
        if let a = config.approvals, let expired = a.expired, !expiredRequests.isEmpty {
            let keyType = try await columnType(a.table, a.key, on: conn)
            try await conn.query(
                """
                UPDATE \(identifier: a.table) SET \(identifier: a.statusColumn) = \(expired)
                WHERE \(identifier: a.key) = ANY(\(PostgresArray.text(expiredRequests))::\(catalogType: keyType)[])
                  AND \(identifier: a.statusColumn) = \(a.pending)
                """)
        }
        try await conn.query("DELETE FROM bridge.run_states WHERE task_key = \(taskKey)")
    }

    // MARK: - The shell: list, approve, reject

    /// A pending request as `bridge approvals list` shows it.
    public struct Pending: Sendable {
        public var requestKey: String
        public var taskKey: TaskKey
        public var toolName: String
        public var arguments: String
        public var traceId: TraceID
        public var waitingSeconds: Double
        public var status: String
    }

    /// Requests bridge is waiting on (every status; the undecided first).
    public func list(on conn: PostgresConnection) async throws -> [Pending] {
        let a = try mapping()
        let keyType = try await columnType(a.table, a.key, on: conn)
        let rows = try await conn.query(
            """
            SELECT w.request_key, w.task_key, w.tool_name, w.arguments, s.trace_id,
                   extract(epoch FROM now() - w.created_at)::float8 AS waiting,
                   coalesce(r.\(identifier: a.statusColumn)::text, '(deleted)') AS status
            FROM bridge.approval_waits w JOIN bridge.run_states s ON s.task_key = w.task_key
            LEFT JOIN \(identifier: a.table) r ON r.\(identifier: a.key) = w.request_key::\(catalogType: keyType)
            ORDER BY (r.\(identifier: a.statusColumn) = \(a.pending)) DESC, w.created_at, w.request_key
            """)
        return try rows.from("bridge.approval_waits").map { r in
            Pending(
                requestKey: try r.decode(String.self, "request_key"), taskKey: try r.decode(TaskKey.self, "task_key"),
                toolName: try r.decode(String.self, "tool_name"), arguments: try r.decode(String.self, "arguments"),
                traceId: try r.decode(TraceID.self, "trace_id"), waitingSeconds: try r.decode(Double.self, "waiting"),
                status: try r.decode(String.self, "status"))
        }
    }

    /// What `decide` did.
    public enum Decision: Sendable, Equatable {
        /// Decided. `stillPending`: the task's other requests that are still undecided (the run
        /// resumes once they are decided too).
        case decided(taskKey: TaskKey, stillPending: [String])
        /// Still pending, but past its expiry: it counts as rejected and can no longer be decided.
        case expired
        /// Not a pending request of bridge's (decided already, or unknown).
        case notPending
    }

    /// Decides a pending request of bridge's: sets its status (and the response and responded-at
    /// columns when mapped) and wakes `--watch` workers. The statement itself requires the
    /// request to be pending, unexpired and one bridge waits on, so a request that expires
    /// meanwhile is never decided. `requestKey` is compared as the approvals key's type (an
    /// upper-case UUID finds its row); a key that is not of that type is an `ApprovalKeyError`.
    public func decide(
        on conn: PostgresConnection, requestKey: String, approve: Bool, message: String?,
        by: String
    ) async throws -> Decision {
        let a = try mapping()
        let keyType = try await columnType(a.table, a.key, on: conn)
        var sets: [PostgresQuery] = ["\(identifier: a.statusColumn) = \(approve ? a.approved : a.rejected)"]
        if let r = a.responseColumn {
            var response: [String: JSONValue] = [
                "decision": .string(approve ? "approved" : "rejected"), "by": .string(by),
            ]
            if let message { response["message"] = .string(message) }
            sets.append("\(identifier: r) = \(JSONValue.object(response).compact)")
        }
        if let c = a.respondedAtColumn { sets.append("\(identifier: c) = now()") }
        let key: PostgresQuery = "\(requestKey)::\(catalogType: keyType)"
        let unexpired: PostgresQuery =
            // Empty default: without an expiry column no request expires.
            a.expiresAtColumn.map { "AND (r.\(identifier: $0) IS NULL OR r.\(identifier: $0) > now())" } ?? ""
        let expired: PostgresQuery =
            a.expiresAtColumn.map { "coalesce(r.\(identifier: $0) <= now(), false)" } ?? "false"
        // The wait row holds the key as the column's own text form (lower-case for a uuid).
        let waited: PostgresQuery =
            "SELECT w.task_key FROM bridge.approval_waits w WHERE w.request_key = r.\(identifier: a.key)::text"
        let update: PostgresQuery = """
            UPDATE \(identifier: a.table) AS r SET \(sets)
            WHERE r.\(identifier: a.key) = \(key) AND r.\(identifier: a.statusColumn) = \(a.pending) \(unexpired)
              AND EXISTS (\(waited))
            RETURNING (\(waited)) AS task_key, r.\(identifier: a.key)::text AS k
            """
        let state: PostgresQuery = """
            SELECT r.\(identifier: a.statusColumn) = \(a.pending) AS pending, \(expired) AS expired
            FROM \(identifier: a.table) AS r WHERE r.\(identifier: a.key) = \(key) AND EXISTS (\(waited))
            """
        do {
            return try await conn.transaction { c in
                guard let row = try c.query(update).first, let task = try row.optional(TaskKey.self, "task_key"),
                    let decided = row["k"]
                else {
                    let found = try c.query(state).first
                    return found?["pending"] == "t" && found?["expired"] == "t" ? .expired : .notPending
                }
                let others = try c.query(
                    """
                    SELECT w.request_key FROM bridge.approval_waits w
                    JOIN \(identifier: a.table) r ON r.\(identifier: a.key) = w.request_key::\(catalogType: keyType)
                    WHERE w.task_key = \(task) AND w.request_key <> \(decided)
                      AND r.\(identifier: a.statusColumn) = \(a.pending) \(unexpired)
                    ORDER BY w.created_at, w.request_key
                    """
                ).compactMap { $0["request_key"] }
                try c.query("SELECT pg_notify(\(taskNotifyChannel), '')")
                return .decided(taskKey: task, stillPending: others)
            }
        } catch let e as PostgresError where e.code.map(SQLState.badValue.contains) == true {
            throw ApprovalKeyError(
                message: "'\(requestKey)' is not an approval request id: \(a.table).\(a.key) is \(keyType)"
                    + " (see `bridge approvals list`)")
        }
    }
}

/// A request id that is not even a value of the approvals table's key type (exit 2).
public struct ApprovalKeyError: InputError {
    public var message: String
}
