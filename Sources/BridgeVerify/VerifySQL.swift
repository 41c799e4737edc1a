// The SQL of the verify checks, one computed statement each; they share the scope CTE and the
// examples tail.
import BridgeCore
import BridgeMapping
import BridgePostgres
import BridgeTraceModel
import FoundationEssentials

/// The checks' SQL, built from the mappings' table and column names (quoted identifiers) and
/// the scope's values (bound where they are used: `since`, `task`, `workspace`, the number of
/// `examples`, the export lag limit). Statements that report counts with examples return one
/// row per example, or a single row with NULL example columns, each carrying `checked` and
/// `failed`.
struct VerifySQL: Sendable {
    let config: MappingConfig
    /// Traces started at or after this time (ISO 8601), or nil.
    var since: String?
    var task: TaskKey?
    var workspace: String?
    var examples: Int = 5
    /// `--max-export-lag` in seconds.
    var maxExportLag: Double = 0

    init(config: MappingConfig) { self.config = config }

    /// `column = text` for column `table.column`, with the text converted to the column's type
    /// (from `config.columnTypes`) on the value side, so the column's index serves it. Text
    /// that cannot be such a value (a malformed id) matches nothing instead of failing the
    /// statement. Unknown types fall back to comparing the column's text (no index).
    func equals(_ table: String, _ column: String, alias: String, text: PostgresQuery) -> PostgresQuery {
        let col: PostgresQuery = "\(alias: alias).\(identifier: column)"
        guard let type = config.columnTypes.type(table, column) else { return "\(col)::text = \(text)" }
        switch type {
        case "text", "character varying", "name": return "\(col) = \(text)"
        case "uuid":
            return
                "\(col) = CASE WHEN \(text) ~* '^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$' THEN (\(text))::uuid END"
        case "bigint", "integer", "smallint":
            let digits = ["bigint": 18, "integer": 9, "smallint": 4][type] ?? 4
            return
                "\(col) = CASE WHEN \(text) ~ '^-?[0-9]{1,\(literal: digits)}$' THEN (\(text))::\(catalogType: type) END"
        default:
            if type.hasPrefix("character varying") || type.hasPrefix("character(") { return "\(col) = \(text)" }
            return "\(col)::text = \(text)"
        }
    }

    /// `column >= since` for an execution time column, the value cast to the column's type so
    /// its index serves it.
    func atLeastSince(_ table: String, _ column: String, alias: String) -> PostgresQuery {
        let type = config.columnTypes.type(table, column) ?? "timestamptz"
        let cast =
            ["timestamp with time zone", "timestamp without time zone", "date"].contains(type) ? type : "timestamptz"
        return "\(alias: alias).\(identifier: column) >= \(since)::timestamptz::\(catalogType: cast)"
    }

    /// `st`: the traces in scope (ended, started since `since`, of `task` and `workspace`). Each
    /// filter is index-served (`bridge.traces` by started_at, task_id and group_id, migrations
    /// 0001 and 0014; a NULL parameter folds its condition away), so the checks read the
    /// window's traces and, through `idx_spans_trace_id`, only their spans.
    var scopedTraces: PostgresQuery {
        """
        st AS MATERIALIZED (
            SELECT tr.trace_id, coalesce(tr.task_id, tr.metadata->>'task_id') AS task_id
            FROM bridge.traces tr
            WHERE tr.ended_at IS NOT NULL
              AND (\(since)::timestamptz IS NULL OR tr.started_at >= \(since)::timestamptz)
              AND (\(task)::text IS NULL OR tr.task_id = \(task)::text OR (tr.task_id IS NULL AND tr.metadata->>'task_id' = \(task)::text))
              AND (\(workspace)::text IS NULL OR tr.group_id = \(workspace)::text OR (tr.group_id IS NULL AND tr.metadata->>'workspace_id' = \(workspace)::text))
        )
        """
    }

    /// The common tail: `items` counted into `agg`, and up to `examples` rows of `bad` as examples.
    func tail(checked: PostgresQuery, failed: PostgresQuery, order: PostgresQuery = "trace_id, message")
        -> PostgresQuery
    {
        """
        agg AS (SELECT (\(checked))::bigint AS checked, (\(failed))::bigint AS failed)
        SELECT agg.*, ex.task_id, ex.trace_id, ex.message
        FROM agg LEFT JOIN LATERAL (SELECT task_id, trace_id, message FROM bad ORDER BY \(order) LIMIT \(examples)::int) ex ON true
        """
    }

    /// Safe element iteration of a transcript (a non-array `items` counts as empty).
    static let transcriptItems: PostgresQuery =
        "jsonb_array_elements(CASE WHEN jsonb_typeof(rt.items) = 'array' THEN rt.items ELSE '[]'::jsonb END)"

    // MARK: guardrails_approvals_traced

