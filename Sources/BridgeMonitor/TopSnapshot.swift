import BridgeCore
import BridgeMapping
import BridgePostgres
import FoundationEssentials

/// What `bridge top` shows: one reading of the database, for all workers together.
public struct TopSnapshot: Sendable {
    /// The database's clock when read.
    public var at: Date
    /// The window of the rates (tool, model and task counts are for the last `window` seconds).
    public var window: Double
    public var tasks: Tasks
    public var tools: [Tool]
    public var models: [Model]
    public var exporters: [Exporter]
    public var workers: [Worker]

    public struct Tasks: Sendable {
        /// Pending and claimable now.
        public var pending: Int
        /// Pending, but waiting for a retry backoff (`bridge_run_after` in the future).
        public var waitingRetry: Int
        /// Claimed under a lease.
        public var running: Int
        /// Leases past their expiry, not yet reaped.
        public var expiredLeases: Int
        /// Paused runs waiting for a human approval (nil: approvals are not migrated, 0020).
        public var waitingApproval: Int?
        /// Runs whose trace ended in the window, without / with an error.
        public var completedInWindow: Int
        public var failedInWindow: Int
        /// Counts stop at this (shown as `cap+`): counting a million pending rows is not free.
        public var cap: Int
    }

    public struct Tool: Sendable {
        public var name: String
        public var calls: Int
        public var errors: Int
        public var p50: Double?
        public var p95: Double?
    }

    public struct Model: Sendable {
        public var model: String
        public var calls: Int
        public var errors: Int
        public var inputTokens: Int
        public var outputTokens: Int
        public var p50: Double?
        /// USD of the window's priced calls (`cost_usd` on the spans; nil: none priced).
        public var costUSD: Double? = nil
    }

    public struct Exporter: Sendable {
        public var name: String
        public var lastSeen: Date?
        /// Ended spans of the lag window (`lagWindow` seconds) with no delivery row.
        public var undelivered: Int
        /// Age of the oldest of those (nil: none).
        public var oldestUndeliveredAge: Double?
        /// p95 of delivered_at − created_at over the spans of the rate window.
        public var p95Lag: Double?
        public var lagWindow: Double
        /// Spans of the rate window recorded delivered / rejected.
        public var delivered = 0
        public var rejected = 0
        /// Every span of the rate window that got an answer was rejected: nothing arrives.
        public var allRejected: Bool { rejected > 0 && delivered == 0 }
    }

    public struct Worker: Sendable {
        public var id: String
        public var leases: Int
        public var alive: Bool
    }
}

/// The statements behind `bridge top`. Each reads a bounded, index-served range: the task
/// table through its status index and the partial lease-token index (counts stop at `cap`),
/// the ledger through `idx_spans_created_at` for the last `window` seconds, deliveries by
/// their primary key. No statement's cost grows with the ledger or the finished tasks.
public struct TopQueries: Sendable {
    public let config: MappingConfig
    public var window: Double = 60
    public var lagWindow: Double = 600
    public var cap: Int = 100_000

    public init(config: MappingConfig) { self.config = config }

    var t: PostgresQuery { .identifier(config.source.table) }

    public var tasksQuery: PostgresQuery {
        let status = PostgresQuery.identifier(config.source.status.column)
        let runAfter = PostgresQuery.identifier("bridge_run_after")
        let token = PostgresQuery.identifier("bridge_lease_token")
        let expires = PostgresQuery.identifier("bridge_lease_expires_at")
        let pending = config.source.status.pending
        return """
            SELECT
              (SELECT count(*) FROM (SELECT 1 FROM \(t) WHERE \(status) = \(pending) AND (\(runAfter) IS NULL OR \(runAfter) <= now()) LIMIT \(cap)) x) AS pending,
              (SELECT count(*) FROM (SELECT 1 FROM \(t) WHERE \(status) = \(pending) AND \(runAfter) > now() LIMIT \(cap)) x) AS retry,
              (SELECT count(*) FROM (SELECT 1 FROM \(t) WHERE \(token) IS NOT NULL LIMIT \(cap)) x) AS running,
              (SELECT count(*) FROM (SELECT 1 FROM \(t) WHERE \(token) IS NOT NULL AND \(expires) < now() LIMIT \(cap)) x) AS expired
            """
    }

