// Every statement the worker runs against the user's task and execution tables (claim,
// heartbeat, reaper, finish, drain check), so that `hotPathStatements` hands each one to the
// EXPLAIN test and no statement on those tables is written anywhere else.
import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeRunner
import BridgeTraceModel
import FoundationEssentials

/// A task row as JSON values keyed by column name (from `to_jsonb(row)`).
public typealias Row = [String: JSONValue]

/// The worker's SQL against the user's tables, driven by the mappings. Every value is bound;
/// table and column names come from the mappings and are quoted as identifiers.
public struct TaskStore: Sendable {
    public let config: MappingConfig

    public init(config: MappingConfig) { self.config = config }

    private var source: SourceMapping { config.source }
    private var t: PostgresQuery { .identifier(source.table) }
    private var types: ColumnTypes { config.columnTypes }
    /// `::type` for a value compared with the task table's `column` (see `ColumnTypes`).
    private func cast(_ column: String) -> PostgresQuery { types.cast(source.table, column) }
    private var keyCast: PostgresQuery { cast(source.key) }
    private var keyArrayCast: PostgresQuery { types.arrayCast(source.table, source.key) }

    /// ORDER BY for claiming over a handful of rows: priority (most urgent first), then age,
    /// then key. Only for rows already narrowed down (`--task` keys, or the candidates of
    /// `pendingInClaimOrder`): it compares the column, so it cannot use an index.
    private func claimOrder(alias a: String) -> PostgresQuery {
        var parts: [PostgresQuery] = []
        if let p = source.priority, !p.order.isEmpty {
            let cases = p.order.enumerated().map { i, value -> PostgresQuery in
                "WHEN \(value)\(cast(p.column)) THEN \(literal: i)"
            }
            parts.append(
                "CASE \(alias: a).\(identifier: p.column) \(cases, separator: " ") ELSE \(literal: p.order.count) END"
            )
        }
        if let c = source.createdAtColumn { parts.append("\(alias: a).\(identifier: c)") }
        parts.append("\(alias: a).\(identifier: source.key)")
        return PostgresQuery.joined(parts, separator: ", ")
    }

    /// The age-then-key order within one priority value, as the claim index stores it
    /// (`migrations/0011_claim_index.sql`).
    private var ageOrder: PostgresQuery {
        PostgresQuery.joined(
            ([source.createdAtColumn].compactMap { $0 } + [source.key]).map(PostgresQuery.identifier), separator: ", ")
    }

    /// The keys of up to `limit` claimable tasks (pending, backoff passed) in claim order,
    /// without sorting the pending rows: one LIMITed scan of the claim index per priority value,
    /// most urgent first, then one for values the list does not name (and NULL), chained with
    /// UNION ALL. The outer LIMIT stops as soon as enough keys came, so a busy high-priority
    /// queue never reads the lower ones (Append runs its branches in order; row locks keep
    /// the plan serial). With `lock`, each branch locks its rows FOR NO KEY UPDATE SKIP
    /// LOCKED. With `keys`, only those tasks are considered (found by primary key).
    func pendingInClaimOrder(limit: Int, lock: Bool, keys: [TaskKey], held: [String] = []) -> PostgresQuery {
        let status: PostgresQuery =
            "\(identifier: source.status.column) = \(source.status.pending)\(cast(source.status.column))"
        var runnable: PostgresQuery =
            "(\(identifier: Lease.runAfter) IS NULL OR \(identifier: Lease.runAfter) <= now())"
        // Groups whose budget is spent (`budgets`, on_exceeded: hold) are skipped.
        if let g = source.groupColumn, !held.isEmpty {
            runnable =
                "\(runnable) AND (\(identifier: g) IS NULL OR \(identifier: g) <> ALL(\(PostgresArray.text(held))\(types.arrayCast(source.table, g))))"
        }
        if let free = sessionFree { runnable = "\(runnable) AND \(free)" }
        let locking: PostgresQuery = lock ? " FOR NO KEY UPDATE SKIP LOCKED" : ""
        if !keys.isEmpty {
            return """
                SELECT c.\(identifier: source.key) AS k FROM \(t) AS c
                WHERE c.\(identifier: source.key) = ANY(\(keys)\(keyArrayCast)) AND c.\(status) AND \(runnable)
                ORDER BY \(claimOrder(alias: "c")) LIMIT \(limit)\(locking)
                """
        }
        if let g = config.limits?.fairnessGroup {
            return fairInClaimOrder(
                limit: limit, locking: locking, status: status, runnable: runnable, group: g, held: held)
        }
        return inClaimOrder(limit: limit, locking: locking, where: "\(status) AND \(runnable)")
    }