    /// Every guardrail that ran (a `guardrail_result` transcript item) has a `guardrail` span
    /// with its name in the trace (counted per name); every decision a run resumed after (an
    /// `approval_result` item) has its `approval` span; and a resumed run is one trace: exactly
    /// one task span and no span whose parent is missing from the trace.
    var guardrailsApprovalsTraced: PostgresQuery {
        """
        WITH \(scopedTraces),
        marks AS MATERIALIZED (
            SELECT st.trace_id, st.task_id, it->>'type' AS type, coalesce(it->>'name', '') AS name,
                   coalesce(it->>'call_id', '') AS call_id
            FROM st JOIN bridge.run_transcripts rt ON rt.trace_id = st.trace_id
            CROSS JOIN LATERAL \(Self.transcriptItems) AS it
            WHERE it->>'type' IN ('guardrail_result', 'approval_result')
        ),
        ran AS (
            SELECT trace_id, task_id, name, count(*) AS n FROM marks WHERE type = 'guardrail_result' GROUP BY 1, 2, 3
        ),
        gspans AS (
            SELECT s.trace_id, s.span_data->>'name' AS name, count(*) AS n
            FROM bridge.spans s WHERE s.trace_id IN (SELECT trace_id FROM ran) AND s.span_data->>'type' = 'guardrail'
            GROUP BY 1, 2
        ),
        guards AS (
            SELECT r.trace_id, r.task_id, r.name, r.n AS ran, coalesce(g.n, 0) AS spans
            FROM ran r LEFT JOIN gspans g ON g.trace_id = r.trace_id AND g.name = r.name
        ),
        decided AS (
            SELECT m.trace_id, m.task_id, m.call_id,
                   EXISTS (SELECT 1 FROM bridge.spans s WHERE s.trace_id = m.trace_id AND s.span_data->>'type' = 'custom'
                           AND s.span_data->>'name' = 'approval' AND s.span_data->'data'->>'call_id' = m.call_id) AS traced
            FROM marks m WHERE m.type = 'approval_result'
        ),
        resumed AS (
            SELECT r.trace_id, r.task_id,
                   (SELECT count(*) FROM bridge.spans s WHERE s.trace_id = r.trace_id AND s.span_data->>'type' = 'custom'
                      AND s.span_data->>'name' = 'task') AS task_spans,
                   (SELECT count(*) FROM bridge.spans s WHERE s.trace_id = r.trace_id AND s.parent_id IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM bridge.spans p WHERE p.span_id = s.parent_id AND p.trace_id = s.trace_id)) AS orphans
            FROM (SELECT DISTINCT trace_id, task_id FROM decided) r
        ),
        bad AS (
            SELECT task_id, trace_id, format('guardrail %s: ran %s time(s), %s guardrail span(s) in the trace', name, ran, spans) AS message
            FROM guards WHERE spans < ran
            UNION ALL
            SELECT task_id, trace_id, format('call %s was decided and the run resumed, but the trace has no approval span for it', call_id)
            FROM decided WHERE NOT traced
            UNION ALL
            SELECT task_id, trace_id, format('resumed run: %s task span(s) (expected 1), %s span(s) whose parent is not in the trace', task_spans, orphans)
            FROM resumed WHERE task_spans <> 1 OR orphans > 0
        ),
        \(tail(checked: "SELECT coalesce(sum(ran), 0) FROM guards) + (SELECT count(*) FROM decided) + (SELECT count(*) FROM resumed",
                    failed: "SELECT coalesce(sum(ran - spans), 0) FROM guards WHERE spans < ran) + (SELECT count(*) FROM decided WHERE NOT traced) + (SELECT count(*) FROM resumed WHERE task_spans <> 1 OR orphans > 0"))
        """
    }

    // MARK: spend_recorded

    /// Per model call (`generation`/`response` span that ended without error) in scope: it
    /// carries `cost_usd` (a number, or null for a model missing from `pricing`). A call without
    /// the key ran with no pricing at all. Also sums the spend: `usd` over priced calls and
    /// `unpriced` calls.
    var spendRecorded: PostgresQuery {
        """
        WITH \(scopedTraces),
        ms AS MATERIALIZED (
            SELECT st.task_id, s.trace_id, s.span_data -> 'cost_usd' AS cost
            FROM bridge.spans s JOIN st ON st.trace_id = s.trace_id
            WHERE s.span_data->>'type' IN ('generation', 'response') AND s.error IS NULL
        ),
        bad AS (
            SELECT task_id, trace_id, 'a model call with no cost_usd: it ran without pricing' AS message
            FROM ms WHERE cost IS NULL
        ),
        agg AS (
            SELECT count(*) AS checked, count(*) FILTER (WHERE cost IS NULL) AS failed,
                   coalesce(sum((cost #>> '{}')::numeric) FILTER (WHERE jsonb_typeof(cost) = 'number'), 0)::float8 AS usd,
                   count(*) FILTER (WHERE jsonb_typeof(cost) = 'null') AS unpriced
            FROM ms
        )
        SELECT agg.*, ex.task_id, ex.trace_id, ex.message
        FROM agg LEFT JOIN LATERAL (SELECT task_id, trace_id, message FROM bad ORDER BY trace_id LIMIT \(examples)::int) ex ON true
        """
    }

    // MARK: runs_whole