    public var workersQuery: PostgresQuery {
        let token = PostgresQuery.identifier("bridge_lease_token")
        let expires = PostgresQuery.identifier("bridge_lease_expires_at")
        let worker = PostgresQuery.identifier("bridge_worker_id")
        return """
            SELECT \(worker) AS worker, count(*) AS leases, bool_or(\(expires) > now()) AS alive
            FROM \(t) WHERE \(token) IS NOT NULL
            GROUP BY 1 ORDER BY 1 LIMIT 50
            """
    }

    /// Function spans of the window by tool.
    public var toolsQuery: PostgresQuery {
        """
        SELECT span_data->>'name' AS tool, count(*) AS calls, count(*) FILTER (WHERE error IS NOT NULL) AS errors,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ended_at - started_at)) AS p50,
               percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM ended_at - started_at)) AS p95
        FROM bridge.spans
        WHERE created_at >= now() - \(window)::double precision * interval '1 second' AND span_data->>'type' = 'function'
        GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 30
        """
    }

    /// Model call spans of the window by model (`response` spans carry no model name).
    public var modelsQuery: PostgresQuery {
        """
        SELECT coalesce(span_data->>'model', '(responses)') AS model, count(*) AS calls,
               count(*) FILTER (WHERE error IS NOT NULL) AS errors,
               coalesce(sum((span_data->'usage'->>'input_tokens')::bigint), 0) AS input,
               coalesce(sum((span_data->'usage'->>'output_tokens')::bigint), 0) AS output,
               sum((span_data->>'cost_usd')::numeric)::float8 AS usd,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM ended_at - started_at)) AS p50
        FROM bridge.spans
        WHERE created_at >= now() - \(window)::double precision * interval '1 second'
          AND span_data->>'type' IN ('generation', 'response')
        GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 30
        """
    }

    /// Root (task) spans of the window: a run's root span is written when it ends.
    public var finishedQuery: PostgresQuery {
        """
        SELECT count(*) FILTER (WHERE error IS NULL) AS ok, count(*) FILTER (WHERE error IS NOT NULL) AS failed
        FROM bridge.spans
        WHERE created_at >= now() - \(window)::double precision * interval '1 second' AND parent_id IS NULL
        """
    }

    /// Per exporter: undelivered spans of the lag window, the oldest one's age, and the p95
    /// delivery lag of the rate window.
    public var exportersQuery: PostgresQuery {
        """
        SELECT e.name, e.last_seen_at,
               u.n AS undelivered, u.oldest AS oldest,
               (SELECT percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM d.delivered_at - s.created_at))
                FROM bridge.spans s JOIN bridge.span_deliveries d ON d.exporter = e.name AND d.span_id = s.span_id
                WHERE s.created_at >= now() - \(window)::double precision * interval '1 second') AS p95_lag,
               r.delivered, r.rejected
        FROM bridge.exporters e
        CROSS JOIN LATERAL (
            SELECT count(*) FILTER (WHERE d.status = 'delivered') AS delivered, count(*) FILTER (WHERE d.status = 'rejected') AS rejected
            FROM bridge.spans s JOIN bridge.span_deliveries d ON d.exporter = e.name AND d.span_id = s.span_id
            WHERE s.created_at >= now() - \(window)::double precision * interval '1 second'
        ) r
        CROSS JOIN LATERAL (
            SELECT count(*) AS n, extract(epoch FROM now() - min(s.created_at)) AS oldest
            FROM bridge.spans s
            WHERE s.created_at >= now() - \(lagWindow)::double precision * interval '1 second' AND s.ended_at IS NOT NULL
              AND NOT EXISTS (SELECT 1 FROM bridge.span_deliveries d WHERE d.exporter = e.name AND d.span_id = s.span_id)
        ) u
        ORDER BY e.name LIMIT 20
        """
    }