    /// The claim order's UNION ALL of one LIMITed index scan per priority value over the rows
    /// matching `condition` (see `pendingInClaimOrder`). `limit` may be an expression.
    private func inClaimOrder(
        limit: PostgresQuery, locking: PostgresQuery, where condition: PostgresQuery,
        name: String = "b"
    ) -> PostgresQuery {
        // Each branch is wrapped in its own subquery: a locking clause is not allowed directly
        // under UNION.
        var n = 0
        func branch(_ priority: PostgresQuery?) -> PostgresQuery {
            n += 1
            // Empty default: no priority, no extra condition.
            let also: PostgresQuery = priority.map { " AND \($0)" } ?? ""
            return """
                SELECT k FROM (SELECT \(identifier: source.key) AS k FROM \(t) AS c
                 WHERE \(condition)\(also)
                 ORDER BY \(ageOrder) LIMIT \(limit)\(locking)) AS \(alias: name + String(n))
                """
        }
        guard let p = source.priority, !p.order.isEmpty else { return branch(nil) }
        var branches = p.order.map { value in branch("\(identifier: p.column) = \(value)\(cast(p.column))") }
        let listed = PostgresArray.text(p.order)
        branches.append(
            branch(
                "(\(identifier: p.column) IS NULL OR \(identifier: p.column) <> ALL(\(listed)\(types.arrayCast(source.table, p.column))))"
            ))
        return "SELECT k FROM (\n\(branches, separator: "\nUNION ALL\n")\n) AS candidates LIMIT \(limit)"
    }

    private func inClaimOrder(limit: Int, locking: PostgresQuery, where condition: PostgresQuery) -> PostgresQuery {
        inClaimOrder(limit: "\(literal: limit)", locking: locking, where: condition)
    }

    /// Fair claims (`limits.fairness.group`): the groups that have pending tasks, found by a
    /// loose index scan (one probe of the fair claim index per group, never a scan of a
    /// backlog), taken in the order of their last claim (`bridge.fair_groups`, never claimed
    /// first), at most `limit` of them; from each, its most urgent tasks in the usual claim
    /// order, an equal share of `limit` each; then tasks without a group. The claim statement
    /// records the claimed groups' turn (`fairMark`).
    private func fairInClaimOrder(
        limit: Int, locking: PostgresQuery, status: PostgresQuery, runnable: PostgresQuery,
        group g: String, held: [String]
    ) -> PostgresQuery {
        let col = PostgresQuery.identifier(g)
        let notHeld: PostgresQuery =
            held.isEmpty
            ? ""
            : " AND grp.v <> ALL(\(PostgresArray.text(held))\(types.arrayCast(source.table, g)))"
        let share: PostgresQuery = "(SELECT ceil(\(limit)::float8 / greatest(count(*), 1))::int FROM chosen)"
        let perGroup = inClaimOrder(
            limit: share, locking: locking,
            where: "\(status) AND \(col) = chosen.v AND \(runnable)", name: "f")
        let ungrouped = inClaimOrder(
            limit: limit, locking: locking, where: "\(status) AND \(col) IS NULL AND \(runnable)")
        return """
            WITH RECURSIVE grp AS (
                (SELECT \(col) AS v FROM \(t) WHERE \(status) AND \(col) IS NOT NULL ORDER BY \(col) LIMIT 1)
                UNION ALL
                SELECT (SELECT \(col) FROM \(t) WHERE \(status) AND \(col) > grp.v ORDER BY \(col) LIMIT 1)
                FROM grp WHERE grp.v IS NOT NULL
            ), chosen AS MATERIALIZED (
                SELECT grp.v FROM grp LEFT JOIN bridge.fair_groups AS fg ON fg.group_key = grp.v::text
                WHERE grp.v IS NOT NULL\(notHeld)
                ORDER BY fg.last_claimed_at NULLS FIRST, grp.v LIMIT \(limit)
            )
            SELECT k FROM (
                SELECT p.k FROM chosen CROSS JOIN LATERAL (\(perGroup)) AS p
                UNION ALL
                SELECT k FROM (\(ungrouped)) AS u
            ) AS fair LIMIT \(limit)
            """
    }

    /// Sessions: a task is claimable only while no task of its session (`sessions.key`, the
    /// same SQL expression on both rows; an empty key is no session) holds a lease or waits
    /// for an approval. The leased rows are read through the partial lease index and the
    /// waiting ones from `bridge.run_states`, so the check costs as many rows as runs in
    /// flight, never a scan of the table. The candidate row is aliased `c`.
    private var sessionFree: PostgresQuery? {
        guard let s = config.sessions else { return nil }
        let mine = s.keyExpression(alias: "c")
        var free: PostgresQuery = """
            (\(mine) = '' OR (NOT EXISTS (SELECT 1 FROM \(t) AS r
                WHERE r.\(identifier: Lease.token) IS NOT NULL AND \(s.keyExpression(alias: "r")) = \(mine))
            """
        if config.approvals != nil {
            // bridge's text key cast to the key's type, so the task's primary key applies (a
            // configuration built in code, whose types are unknown, compares as text).
            let join: PostgresQuery =
                types.type(source.table, source.key) == nil
                ? "w.\(identifier: source.key)::text = ws.task_key"
                : "w.\(identifier: source.key) = ws.task_key\(keyCast)"
            free += """

                  AND NOT EXISTS (SELECT 1 FROM bridge.run_states AS ws JOIN \(t) AS w ON \(join)
                    WHERE w.\(identifier: ApprovalStore.waitingColumn) IS NOT NULL AND \(s.keyExpression(alias: "w")) = \(mine))
                """
        }
        return free + "))"
    }