    /// Per ended trace in scope: one root span, no span whose parent is missing from the trace
    /// (a run interrupted and resumed must still be one tree), and no call traced twice: no call
    /// id on two function spans, and per tool name no more function spans than calls in the run
    /// transcript (a resumed run that ran a finished call again would show one more). Items:
    /// the traces.
    var runsWhole: PostgresQuery {
        """
        WITH \(scopedTraces),
        tr AS MATERIALIZED (
            SELECT st.trace_id, st.task_id,
                   (SELECT count(*) FROM bridge.spans s WHERE s.trace_id = st.trace_id AND s.parent_id IS NULL) AS roots,
                   (SELECT count(*) FROM bridge.spans s WHERE s.trace_id = st.trace_id AND s.parent_id IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM bridge.spans p WHERE p.span_id = s.parent_id AND p.trace_id = s.trace_id)) AS orphans
            FROM st
        ),
        calls AS (
            SELECT st.trace_id, it->>'name' AS name, count(*) AS n
            FROM st JOIN bridge.run_transcripts rt ON rt.trace_id = st.trace_id
            CROSS JOIN LATERAL \(Self.transcriptItems) AS it
            WHERE it->>'type' = 'function_call'
            GROUP BY 1, 2
        ),
        fspans AS (
            -- the run's own calls: function > turn > agent > task (a guardrail agent's calls sit
            -- under a guardrail span and are not in the run's transcript)
            SELECT s.trace_id, s.span_data->>'name' AS name, count(*) AS n
            FROM bridge.spans s JOIN st ON st.trace_id = s.trace_id
            JOIN bridge.spans turn ON turn.span_id = s.parent_id
            JOIN bridge.spans ag ON ag.span_id = turn.parent_id AND ag.span_data->>'type' = 'agent'
            JOIN bridge.spans task ON task.span_id = ag.parent_id AND task.parent_id IS NULL
            WHERE s.span_data->>'type' = 'function' AND EXISTS (SELECT 1 FROM bridge.run_transcripts rt WHERE rt.trace_id = st.trace_id)
            GROUP BY 1, 2
        ),
        twice AS (
            SELECT f.trace_id, f.name, f.n AS spans, coalesce(c.n, 0) AS calls
            FROM fspans f LEFT JOIN calls c ON c.trace_id = f.trace_id AND c.name = f.name
            WHERE f.n > coalesce(c.n, 0)
        ),
        dup AS (
            SELECT s.trace_id, s.span_data->>'call_id' AS call_id, count(*) AS n
            FROM bridge.spans s JOIN st ON st.trace_id = s.trace_id
            WHERE s.span_data->>'type' = 'function' AND s.span_data->>'call_id' IS NOT NULL
            GROUP BY 1, 2 HAVING count(*) > 1
        ),
        bad AS (
            SELECT task_id, trace_id, format('%s span(s) whose parent is not in the trace', orphans) AS message
            FROM tr WHERE orphans > 0
            UNION ALL
            SELECT tr.task_id, d.trace_id, format('call %s has %s function spans: it ran twice', d.call_id, d.n)
            FROM dup d JOIN tr ON tr.trace_id = d.trace_id
            UNION ALL
            SELECT task_id, trace_id, format('%s root span(s) (expected 1)', roots) FROM tr WHERE roots <> 1
            UNION ALL
            SELECT tr.task_id, w.trace_id,
                   format('tool %s: %s function span(s) for %s call(s) in the run transcript: a call was traced twice', w.name, w.spans, w.calls)
            FROM twice w JOIN tr ON tr.trace_id = w.trace_id
        ),
        \(tail(checked: "SELECT count(*) FROM tr", failed: "SELECT count(DISTINCT trace_id) FROM bad"))
        """
    }

    // MARK: tools_traced

    /// Per trace and tool name: calls in the transcript (handoff `transfer_to_…` calls excluded)
    /// against function spans with that name. A trace without a transcript fails (its tool
    /// calls cannot be checked).
    var toolsTraced: PostgresQuery {
        """
        WITH \(scopedTraces),
        calls AS (
            SELECT st.trace_id, st.task_id, it->>'name' AS name, count(*) AS n
            FROM st JOIN bridge.run_transcripts rt ON rt.trace_id = st.trace_id
            CROSS JOIN LATERAL \(Self.transcriptItems) AS it
            WHERE it->>'type' = 'function_call' AND it->>'name' NOT LIKE 'transfer\\_to\\_%'
            GROUP BY 1, 2, 3
        ),
        fspans AS (
            SELECT s.trace_id, s.span_data->>'name' AS name, count(*) AS n
            FROM bridge.spans s JOIN st ON st.trace_id = s.trace_id
            WHERE s.span_data->>'type' = 'function'
            GROUP BY 1, 2
        ),
        items AS MATERIALIZED (
            SELECT c.trace_id, c.task_id, c.name, c.n AS calls, coalesce(f.n, 0) AS spans
            FROM calls c LEFT JOIN fspans f ON f.trace_id = c.trace_id AND f.name = c.name
        ),
        untranscribed AS MATERIALIZED (
            SELECT st.trace_id, st.task_id FROM st
            WHERE NOT EXISTS (SELECT 1 FROM bridge.run_transcripts rt WHERE rt.trace_id = st.trace_id)
        ),
        bad AS (
            SELECT task_id, trace_id,
                   format('tool %s: called %s time(s) in the run transcript, %s function span(s) in the trace', name, calls, spans) AS message
            FROM items WHERE spans < calls
            UNION ALL
            SELECT task_id, trace_id, 'no run transcript stored (bridge.run_transcripts): its tool calls cannot be checked'
            FROM untranscribed
        ),
        \(tail(checked: "SELECT coalesce(sum(calls), 0) FROM items) + (SELECT count(*) FROM untranscribed",
                    failed: "SELECT coalesce(sum(calls - spans), 0) FROM items WHERE spans < calls) + (SELECT count(*) FROM untranscribed"))
        """
    }

    // MARK: handoffs_traced