    /// Paused runs waiting for an approval: one `bridge.run_states` row each (its primary key).
    public var approvalsQuery: PostgresQuery {
        "SELECT count(*) AS n FROM (SELECT 1 FROM bridge.run_states LIMIT \(cap)) x"
    }

    /// Every statement, for EXPLAIN in tests.
    public var all: [PostgresQuery] {
        [tasksQuery, workersQuery, toolsQuery, modelsQuery, finishedQuery, exportersQuery, approvalsQuery]
    }

    /// Reads one snapshot in a READ ONLY transaction (one consistent view, nothing written).
    public func read(on c: PostgresConnection) async throws -> TopSnapshot {
        try await c.simpleQuery("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        do {
            let s = try await readInTransaction(c)
            try await c.simpleQuery("ROLLBACK")
            return s
        } catch {
            _ = try? await c.simpleQuery("ROLLBACK")
            throw error
        }
    }

    func readInTransaction(_ c: PostgresConnection) async throws -> TopSnapshot {
        let now = try await c.simpleQuery("SELECT now() AS now").one().decode(Date.self, "now")
        let tr = try await c.query(tasksQuery).one()
        let fr = try await c.query(finishedQuery).one()
        let approvals = try await c.ledgerHas([.runStates])
        let waiting = approvals ? try await c.query(approvalsQuery).one().decode(Int.self, "n") : nil
        let tasks = TopSnapshot.Tasks(
            pending: try tr.decode(Int.self, "pending"), waitingRetry: try tr.decode(Int.self, "retry"),
            running: try tr.decode(Int.self, "running"), expiredLeases: try tr.decode(Int.self, "expired"),
            waitingApproval: waiting, completedInWindow: try fr.decode(Int.self, "ok"),
            failedInWindow: try fr.decode(Int.self, "failed"), cap: cap)
        // NULL where the data has no value: a function span without a name ("?"), a lease
        // without a worker id ("?") or an expiry (not alive), percentiles and cost of spans
        // without times or prices.
        let tools = try await c.query(toolsQuery).map {
            TopSnapshot.Tool(
                name: try $0.optional(String.self, "tool") ?? "?", calls: try $0.decode(Int.self, "calls"),
                errors: try $0.decode(Int.self, "errors"), p50: try $0.optional(Double.self, "p50"),
                p95: try $0.optional(Double.self, "p95"))
        }
        let models = try await c.query(modelsQuery).map {
            TopSnapshot.Model(
                model: try $0.decode(String.self, "model"), calls: try $0.decode(Int.self, "calls"),
                errors: try $0.decode(Int.self, "errors"), inputTokens: try $0.decode(Int.self, "input"),
                outputTokens: try $0.decode(Int.self, "output"), p50: try $0.optional(Double.self, "p50"),
                costUSD: try $0.optional(Double.self, "usd"))
        }
        let exporters = try await c.query(exportersQuery).map {
            TopSnapshot.Exporter(
                name: try $0.decode(String.self, "name"), lastSeen: try $0.optional(Date.self, "last_seen_at"),
                undelivered: try $0.decode(Int.self, "undelivered"),
                oldestUndeliveredAge: try $0.optional(Double.self, "oldest"),
                p95Lag: try $0.optional(Double.self, "p95_lag"), lagWindow: lagWindow,
                delivered: try $0.decode(Int.self, "delivered"), rejected: try $0.decode(Int.self, "rejected"))
        }
        let workers = try await c.query(workersQuery).map {
            TopSnapshot.Worker(
                id: try $0.optional(String.self, "worker") ?? "?", leases: try $0.decode(Int.self, "leases"),
                alive: try $0.optional(Bool.self, "alive") ?? false)
        }
        return TopSnapshot(
            at: now, window: window, tasks: tasks, tools: tools, models: models, exporters: exporters,
            workers: workers)
    }
}