    /// Statement 1 of a claim with sessions: the candidates in claim order (locked), at most
    /// one per session (the first in claim order), with their session keys ('' for none).
    func sessionPickQuery(limit: Int, keys: [TaskKey], held: [String]) -> PostgresQuery? {
        guard let s = config.sessions else { return nil }
        let candidates = pendingInClaimOrder(limit: limit, lock: true, keys: keys, held: held)
        return """
            WITH cand AS MATERIALIZED (
            \(candidates)
            ), firsts AS (
                SELECT DISTINCT ON (g.g) x.\(identifier: source.key)::text AS k, sk.sk
                FROM cand JOIN \(t) AS x ON x.\(identifier: source.key) = cand.k
                CROSS JOIN LATERAL (SELECT \(s.keyExpression(alias: "x")) AS sk) AS sk
                CROSS JOIN LATERAL (SELECT CASE WHEN sk.sk = '' THEN 't:' || x.\(identifier: source.key)::text ELSE 's:' || sk.sk END AS g) AS g
                ORDER BY g.g, \(claimOrder(alias: "x"))
            )
            SELECT k, sk FROM firsts
            """
    }

    /// Statement 2 of a claim with sessions: the picked tasks whose session's claim lock this
    /// transaction takes (`pg_try_advisory_xact_lock`, never waiting: a session another worker
    /// is claiming right now is skipped; the lock ends with the claim's transaction). The key
    /// is `AdvisoryLockKey(name: "bridge:session:<key>")`; tasks without a session need none.
    static func sessionLockQuery(_ picked: [(key: TaskKey, session: String)]) -> PostgresQuery {
        let keys = picked.map(\.key)
        let locks = PostgresArray.literal(
            picked.map { $0.session.isEmpty ? .null : .text(String(sessionLockKey($0.session).rawValue)) })
        return """
            SELECT u.k FROM unnest(\(keys)::text[], \(locks)::bigint[]) WITH ORDINALITY AS u(k, lk, o)
            WHERE u.lk IS NULL OR pg_try_advisory_xact_lock(u.lk) ORDER BY u.o
            """
    }

    /// The claim lock of session `key`.
    public static func sessionLockKey(_ key: String) -> AdvisoryLockKey {
        AdvisoryLockKey(name: "bridge:session:" + key)
    }

    /// The lease columns that `migrations/0007_task_leases.sql` adds to the task table.
    public enum Lease {
        public static let token = "bridge_lease_token"
        public static let expiresAt = "bridge_lease_expires_at"
        public static let workerId = "bridge_worker_id"
        public static let attempts = "bridge_attempts"
        public static let runAfter = "bridge_run_after"
        public static let all = [token, expiresAt, workerId, attempts, runAfter]
    }

    /// The keys (as text) of the tasks that hold a lease, expired or not until reaped: one text
    /// column, read through the partial lease index (`idx_tasks_bridge_lease_token`, migration
    /// 0008), so it returns as many rows as runs in flight however large the table.
    /// `bridge prune` keeps their traces.
    public var leasedKeysQuery: PostgresQuery {
        "SELECT x.\(identifier: source.key)::text FROM \(t) AS x WHERE x.\(identifier: Lease.token) IS NOT NULL"
    }

    /// One claimed task: its row, its key, the lease's fencing token and the attempt number.
    public struct Claim: Sendable {
        public var row: Row
        public var key: TaskKey
        public var token: LeaseToken
        public var attempt: Int
    }

    /// Claims up to `limit` pending tasks in one short autocommitted statement: a MATERIALIZED
    /// CTE picks rows with FOR NO KEY UPDATE SKIP LOCKED (so concurrent workers never claim the
    /// same task and the application's foreign-key checks are not blocked), and the UPDATE marks
    /// them running with a lease: a random token, an expiry `lease` from now (server
    /// clock), the worker id and the attempt count. Tasks waiting for a retry backoff
    /// (`bridge_run_after` in the future) are skipped. `keys` restricts the claim to those keys.
    public func claim(
        on conn: PostgresConnection, limit: Int, workerId: String, lease: Duration,
        keys: [TaskKey] = [], held: [String] = []
    ) async throws -> [Claim] {
        // Sessions: three statements in one transaction (pick, lock, claim). The claim's
        // snapshot is taken after the sessions' claim locks are held, so it sees every claim
        // another worker committed for those sessions, and re-checks that each is still free.
        if let pick = sessionPickQuery(limit: limit, keys: keys, held: held) {
            let store = self
            let rows = try await conn.transaction { c -> PostgresRows? in
                // A task outside every session has a NULL session key: "" says "no session".
                let candidates = try c.query(pick).map { r in
                    (key: try r.decode(TaskKey.self, "k"), session: try r.optional(String.self, "sk") ?? "")
                }
                guard !candidates.isEmpty else { return nil }
                // No candidate in a session: no lock to take (one round trip less).
                let picked =
                    candidates.allSatisfy { $0.session.isEmpty }
                    ? candidates.map(\.key)
                    : try c.query(Self.sessionLockQuery(candidates)).map { try $0.decode(TaskKey.self, "k") }
                guard !picked.isEmpty else { return nil }
                return try c.query(
                    store.claimQuery(
                        limit: picked.count, workerId: workerId, lease: lease, keys: picked,
                        held: held, marksFairTurns: true))
            }
            guard let rows else { return [] }
            return try Self.parseClaims(rows)
        }
        let rows = try await conn.query(
            claimQuery(
                limit: limit, workerId: workerId, lease: lease, keys: keys,
                held: held))
        return try Self.parseClaims(rows)
    }