    /// Per trace and handoff tool (`transfer_to_<agent>`): the calls in the transcript (except
    /// those the runner ignored as "Multiple handoffs detected") against the trace's handoff
    /// spans to the agent whose default tool name it is; and every such handoff span must name
    /// both agents, sit under a turn (or the agent span) of the source agent, and be followed
    /// by a span of the target agent. Items: the handoff calls.
    var handoffsTraced: PostgresQuery {
        """
        WITH \(scopedTraces),
        hcalls AS (
            SELECT st.trace_id, st.task_id, x.it->>'name' AS tool, count(*) AS n
            FROM st JOIN bridge.run_transcripts rt ON rt.trace_id = st.trace_id
            CROSS JOIN LATERAL \(Self.transcriptItems) AS x(it)
            WHERE x.it->>'type' = 'function_call' AND x.it->>'name' LIKE 'transfer\\_to\\_%'
              AND NOT jsonb_path_exists(rt.items,
                    '$[*] ? (@.type == "function_call_output" && @.call_id == $c && @.output starts with "Multiple handoffs")',
                    jsonb_build_object('c', x.it->'call_id'))
            GROUP BY 1, 2, 3
        ),
        hspans AS MATERIALIZED (
            SELECT st.task_id, s.trace_id, s.span_id, s.parent_id, s.started_at,
                   s.span_data->>'from_agent' AS from_agent, s.span_data->>'to_agent' AS to_agent,
                   'transfer_to_' || regexp_replace(lower(coalesce(s.span_data->>'to_agent', '')), '[^a-z0-9_]', '_', 'g') AS tool
            FROM bridge.spans s JOIN st ON st.trace_id = s.trace_id
            WHERE s.span_data->>'type' = 'handoff'
        ),
        agent_starts AS (
            SELECT s.trace_id, s.span_data->>'name' AS name, max(s.started_at) AS last_start
            FROM bridge.spans s JOIN st ON st.trace_id = s.trace_id
            WHERE s.span_data->>'type' = 'agent'
            GROUP BY 1, 2
        ),
        checked_spans AS (
            SELECT h.*,
                   coalesce((p.span_data->>'type' = 'custom' AND p.span_data->'data'->>'sdk_span_type' = 'turn'
                             AND p.span_data->'data'->>'agent_name' = h.from_agent)
                            OR (p.span_data->>'type' = 'agent' AND p.span_data->>'name' = h.from_agent), false) AS parent_ok,
                   coalesce(a.last_start >= h.started_at, false) AS target_after
            FROM hspans h
            LEFT JOIN bridge.spans p ON p.span_id = h.parent_id
            LEFT JOIN agent_starts a ON a.trace_id = h.trace_id AND a.name = h.to_agent
        ),
        span_counts AS (SELECT trace_id, tool, count(*) AS n FROM hspans GROUP BY 1, 2),
        items AS MATERIALIZED (
            SELECT c.trace_id, c.task_id, c.tool, c.n AS calls, coalesce(sc.n, 0) AS spans
            FROM hcalls c LEFT JOIN span_counts sc ON sc.trace_id = c.trace_id AND sc.tool = c.tool
        ),
        bad AS (
            SELECT task_id, trace_id,
                   format('the run transcript calls %s %s time(s), but the trace has %s handoff span(s) to that agent', tool, calls, spans) AS message,
                   calls - spans AS weight
            FROM items WHERE spans < calls
            UNION ALL
            SELECT task_id, trace_id, CASE
                WHEN from_agent IS NULL OR to_agent IS NULL THEN format('handoff span %s lacks from_agent or to_agent', span_id)
                WHEN NOT parent_ok THEN format('handoff %s → %s (%s) is not under a turn of %s', from_agent, to_agent, span_id, from_agent)
                ELSE format('handoff %s → %s (%s): no agent span of %s starts after it', from_agent, to_agent, span_id, to_agent)
            END, 1
            FROM checked_spans
            WHERE from_agent IS NULL OR to_agent IS NULL OR NOT parent_ok OR NOT target_after
        ),
        \(tail(checked: "SELECT coalesce(sum(calls), 0) FROM items", failed: "SELECT coalesce(sum(weight), 0) FROM bad"))
        """
    }

    // MARK: tool_io_captured

    /// Function spans whose `input` is missing or JSON null, or that have neither an `output`
    /// nor an `error`.
    var toolIOCaptured: PostgresQuery {
        """
        WITH \(scopedTraces),
        fs AS MATERIALIZED (
            SELECT st.task_id, s.trace_id, s.span_id, s.span_data->>'name' AS name,
                   coalesce(jsonb_typeof(s.span_data->'input'), 'null') <> 'null' AS has_input,
                   coalesce(jsonb_typeof(s.span_data->'output'), 'null') <> 'null' AS has_output,
                   coalesce(jsonb_typeof(s.error), 'null') <> 'null' AS has_error
            FROM bridge.spans s JOIN st ON st.trace_id = s.trace_id
            WHERE s.span_data->>'type' = 'function'
        ),
        bad AS (
            SELECT task_id, trace_id, CASE
                WHEN NOT has_input AND NOT (has_output OR has_error) THEN format('function span %s (%s) has no input and no output or error', span_id, name)
                WHEN NOT has_input THEN format('function span %s (%s) has no input', span_id, name)
                ELSE format('function span %s (%s) has no output and no error', span_id, name)
            END AS message
            FROM fs WHERE NOT has_input OR NOT (has_output OR has_error)
        ),
        \(tail(checked: "SELECT count(*) FROM fs", failed: "SELECT count(*) FROM bad"))
        """
    }

    // MARK: tool_timing

    /// One `total` row, one `tool` row per tool name (count, p50, p95, max in ms, over spans
    /// with valid times), and up to `examples` example rows of spans without valid times.
    var toolTiming: PostgresQuery {
        """
        WITH \(scopedTraces),
        fs AS MATERIALIZED (
            SELECT st.task_id, s.trace_id, s.span_id, s.span_data->>'name' AS name, s.started_at, s.ended_at,
                   coalesce(s.started_at <= s.ended_at, false) AS ok
            FROM bridge.spans s JOIN st ON st.trace_id = s.trace_id
            WHERE s.span_data->>'type' = 'function'
        )
        SELECT 'total' AS kind, count(*) AS checked, count(*) FILTER (WHERE NOT ok) AS failed, NULL::text AS tool,
               NULL::bigint AS n, NULL::float8 AS p50, NULL::float8 AS p95, NULL::float8 AS max,
               NULL::text AS task_id, NULL::text AS trace_id, NULL::text AS message
        FROM fs
        UNION ALL
        SELECT 'tool', NULL, NULL, name, count(*),
               percentile_cont(0.5) WITHIN GROUP (ORDER BY d), percentile_cont(0.95) WITHIN GROUP (ORDER BY d), max(d),
               NULL, NULL, NULL
        FROM (SELECT coalesce(name, '?') AS name, extract(epoch FROM ended_at - started_at)::float8 * 1000 AS d FROM fs WHERE ok) t
        GROUP BY name
        UNION ALL
        (SELECT 'example', NULL, NULL, NULL, NULL, NULL, NULL, NULL, task_id, trace_id,
                CASE WHEN started_at IS NULL OR ended_at IS NULL
                     THEN format('function span %s (%s) has no %s', span_id, name, CASE WHEN started_at IS NULL THEN 'started_at' ELSE 'ended_at' END)
                     ELSE format('function span %s (%s) ends %s ms before it starts', span_id, name,
                                 round((extract(epoch FROM started_at - ended_at) * 1000)::numeric, 3))
                END
         FROM fs WHERE NOT ok ORDER BY trace_id, span_id LIMIT \(examples)::int)
        """
    }

    // MARK: export_delivered

    /// Span × exporter pairs: every span in scope for every row of `bridge.exporters`, with its
    /// delivery. The exporters work the ledger as an outbox, so spans that ended before an
    /// exporter was registered are sent too; a span's clock starts at the later of its end and
    /// the exporter's registration (`due`). `maxExportLag` (`--max-export-lag`, seconds): undelivered
    /// spans due less than that ago are in flight, not failures. Lag = acknowledgement − due.
    /// Returns `exporter` rows (counts and lag percentiles), up to `examples` example rows (rejected
    /// first, then missing) and up to `examples` late rows (slowest deliveries over the limit).
    var exportDelivered: PostgresQuery {
        let delivered = DeliveryStatus.delivered
        let rejected = DeliveryStatus.rejected
        return """
            WITH \(scopedTraces),
            limits AS MATERIALIZED (SELECT now() - make_interval(secs => \(maxExportLag)::float8) AS cutoff),
            pairs AS MATERIALIZED (
                SELECT s.trace_id, s.span_id, greatest(s.ended_at, x.registered_at) AS ended_at, x.name AS exporter, d.status,
                       extract(epoch FROM d.delivered_at - greatest(s.ended_at, x.registered_at))::float8 AS lag
                FROM bridge.spans s JOIN st ON st.trace_id = s.trace_id
                CROSS JOIN bridge.exporters x
                LEFT JOIN bridge.span_deliveries d ON d.exporter = x.name AND d.span_id = s.span_id
            ),
            stats AS (
                SELECT exporter, count(*) AS spans,
                       count(*) FILTER (WHERE status = \(delivered)) AS delivered,
                       count(*) FILTER (WHERE status = \(rejected)) AS rejected,
                       count(*) FILTER (WHERE status IS NULL AND ended_at < (SELECT cutoff FROM limits)) AS missing,
                       count(*) FILTER (WHERE status IS NULL AND ended_at >= (SELECT cutoff FROM limits)) AS in_flight,
                       count(*) FILTER (WHERE status = \(delivered) AND lag > \(maxExportLag)::float8) AS late,
                       percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) FILTER (WHERE status = \(delivered)) AS p50,
                       percentile_cont(0.95) WITHIN GROUP (ORDER BY lag) FILTER (WHERE status = \(delivered)) AS p95,
                       max(lag) FILTER (WHERE status = \(delivered)) AS max
                FROM pairs GROUP BY exporter
            ),
            failing AS (
                (SELECT 'example' AS kind, p.exporter, p.trace_id, p.span_id, p.status, p.ended_at, p.lag FROM pairs p
                 WHERE p.status = \(rejected) OR (p.status IS NULL AND p.ended_at < (SELECT cutoff FROM limits))
                 ORDER BY coalesce(p.status, '') = \(rejected) DESC, p.trace_id, p.span_id LIMIT \(examples)::int)
                UNION ALL
                (SELECT 'late', p.exporter, p.trace_id, p.span_id, p.status, p.ended_at, p.lag FROM pairs p
                 WHERE p.status = \(delivered) AND p.lag > \(maxExportLag)::float8
                 ORDER BY p.lag DESC LIMIT \(examples)::int)
            )
            SELECT 'exporter' AS kind, exporter, spans, delivered, rejected, missing, in_flight, late, p50, p95, max,
                   NULL::text AS task_id, NULL::text AS trace_id, NULL::text AS message
            FROM stats
            UNION ALL
            SELECT f.kind, f.exporter, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
                   coalesce(tr.task_id, tr.metadata->>'task_id'), f.trace_id,
                   CASE WHEN f.kind = 'late' THEN format('span %s acknowledged by %s %s s after it was due', f.span_id, f.exporter, round(f.lag::numeric, 1))
                        WHEN f.status = \(rejected) THEN format('span %s rejected by %s: %s', f.span_id, f.exporter, coalesce(d.error, 'no message'))
                        ELSE format('span %s not delivered to %s (due %s s ago)', f.span_id, f.exporter,
                                    round(extract(epoch FROM now() - f.ended_at)::numeric)) END
            FROM failing f
            LEFT JOIN bridge.traces tr ON tr.trace_id = f.trace_id
            LEFT JOIN bridge.span_deliveries d ON d.exporter = f.exporter AND d.span_id = f.span_id
            """
    }