    /// The groups whose budget is spent and held (`budgets` with `on_exceeded: hold`); empty
    /// without budgets.
    public func heldGroups(on conn: PostgresConnection) async throws -> [String] {
        guard let b = config.budgets, b.onExceeded == .hold, source.groupColumn != nil else { return [] }
        return try await conn.query(BudgetQueries.heldGroupsQuery(config, budget: b)).compactMap { $0["g"] }
    }

    /// The claim statement (public for the EXPLAIN tests).
    public func claimQuery(
        limit: Int, workerId: String, lease: Duration, keys: [TaskKey], held: [String] = [],
        marksFairTurns: Bool = false
    ) -> PostgresQuery {
        let picked = pendingInClaimOrder(limit: limit, lock: true, keys: keys, held: held)
        let update: PostgresQuery = """
            WITH picked AS MATERIALIZED (
            \(picked)
            )
            UPDATE \(t) AS x SET \(identifier: source.status.column) = \(source.status.running)\(cast(source.status.column)),
                \(identifier: Lease.token) = gen_random_uuid()::text,
                \(identifier: Lease.expiresAt) = now() + \(lease.inSeconds)::double precision * interval '1 second',
                \(identifier: Lease.workerId) = \(workerId),
                \(identifier: Lease.attempts) = coalesce(x.\(identifier: Lease.attempts), 0) + 1,
                \(identifier: Lease.runAfter) = NULL
            FROM picked WHERE x.\(identifier: source.key) = picked.k
            RETURNING to_jsonb(x.*)::text AS row, x.\(identifier: source.key)::text AS k, x.\(identifier: Lease.token) AS token,
                      x.\(identifier: Lease.attempts) AS attempt
            """
        guard let g = config.limits?.fairnessGroup, keys.isEmpty || marksFairTurns else { return update }
        // Fair claims record each claimed group's turn, in group order (no deadlock between
        // workers claiming the same groups).
        return """
            WITH claimed AS (
            \(update), x.\(identifier: g)::text AS fair_group
            ), marked AS (
                INSERT INTO bridge.fair_groups AS fg (group_key, last_claimed_at)
                SELECT DISTINCT fair_group, now() FROM claimed WHERE fair_group IS NOT NULL ORDER BY 1
                ON CONFLICT (group_key) DO UPDATE SET last_claimed_at = excluded.last_claimed_at
            )
            SELECT row, k, token, attempt FROM claimed
            """
    }

    /// Extends the leases of every task this worker still holds, in one statement, and
    /// returns the tokens that are still valid. A token missing from the answer is a lost
    /// lease (reaped, released or finished elsewhere): its run must stop.
    public func heartbeat(on conn: PostgresConnection, tokens: [LeaseToken], lease: Duration) async throws
        -> Set<LeaseToken>
    {
        guard !tokens.isEmpty else { return [] }
        let rows = try await conn.query(heartbeatQuery(tokens: tokens, lease: lease))
        return Set(rows.compactMap { $0["token"].map { LeaseToken($0) } })
    }

    func heartbeatQuery(tokens: [LeaseToken], lease: Duration) -> PostgresQuery {
        """
        UPDATE \(t) SET \(identifier: Lease.expiresAt) = now() + \(lease.inSeconds)::double precision * interval '1 second'
        WHERE \(identifier: Lease.token) = ANY(\(PostgresArray.text(tokens.map(\.text)))::text[]) AND \(identifier: source.status.column) = \(source.status.running)
        RETURNING \(identifier: Lease.token) AS token
        """
    }

    /// What one reaper pass did.
    public struct Reaped: Sendable, Equatable {
        public var requeued: Int
        public var failed: Int
    }

    /// Returns every task whose lease expired to pending, or marks it failed once it has had
    /// `maxAttempts` attempts, in one statement; the abandoned attempts' execution rows still
    /// marked started become failed_retriable. Any worker may run it, any number at once
    /// (SKIP LOCKED): a row a worker is writing right now is left for the next pass.
    public func reap(on conn: PostgresConnection, maxAttempts: Int) async throws -> Reaped {
        let row = try await conn.query(reapQuery(maxAttempts: maxAttempts)).first
        return Reaped(requeued: row?.int("requeued") ?? 0, failed: row?.int("failed") ?? 0)
    }

    func reapQuery(maxAttempts: Int) -> PostgresQuery {
        let st = source.status
        let r = config.results.resultColumn
        let resultSet: PostgresQuery = """
            , \(identifier: r) = CASE WHEN coalesce(x.\(identifier: Lease.attempts), 0) >= \(maxAttempts)::int
                THEN jsonb_build_object('error', 'lease expired on attempt ' || coalesce(x.\(identifier: Lease.attempts), 0) || ' (worker ' || coalesce(x.\(identifier: Lease.workerId), '?') || '); no attempts left', 'error_type', \(FailureType.leaseExpired.rawValue)::text)
                ELSE x.\(identifier: r) END
            """
        var executionsCTE: PostgresQuery = ""
        if let e = config.results.executions {
            let statusColumn = e.columns.status
            var sets: [PostgresQuery] = ["\(identifier: statusColumn) = \(e.statuses.failedRetriable)"]
            if let c = e.columns.errorType { sets.append("\(identifier: c) = \(FailureType.leaseExpired.rawValue)") }
            if let c = e.columns.errorMessage {
                sets.append("\(identifier: c) = 'the worker stopped renewing its lease'")
            }
            if let c = e.columns.completedAt { sets.append("\(identifier: c) = now()") }
            executionsCTE = """
                , abandoned AS (
                    UPDATE \(identifier: e.table) AS e SET \(sets)
                    WHERE e.\(identifier: e.taskColumn) = ANY(ARRAY(SELECT k FROM reaped)) AND e.\(identifier: statusColumn) = \(e.statuses.started)
                )
                """
        }
        return """
            WITH expired AS MATERIALIZED (
                SELECT \(identifier: source.key) AS k FROM \(t)
                WHERE \(identifier: Lease.token) IS NOT NULL AND \(identifier: Lease.expiresAt) < now()
                  AND \(identifier: source.status.column) = \(st.running)
                FOR NO KEY UPDATE SKIP LOCKED
            ), reaped AS (
                UPDATE \(t) AS x SET
                    \(identifier: source.status.column) = CASE WHEN coalesce(x.\(identifier: Lease.attempts), 0) >= \(maxAttempts)::int
                        THEN \(st.failed) ELSE \(st.pending) END,
                    \(identifier: Lease.token) = NULL, \(identifier: Lease.expiresAt) = NULL, \(identifier: Lease.workerId) = NULL,
                    \(identifier: Lease.runAfter) = NULL\(resultSet)
                FROM expired WHERE x.\(identifier: source.key) = expired.k
                RETURNING x.\(identifier: source.key) AS k, x.\(identifier: source.status.column)::text AS s
            )\(executionsCTE)
            SELECT count(*) FILTER (WHERE s = \(st.pending)) AS requeued, count(*) FILTER (WHERE s = \(st.failed)) AS failed FROM reaped
            """
    }

    /// Work that is not claimable right now but will be: retries waiting for their backoff
    /// (and when the first is due) and tasks leased by some worker (which may still come back
    /// to pending if that worker dies). A draining worker waits for both before it exits.
    public struct Outstanding: Sendable {
        public var waitingRetries: Int
        public var nextRetryIn: Double?
        public var leased: Int
        public var isEmpty: Bool { waitingRetries == 0 && leased == 0 }
    }

    public func outstanding(on conn: PostgresConnection, keys: [TaskKey] = []) async throws -> Outstanding {
        let row = try await conn.query(outstandingQuery(keys: keys)).first
        return Outstanding(
            waitingRetries: row?.int("waiting") ?? 0, nextRetryIn: row?.double("next_in"),
            leased: row?.int("leased") ?? 0)
    }

    /// Both arms of the WHERE match a small partial index (`bridge_run_after IS NOT NULL`,
    /// `bridge_lease_token IS NOT NULL`), so this reads only retries and leased tasks.
    func outstandingQuery(keys: [TaskKey]) -> PostgresQuery {
        let pending: PostgresQuery = "\(source.status.pending)\(cast(source.status.column))"
        let running: PostgresQuery = "\(source.status.running)\(cast(source.status.column))"
        let keyFilter: PostgresQuery =
            keys.isEmpty ? "" : " AND \(identifier: source.key) = ANY(\(keys)\(keyArrayCast))"
        return """
            SELECT count(*) FILTER (WHERE \(identifier: source.status.column) = \(pending) AND \(identifier: Lease.runAfter) > now()) AS waiting,
                   extract(epoch FROM min(\(identifier: Lease.runAfter) - now())
                       FILTER (WHERE \(identifier: source.status.column) = \(pending) AND \(identifier: Lease.runAfter) > now()))::float8 AS next_in,
                   count(*) FILTER (WHERE \(identifier: Lease.token) IS NOT NULL AND \(identifier: source.status.column) = \(running)) AS leased
            FROM \(t)
            WHERE ((\(identifier: Lease.runAfter) IS NOT NULL AND \(identifier: source.status.column) = \(pending)) OR \(identifier: Lease.token) IS NOT NULL)\(keyFilter)
            """
    }

    /// Whether the task table has the lease columns of `migrations/0007_task_leases.sql`.
    public func hasLeaseColumns(on conn: PostgresConnection) async throws -> Bool {
        let sql: PostgresQuery = """
            SELECT count(*) AS n FROM pg_attribute
            WHERE attrelid = to_regclass(\(t.sql)) AND attname = ANY(\(PostgresArray.text(Lease.all))::text[]) AND NOT attisdropped
            """
        return try await conn.query(sql).first?.int("n") == Lease.all.count
    }