    // MARK: trace_ids_correlate

    /// Nil when the mappings configure no trace id column at all.
    ///
    /// Items: (1) finished executions that bridge ran; (2) traces in scope; (3) with a spans
    /// file, traces in scope against the file. The task table's completed and failed status
    /// values and the execution table's completed, failed_retriable and failed_terminal values
    /// are bound.
    ///
    /// An execution counts as run by bridge when it has a trace id, or when it finished after
    /// the first trace bridge recorded for its task. Historical rows that predate bridge have
    /// neither and are not checked.
    ///
    /// `drivenByTasks` (a `--task` or `--workspace` scope): the executions are found through
    /// the scope's tasks (their index, then the execution table's task index per task), not
    /// through the execution table's time indexes (`--since`, migration 0049).
    func traceIdsCorrelate(withFile: Bool, drivenByTasks: Bool = false) -> PostgresQuery? {
        let traceColumn = config.results.traceIdColumn.map(PostgresQuery.identifier)
        let found: CorrelatedRows
        if let e = config.results.executions {
            guard e.columns.traceId != nil || traceColumn != nil else { return nil }
            found = executionRows(e, traceColumn: traceColumn, drivenByTasks: drivenByTasks)
        } else {
            guard let traceColumn else { return nil }
            found = taskRows(traceColumn: traceColumn)
        }
        return correlate(found, checksTaskTrace: traceColumn != nil, withFile: withFile)
    }

    /// The rows item (1) checks (`execution_id, task_id, trace_id, task_trace_id, task_finished,
    /// at, latest`), and what item (2) needs from the same table.
    private struct CorrelatedRows {
        /// The finished executions in scope (or finished tasks, without an execution table).
        var rows: PostgresQuery
        /// True for a scoped trace (`st.trace_id`) that no execution row carries.
        var unreferenced: PostgresQuery = "false"
        /// What the messages call a row: "execution" or "task".
        /// What a row is (`execution`, `task`), written into the check's messages.
        var label: PostgresQuery
    }

    /// The `--task` filter on the task table `t`.
    private var correlateTaskFilter: PostgresQuery {
        "(\(task)::text IS NULL OR \(equals(config.source.table, config.source.key, alias: "t", text: "\(task)::text")))"
    }

    /// The `--workspace` filter on the task table `t` (no row matches a workspace when the
    /// mappings name no group column).
    private var correlateGroupFilter: PostgresQuery {
        let s = config.source
        return s.groupColumn.map {
            "(\(workspace)::text IS NULL OR \(equals(s.table, $0, alias: "t", text: "\(workspace)::text")))"
        } ?? "\(workspace)::text IS NULL"
    }

    /// The execution table's finished rows in scope, each with its task's trace id; the latest
    /// per task is `latest = 1`. Without a trace id column of their own, executions take their
    /// task's and only the latest is checked.
    private func executionRows(_ e: ExecutionsMapping, traceColumn: PostgresQuery?, drivenByTasks: Bool)
        -> CorrelatedRows
    {
        let s = config.source
        let execStatuses = e.statuses
        let taskTable = PostgresQuery.identifier(s.table)
        let taskKey = PostgresQuery.identifier(s.key)
        let taskStatus = PostgresQuery.identifier(s.status.column)
        let taskFilter = correlateTaskFilter
        let groupFilter = correlateGroupFilter
        let execTable = PostgresQuery.identifier(e.table)
        let execKey = PostgresQuery.identifier(e.key)
        let execTask = PostgresQuery.identifier(e.taskColumn)
        let execStatus = PostgresQuery.identifier(e.columns.status)
        let execTrace = e.columns.traceId.map(PostgresQuery.identifier)
        let times = [e.columns.completedAt, e.columns.startedAt].compactMap { $0 }.map { name -> PostgresQuery in
            "e.\(identifier: name)"
        }
        let at: PostgresQuery = times.isEmpty ? "NULL::timestamptz" : "coalesce(\(times))::timestamptz"
        let order: PostgresQuery =
            // Empty default: without a started-at column the key alone orders.
            (e.columns.startedAt.map { "e.\(identifier: $0) DESC NULLS LAST, " } ?? "") + "e.\(execKey)::text DESC"
        let traceExpr: PostgresQuery = execTrace.map { "e.\($0)::text" } ?? "t.\(traceColumn!)::text"
        let taskTrace: PostgresQuery = traceColumn.map { "t.\($0)::text" } ?? "NULL::text"
        let sinceFilter = executionSinceFilter(e)
        let from: PostgresQuery =
            drivenByTasks
            ? "\(taskTable) t CROSS JOIN LATERAL (SELECT * FROM \(execTable) e WHERE e.\(execTask) = t.\(taskKey) OFFSET 0) e"
            : "\(execTable) e JOIN \(taskTable) t ON t.\(taskKey) = e.\(execTask)"
        let rows: PostgresQuery = """
            SELECT * FROM (
                SELECT e.\(execKey)::text AS execution_id, t.\(taskKey)::text AS task_id, \(traceExpr) AS trace_id,
                       \(taskTrace) AS task_trace_id,
                       t.\(taskStatus)::text IN (\(config.source.status.completed)::text, \(config.source.status.failed)::text) AS task_finished, \(at) AS at,
                       row_number() OVER (PARTITION BY e.\(execTask) ORDER BY \(order)) AS latest
                FROM \(from)
                WHERE e.\(execStatus)::text IN (\(execStatuses.completed)::text, \(execStatuses.failedRetriable)::text, \(execStatuses.failedTerminal)::text)
                  AND (\(since)::timestamptz IS NULL OR \(sinceFilter))
                  AND \(taskFilter)
                  AND \(groupFilter)
            ) x \(execTrace == nil ? "WHERE latest = 1" : "" as PostgresQuery)
            """
        guard let execTrace else { return CorrelatedRows(rows: rows, label: "execution") }
        let unreferenced: PostgresQuery =
            "(SELECT true FROM \(execTable) e WHERE e.\(execTrace)::text = st.trace_id LIMIT 1) IS NULL"
        return CorrelatedRows(rows: rows, unreferenced: unreferenced, label: "execution")
    }