    /// Whether the opt-in NOTIFY triggers (`migrations/optional/0010_task_notify.sql`) are
    /// installed on the task table.
    public func hasNotifyTrigger(on conn: PostgresConnection) async throws -> Bool {
        let sql: PostgresQuery = """
            SELECT count(*) AS n FROM pg_trigger
            WHERE tgrelid = to_regclass(\(t.sql)) AND tgname IN ('bridge_notify_insert', 'bridge_notify_update') AND tgenabled <> 'D'
            """
        return try await conn.query(sql).first?.int("n") ?? 0 > 0
    }

    /// Reads tasks without claiming them (for --dry-run): the given keys, or the pending ones.
    public func peek(on conn: PostgresConnection, keys: [TaskKey], limit: Int) async throws -> [Row] {
        let sql: PostgresQuery
        if keys.isEmpty {
            let candidates = pendingInClaimOrder(limit: limit, lock: false, keys: [])
            sql = """
                SELECT to_jsonb(x.*)::text AS row FROM (\(candidates)) AS c JOIN \(t) AS x ON x.\(identifier: source.key) = c.k
                ORDER BY \(claimOrder(alias: "x"))
                """
        } else {
            sql = """
                SELECT to_jsonb(x.*)::text AS row FROM \(t) AS x
                WHERE x.\(identifier: source.key) = ANY(\(keys)\(keyArrayCast))
                ORDER BY x.\(identifier: source.key)
                """
        }
        let rows = try await conn.query(sql)
        return try Self.parseRows(rows)
    }

    /// The number of earlier attempts (execution rows) for a task.
    public func previousAttempts(on conn: PostgresConnection, taskKey: TaskKey) async throws -> Int {
        guard let sql = previousAttemptsQuery(taskKey: taskKey) else { return 0 }
        return try await conn.query(sql).first?.int("n") ?? 0
    }

    func previousAttemptsQuery(taskKey: TaskKey) -> PostgresQuery? {
        guard let e = config.results.executions else { return nil }
        return """
            SELECT count(*) AS n FROM \(identifier: e.table)
            WHERE \(identifier: e.taskColumn) = \(taskKey)\(types.cast(e.table, e.taskColumn))
            """
    }

    /// The lease behind `token` is gone: the task was reaped, released or finished elsewhere.
    public struct LeaseLost: Error, CustomStringConvertible {
        public var taskKey: TaskKey
        public var description: String { "the lease on task \(taskKey) was lost" }
    }

    /// Inserts the attempt's execution row with the `started` status and returns its key, in a
    /// short transaction that first checks (and share-locks) the task's lease: a worker whose
    /// lease is gone gets `LeaseLost` and writes nothing. `token` nil (a re-run of a finished
    /// task, which holds no lease) inserts without the check.
    public func startExecution(
        on conn: PostgresConnection, task: Row, token: LeaseToken?, traceId: TraceID, agentId: String?,
        attempt: Int, startedAt: Date
    ) async throws -> String? {
        let key = source.taskKey(of: task) ?? ""
        let check: PostgresQuery? = token.map(leaseCheck)
        guard let e = config.results.executions,
            let row = executionRow(
                task: task, traceId: traceId, agentId: agentId, attempt: attempt, startedAt: startedAt)
        else {
            if let check, try await conn.query(check).count != 1 { throw LeaseLost(taskKey: key) }
            return nil
        }
        let sql: PostgresQuery = """
            INSERT INTO \(identifier: e.table) (\(row.columns)) VALUES (\(row.values)) RETURNING \(identifier: e.key)::text AS k
            """
        guard let check else { return try await conn.query(sql).first?["k"] }
        return try await Self.insertLeased(conn, check: check, insert: sql, taskKey: key)
    }

    /// The attempt's execution row with the `started` status: its columns, its values, and the
    /// values each cast to its column's type (nil when a column's type is unknown), for an
    /// `INSERT … SELECT` that PostgreSQL cannot type from the target columns. Nil without an
    /// executions table.
    func executionRow(task: Row, traceId: TraceID, agentId: String?, attempt: Int, startedAt: Date)
        -> (columns: [PostgresQuery], values: [PostgresQuery], typed: [PostgresQuery]?)?
    {
        guard let e = config.results.executions else { return nil }
        var cols: [PostgresQuery] = []
        var vals: [PostgresQuery] = []
        var typed: [PostgresQuery]? = []
        func add(_ col: String?, _ v: PostgresValue) {
            guard let col else { return }
            cols.append(.identifier(col))
            vals.append("\(v)")
            if let type = types.type(e.table, col) {
                typed?.append("\(v)\(PostgresQuery(unsafeSQL: "::" + type))")
            } else {
                typed = nil
            }
        }
        add(e.taskColumn, (source.taskKey(of: task) ?? "").postgresValue)
        add(e.columns.status, .text(e.statuses.started))
        add(e.columns.traceId, traceId.postgresValue)
        add(e.columns.startedAt, .text(PostgresTimestamp.format(startedAt)))
        add(e.columns.agentId, agentId.map { .text($0) } ?? .null)
        if let g = source.groupColumn {
            add(e.columns.workspaceId, task[g].map { $0.isNull ? .null : .text($0.templateText) } ?? .null)
        }
        add(e.columns.retryCount, .text(String(attempt - 1)))
        return (cols, vals, typed)
    }

    /// Share-locks the task row while its lease `token` holds (the guard of every write of a run).
    func leaseCheck(_ token: LeaseToken) -> PostgresQuery {
        """
        SELECT 1 AS ok FROM \(t) WHERE \(identifier: Lease.token) = \(token) AND \(identifier: source.status.column) = \(source.status.running) FOR SHARE
        """
    }

    static func insertLeased(
        _ conn: PostgresConnection, check: PostgresQuery, insert: PostgresQuery,
        taskKey: TaskKey
    ) async throws -> String? {
        do {
            return try await conn.transaction { c in
                guard try c.query(check).count == 1 else { throw LeaseLost(taskKey: taskKey) }
                return try c.query(insert).first?["k"]
            }
        }
    }

    /// What one attempt writes on its execution row (a re-run writes only this).
    public struct ExecutionOutcome: Sendable {
        public var status: ExecutionStatus
        public var result: JSONValue
        public var tokenUsage: JSONValue
        public var errorMessage: String?
        public var errorType: FailureType?
        public var completedAt: Date
        public var durationSeconds: Double
        // Built only inside BridgeWorker (an attempt's end, a re-run): the memberwise init serves.
    }

    /// The outcome of one attempt, written atomically with the task's new state.
    public struct Outcome: Sendable {
        /// The execution row's part.
        public var execution: ExecutionOutcome
        /// The task's next status: completed, failed, or pending for a retry.
        public var taskStatus: TaskStatus
        /// For a retry: how long the task waits before it can be claimed again (backoff).
        public var retryAfterSeconds: Double?
        /// Task columns written with a completed result (a structured output's mapped fields).
        public var columns: [String: JSONValue] = [:]
        /// A release at shutdown hands the attempt back (`bridge_attempts` - 1): a durable run
        /// loses nothing by it, and deploys must not use up `--max-attempts` (crashes do). So
        /// does a group's budget on hold.
        public var refundsAttempt = false

        public init(
            status: ExecutionStatus, taskStatus: TaskStatus, result: JSONValue, tokenUsage: JSONValue,
            errorMessage: String?, errorType: FailureType?, completedAt: Date, durationSeconds: Double,
            retryAfterSeconds: Double? = nil
        ) {
            self.execution = ExecutionOutcome(
                status: status, result: result, tokenUsage: tokenUsage,
                errorMessage: errorMessage, errorType: errorType,
                completedAt: completedAt, durationSeconds: durationSeconds)
            self.taskStatus = taskStatus
            self.retryAfterSeconds = retryAfterSeconds
        }
    }

    /// Thrown inside `finish` when the lease is gone (the transaction rolls back).
    public struct StaleTask: Error {}

    /// Writes the task's final status, result and trace id together with its execution row, in
    /// one transaction, and ends the lease. The task update is guarded on the lease token (and
    /// the task still being `running`), so a stale worker's late result never overwrites a
    /// newer one: then nothing is written and the result is false. A retry (`taskStatus` =
    /// pending) leaves result and trace id alone and sets the backoff (`bridge_run_after`).
    /// `also`: statements that commit with the outcome, only if the lease held (a durable run's
    /// last spans and the end of its journal).
    public func finish(
        on conn: PostgresConnection, taskKey: TaskKey, token: LeaseToken, executionKey: String?, traceId: TraceID?,
        outcome: Outcome, also: [PostgresQuery] = []
    ) async throws -> Bool {
        let config = self.config
        let update = finishUpdate(taskKey: taskKey, token: token, traceId: traceId, outcome: outcome)
        do {
            return try await conn.transaction { c in
                guard try c.query(update).affectedRows == 1 else { throw StaleTask() }
                if let executionKey,
                    let finish = TaskStore.executionUpdate(
                        config, executionKey: executionKey, outcome: outcome.execution)
                {
                    try c.query(finish)
                }
                for statement in also { try c.query(statement) }
                return true
            }
        } catch is StaleTask {
            return false
        }
    }

    /// The guarded UPDATE of `finish` on the task row.
    func finishUpdate(taskKey: TaskKey, token: LeaseToken, traceId: TraceID?, outcome: Outcome) -> PostgresQuery {
        let s = config.source
        var sets: [PostgresQuery] = [
            "\(identifier: s.status.column) = \(outcome.taskStatus.text(in: s.status))\(cast(s.status.column))"
        ]
        func add(_ col: String?, _ v: PostgresValue, cast: PostgresQuery = "") {
            guard let col else { return }
            sets.append("\(identifier: col) = \(v)\(cast)")
        }
        if outcome.taskStatus != .pending {
            add(config.results.resultColumn, .text(outcome.execution.result.compact), cast: "::jsonb")
            add(
                config.results.completedAtColumn, .text(PostgresTimestamp.format(outcome.execution.completedAt)),
                cast: "::timestamptz")
            if let traceId { add(config.results.traceIdColumn, traceId.postgresValue) }
            for (column, value) in outcome.columns.sorted(by: { $0.key < $1.key }) {
                add(column, SQLToolSpec.bindValue(value))
            }
        }
        let lease = TaskStore.Lease.self
        sets.append("\(identifier: lease.token) = NULL")
        sets.append("\(identifier: lease.expiresAt) = NULL")
        sets.append("\(identifier: lease.workerId) = NULL")
        if outcome.taskStatus == .pending && outcome.refundsAttempt {
            sets.append("\(identifier: lease.attempts) = greatest(coalesce(\(identifier: lease.attempts), 1) - 1, 0)")
        }
        if outcome.taskStatus == .pending, let wait = outcome.retryAfterSeconds, wait > 0 {
            sets.append("\(identifier: lease.runAfter) = now() + \(wait)::double precision * interval '1 second'")
        }
        return """
            UPDATE \(t) SET \(sets)
            WHERE \(identifier: lease.token) = \(token)
              AND \(identifier: s.key) = \(taskKey)\(keyCast)
              AND \(identifier: s.status.column) = \(s.status.running)\(cast(s.status.column))
            """
    }