    /// The --since window as sargable predicates on the execution table `e` (coalesce on the
    /// column side would read every execution): completed since, or not completed and started
    /// since (or never).
    private func executionSinceFilter(_ e: ExecutionsMapping) -> PostgresQuery {
        switch (e.columns.completedAt, e.columns.startedAt) {
        case (let c?, let st?):
            return
                "(\(atLeastSince(e.table, c, alias: "e")) OR (e.\(identifier: c) IS NULL AND (\(atLeastSince(e.table, st, alias: "e")) OR e.\(identifier: st) IS NULL)))"
        case (let c?, nil), (nil, let c?):
            return "(\(atLeastSince(e.table, c, alias: "e")) OR e.\(identifier: c) IS NULL)"
        case (nil, nil):
            return "true"
        }
    }

    /// Without an execution table: the task table's finished rows in scope, each its own
    /// execution.
    private func taskRows(traceColumn: PostgresQuery) -> CorrelatedRows {
        let execStatuses = ExecutionStatuses.defaults
        let taskTable = PostgresQuery.identifier(config.source.table)
        let taskKey = PostgresQuery.identifier(config.source.key)
        let taskStatus = PostgresQuery.identifier(config.source.status.column)
        let taskFilter = correlateTaskFilter
        let groupFilter = correlateGroupFilter
        let at: PostgresQuery =
            config.results.completedAtColumn.map { "t.\(identifier: $0)::timestamptz" } ?? "NULL::timestamptz"
        let rows: PostgresQuery = """
            SELECT t.\(taskKey)::text AS execution_id, t.\(taskKey)::text AS task_id, t.\(traceColumn)::text AS trace_id,
                   t.\(traceColumn)::text AS task_trace_id, true AS task_finished, \(at) AS at, 1::bigint AS latest
            FROM \(taskTable) t
            WHERE t.\(taskStatus)::text IN (\(config.source.status.completed)::text, \(config.source.status.failed)::text) AND \(execStatuses.completed)::text IS NOT NULL AND \(execStatuses.failedRetriable)::text IS NOT NULL AND \(execStatuses.failedTerminal)::text IS NOT NULL
              AND (\(since)::timestamptz IS NULL OR \(at) IS NULL OR \(at) >= \(since)::timestamptz)
              AND \(taskFilter)
              AND \(groupFilter)
            """
        return CorrelatedRows(rows: rows, label: "task")
    }

    /// The statement of the check: items (1) to (3) over `found`, counted, with examples.
    private func correlate(_ found: CorrelatedRows, checksTaskTrace: Bool, withFile: Bool) -> PostgresQuery {
        let s = config.source
        let taskTable = PostgresQuery.identifier(s.table)
        let executions = found.rows
        let unreferenced = found.unreferenced
        let label = found.label
        let equality: PostgresQuery =
            !checksTaskTrace
            ? ""
            : """
            WHEN latest = 1 AND task_finished AND task_trace_id IS DISTINCT FROM trace_id
                THEN format('\(label) %s has trace id %s, but its task has %s', execution_id, trace_id, coalesce(task_trace_id, 'none'))
            """
        let fileItems: PostgresQuery = withFile ? spansFileItems : ""
        let fileBad: PostgresQuery =
            withFile ? "UNION ALL SELECT 3, task_id, trace_id, message FROM fl WHERE message IS NOT NULL" : ""
        let fileCount: PostgresQuery = withFile ? " + (SELECT count(*) FROM fl)" : ""
        return """
            WITH \(scopedTraces),
            ex AS MATERIALIZED (\(executions)),
            bx AS MATERIALIZED (
                SELECT ex.*, ft.first_at, tr.trace_id IS NOT NULL AS trace_found, tr.trace_task,
                       (SELECT true FROM bridge.spans s WHERE s.trace_id = ex.trace_id LIMIT 1) IS NOT NULL AS has_spans
                FROM ex
                -- Per execution in scope (OFFSET 0 keeps each a probe of an index, never a scan
                -- of the ledger): its task's first trace (idx_traces_task_id, and 0049's index
                -- for traces that name their task only in metadata), and its own trace.
                LEFT JOIN LATERAL (
                    SELECT min(y.started_at) AS first_at FROM (
                        SELECT x.started_at FROM bridge.traces x
                        WHERE x.task_id = ex.task_id OR (x.task_id IS NULL AND x.metadata->>'task_id' = ex.task_id) OFFSET 0) y
                ) ft ON true
                LEFT JOIN LATERAL (
                    SELECT x.trace_id, x.metadata->>'task_id' AS trace_task FROM bridge.traces x WHERE x.trace_id = ex.trace_id OFFSET 0
                ) tr ON true
                WHERE ex.trace_id IS NOT NULL OR (ft.first_at IS NOT NULL AND ex.at >= ft.first_at)
            ),
            ot AS MATERIALIZED (
                SELECT st.trace_id, st.task_id, CASE
                    WHEN st.task_id IS NULL THEN 'trace has no task_id in its metadata'
                    WHEN NOT EXISTS (SELECT 1 FROM \(taskTable) t WHERE \(equals(s.table, s.key, alias: "t", text: "st.task_id"))) THEN format('the task %s of this trace does not exist', st.task_id)
                    WHEN \(unreferenced) THEN 'no execution row carries this trace id'
                END AS message
                FROM st
            )\(fileItems),
            bad AS (
                SELECT 1 AS part, task_id, trace_id, CASE
                    WHEN trace_id IS NULL THEN format('\(label) %s has no trace id, although bridge ran this task (first trace %s)', execution_id, first_at)
                    WHEN trace_id !~ \(TraceID.pattern) THEN format('\(label) %s has a malformed trace id %s', execution_id, trace_id)
                    \(equality)
                    WHEN NOT trace_found THEN format('\(label) %s: its trace is not in bridge.traces', execution_id)
                    WHEN NOT has_spans THEN format('\(label) %s: its trace has no spans', execution_id)
                    WHEN trace_task IS DISTINCT FROM task_id THEN format('\(label) %s: trace metadata.task_id is %s', execution_id, coalesce(trace_task, 'missing'))
                END AS message
                FROM bx
                UNION ALL SELECT 2, task_id, trace_id, message FROM ot WHERE message IS NOT NULL
                \(fileBad)
            ),
            counts AS (SELECT (SELECT count(*) FROM bx) AS executions, (SELECT count(*) FROM ot) AS traces),
            agg AS (SELECT counts.*, (SELECT count(*) FROM bx) + (SELECT count(*) FROM ot)\(fileCount) AS checked,
                           (SELECT count(*) FROM bad WHERE message IS NOT NULL) AS failed FROM counts)
            SELECT agg.*, ex.task_id, ex.trace_id, ex.message
            FROM agg LEFT JOIN LATERAL (
                SELECT task_id, trace_id, message FROM (
                    SELECT *, row_number() OVER (PARTITION BY part ORDER BY trace_id, message) AS r FROM bad WHERE message IS NOT NULL
                ) b ORDER BY r, part LIMIT \(examples)::int
            ) ex ON true
            """
    }

    /// Item (3)'s CTEs, `fspans` and `fl`: each trace in scope against the spans file's traces and
    /// spans (temporary tables `verify_file_traces` and `verify_file_spans`).
    private var spansFileItems: PostgresQuery {
        """
        ,
        fspans AS (
            SELECT s.trace_id, count(*) AS total, count(f.span_key) AS present
            FROM bridge.spans s JOIN st ON st.trace_id = s.trace_id
            LEFT JOIN (SELECT DISTINCT trace_id, span_key FROM pg_temp.verify_file_spans) f
                   ON f.trace_id = s.trace_id AND f.span_key = substr(s.span_id, 6, 16)
            GROUP BY s.trace_id
        ),
        fl AS MATERIALIZED (
            SELECT st.task_id, st.trace_id, CASE
                WHEN ft.trace_id IS NULL THEN 'trace is missing from the spans file'
                WHEN coalesce(fs.present, 0) < coalesce(fs.total, 0)
                    THEN format('%s of the %s spans of this trace are missing from the spans file', fs.total - fs.present, fs.total)
            END AS message
            FROM st
            LEFT JOIN pg_temp.verify_file_traces ft ON ft.trace_id = st.trace_id
            LEFT JOIN fspans fs ON fs.trace_id = st.trace_id
        )
        """
    }
}

/// The statements of `bridge verify`, for the plan tests.
public enum VerifyStatements {
    /// Every statement `bridge verify` runs for a scope (`--since`, `--task`, `--workspace`):
    /// each must reach only the window through indexes.
    public static func scoped(
        config: MappingConfig, since: Date?, task: TaskKey?, workspace: String?,

        maxExamples: Int = 20
    ) -> [(name: String, query: PostgresQuery)] {
        var sql = VerifySQL(config: config)
        sql.since = since.map(PostgresTimestamp.format)
        sql.task = task
        sql.workspace = workspace
        sql.examples = maxExamples
        sql.maxExportLag = 300
        var out: [(String, PostgresQuery)] = [
            ("guardrails_approvals_traced", sql.guardrailsApprovalsTraced),
            ("tools_traced", sql.toolsTraced),
            ("handoffs_traced", sql.handoffsTraced),
            ("tool_io_captured", sql.toolIOCaptured),
            ("tool_timing", sql.toolTiming),
            ("export_delivered", sql.exportDelivered),
        ]
        if let correlate = sql.traceIdsCorrelate(withFile: false, drivenByTasks: task != nil || workspace != nil) {
            out.append(("trace_ids_correlate", correlate))
        }
        return out
    }
}