    /// The UPDATE that writes an attempt's outcome onto its execution row (status, timings,
    /// usage, result, error), or nil when the mappings have no executions table.
    static func executionUpdate(_ config: MappingConfig, executionKey: String, outcome: ExecutionOutcome)
        -> PostgresQuery?
    {
        guard let e = config.results.executions else { return nil }
        var sets: [PostgresQuery] = []
        func add(_ col: String?, _ v: PostgresValue, cast: PostgresQuery = "") {
            guard let col else { return }
            sets.append("\(identifier: col) = \(v)\(cast)")
        }
        add(e.columns.status, .text(outcome.status.text(in: e.statuses)))
        add(e.columns.completedAt, .text(PostgresTimestamp.format(outcome.completedAt)), cast: "::timestamptz")
        add(e.columns.durationSeconds, .text(String(outcome.durationSeconds)), cast: "::double precision")
        add(e.columns.tokenUsage, .text(outcome.tokenUsage.compact), cast: "::jsonb")
        add(e.columns.result, .text(outcome.result.compact), cast: "::jsonb")
        add(e.columns.errorMessage, outcome.errorMessage.map { .text($0) } ?? .null)
        add(e.columns.errorType, outcome.errorType.map { .text($0.rawValue) } ?? .null)
        return """
            UPDATE \(identifier: e.table) SET \(sets)
            WHERE \(identifier: e.key) = \(executionKey)\(config.columnTypes.cast(e.table, e.key))
            """
    }

    /// Every statement the worker runs per task or per poll against the task and execution
    /// tables, with sample binds (`key`, `executionKey`: an existing task and execution row), so
    /// a test can EXPLAIN each one on a large table and prove that none scans it.
    public func hotPathStatements(key: TaskKey, executionKey: String) -> [(name: String, query: PostgresQuery)] {
        let outcome = Outcome(
            status: .completed, taskStatus: .completed, result: ["output": "x"],
            tokenUsage: [:], errorMessage: nil, errorType: nil, completedAt: Date(), durationSeconds: 1)
        var out: [(String, PostgresQuery)] = [
            ("claim", claimQuery(limit: 16, workerId: "w", lease: .seconds(60), keys: [])),
            ("claim --task", claimQuery(limit: 16, workerId: "w", lease: .seconds(60), keys: [key])),
            ("heartbeat", heartbeatQuery(tokens: ["t1", "t2"], lease: .seconds(60))),
            ("lease check", leaseCheck("t1")),
            ("finish", finishUpdate(taskKey: key, token: "t1", traceId: "trace_x", outcome: outcome)),
            ("reaper", reapQuery(maxAttempts: 3)),
            ("drain check", outstandingQuery(keys: [])),
            ("drain check --task", outstandingQuery(keys: [key])),
        ]
        if let pick = sessionPickQuery(limit: 16, keys: [], held: []) {
            out.append(("session claim pick", pick))
            out.append(("session claim pick --task", sessionPickQuery(limit: 16, keys: [key], held: []) ?? pick))
        }
        if let q = previousAttemptsQuery(taskKey: key) { out.append(("previous attempts", q)) }
        if let q = TaskStore.executionUpdate(config, executionKey: executionKey, outcome: outcome.execution) {
            out.append(("execution finish", q))
        }
        return out
    }

    // Parsing is kept out of the async functions above: a throwing closure right after a
    // typed-throws await crashes the Swift 6.3 optimizer (coroutine splitting) in release builds.
    static func parseRows(_ rows: PostgresRows) throws -> [Row] {
        var out: [Row] = []
        out.reserveCapacity(rows.count)
        for r in rows { out.append(try parseRow(r["row"])) }
        return out
    }

    static func parseClaims(_ rows: PostgresRows) throws -> [Claim] {
        var out: [Claim] = []
        out.reserveCapacity(rows.count)
        for r in rows {
            out.append(
                Claim(
                    row: try parseRow(r["row"]), key: try r.decode(TaskKey.self, "k"),
                    token: try r.decode(LeaseToken.self, "token"), attempt: try r.decode(Int.self, "attempt")))
        }
        return out
    }

    static func parseRow(_ text: String?) throws -> Row {
        guard let text, case .object(let o) = try JSONValue.parse(text) else {
            throw PostgresError(kind: .client, message: "expected a JSON row, got \(text ?? "NULL")")
        }
        return o
    }
}
