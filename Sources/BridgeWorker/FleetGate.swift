import BridgeCore
import BridgeMapping
import BridgeMetrics
import BridgePostgres
import BridgeRunner
import BridgeTraceModel
import FoundationEssentials

/// Fleet-wide limits, budgets and spend records on PostgreSQL (the `limits`, `budgets` and
/// `pricing` sections), shared by every worker of the database with no other server.
///
/// - **Rates** (requests and tokens per minute): GCRA buckets in `bridge.rate_buckets`
///   (migration 0056), advanced by `bridge.take_rate` on the database's clock. A model's limit
///   is split over `stripes` rows so that no single row serialises a busy fleet. Tokens are
///   reserved from an estimate before the call and settled with the actual usage after it.
/// - **Concurrency** (per model, per tool): one session advisory lock per slot, keyed by
///   `AdvisoryLockKey(name: "bridge:model:<model>#<slot>")`, on the run's own connection.
///   PostgreSQL frees them when that connection ends, so a worker that dies (or loses the
///   database) gives its slots back at once.
/// - **429**: the provider's reset time goes to `blocked_until` on every stripe of the model,
///   so every worker waits for it; the call is made again and the task's attempts are untouched.
/// - **Budgets**: before every model call the group's limit (the application's own SQL
///   expression over its row) is compared with `bridge.group_spend`; claims skip held groups.
/// - **Spend**: each call's tokens and cost go to `bridge.model_calls`, summed per group in
///   `bridge.group_spend` (and, when asked, written back to the application's column).
///
/// A class: the worker's executor and each run's gate hold it, and they are copied on every
/// run and call; a struct holding the whole mapping configuration was copied field by field.
public final class FleetLimits: Sendable {
    public let config: MappingConfig
    /// How far ahead of its schedule a bucket stripe may run.
    public let burst: Duration = .seconds(1)

    public init(config: MappingConfig) { self.config = config }

    /// Whether runs need a gate at all (any of `pricing`, `limits`, `budgets`).
    public var isActive: Bool { config.pricing.isConfigured || config.limits != nil || config.budgets != nil }

    /// Stripes of a model's bucket: one per 600 requests (or 600,000 tokens) a minute, 1 to 32.
    public static func stripes(_ l: ModelLimit) -> Int {
        let load = max(l.requestsPerMinute ?? 0, (l.tokensPerMinute ?? 0) / 1000)
        return max(1, min(32, Int((load / 600).rounded(.up))))
    }

    public static func lockKey(model: String) -> String { "bridge:model:" + model }
    public static func lockKey(tool: String) -> String { "bridge:tool:" + tool }

    /// The advisory-lock keys of `key`'s `slots` concurrency slots (`<key>#<slot>`, each a
    /// stable 64-bit key: see `AdvisoryLockKey`).
    public static func slotKeys(_ key: String, slots: Int) -> [AdvisoryLockKey] {
        (0..<max(slots, 0)).map { slotKey(key, slot: $0) }
    }

    static func slotKey(_ key: String, slot: Int) -> AdvisoryLockKey { AdvisoryLockKey(name: "\(key)#\(slot)") }

    /// Takes a free concurrency slot of `key` (one of `slots`) on `connection`, waiting with
    /// backoff while all are held; returns the slot.
    public static func takeSlot(_ connection: PostgresConnection, key: String, slots: Int) async throws -> Int {
        let keys = slotKeys(key, slots: slots)
        var polls = 0
        while true {
            try Task.checkCancellation()
            if let slot = try await AdvisoryLock.takeFirstFree(keys, from: Int.random(in: 0..<slots), on: connection) {
                return slot
            }
            polls += 1
            try await Task.sleep(
                for: RetryBackoff.delay(
                    attempt: polls, base: .milliseconds(20), cap: .milliseconds(500), jitter: 0.5...1))
        }
    }

    /// Takes a free slot of `key` now, trying from `offset`; nil when all `slots` are held.
    public static func tryTakeSlot(
        _ connection: PostgresConnection, key: String, slots: Int, offset: Int = 0
    ) async throws -> Int? {
        try await AdvisoryLock.takeFirstFree(slotKeys(key, slots: slots), from: offset, on: connection)
    }

    public static func releaseSlot(_ connection: PostgresConnection, key: String, slot: Int) async {
        _ = try? await AdvisoryLock.unlock(slotKey(key, slot: slot), on: connection)
    }
}

/// The gate of one run: its task, attempt and group, on the run's connection. A class: the
/// runner calls it through an existential on every model call, and a struct was copied on
/// each of those calls.
final class RunGate: ModelGate {
    let limits: FleetLimits
    let connection: PostgresConnection
    let taskKey: TaskKey
    let attempt: Int
    /// The task's group (`source.group_column`), e.g. its workspace id.
    let group: String?
    /// Whether `bridge.model_calls` exists (migration 0055); spend is recorded only then.
    let recordsSpend: Bool
    let progress: ProgressReporter?
    /// Where a durable run takes its spend to send with its next write (nil: send at once).
    let riders: RiderQueue?
    /// The sections every call reads, copied once per run (`config` for the rest).
    let modelLimits: LimitsMapping?
    let budgets: BudgetMapping?
    var config: MappingConfig { limits.config }

    init(
        limits: FleetLimits, connection: PostgresConnection, taskKey: TaskKey, attempt: Int, group: String?,
        recordsSpend: Bool, progress: ProgressReporter?, riders: RiderQueue? = nil
    ) {
        self.limits = limits
        self.connection = connection
        self.taskKey = taskKey
        self.attempt = attempt
        self.group = group
        self.recordsSpend = recordsSpend
        self.progress = progress
        self.riders = riders
        self.modelLimits = limits.config.limits
        self.budgets = limits.config.budgets
    }

    func needsTokenEstimate(model: String) -> Bool { modelLimits?.models[model]?.tokensPerMinute != nil }

    func acquire(_ request: ModelRequest, estimatedTokens: Int) async throws -> GatePass {
        let model = request.agent.model
        do {
            try await checkBudget()
            guard let l = modelLimits else { return GatePass(model: model, estimatedTokens: estimatedTokens) }
            let limit = l.models[model] ?? ModelLimit()
            var token: [String: JSONValue] = [:]
            // Hosted tools (web_search, …) run inside the model call: their slots are held for it.
            var hosted: [JSONValue] = []
            var modelSlot: Int?
            do {
                for t in request.hostedTools.map(\.type) where l.tools[t] != nil {
                    let slot = try await FleetLimits.takeSlot(
                        connection, key: FleetLimits.lockKey(tool: t), slots: l.tools[t] ?? 1)
                    hosted.append(["tool": .string(t), "slot": .number(Double(slot))])
                }
                if let n = limit.concurrency {
                    modelSlot = try await FleetLimits.takeSlot(
                        connection, key: FleetLimits.lockKey(model: model), slots: n)
                }
                token["stripe"] = .number(
                    Double(try await takeRate(model: model, limit: limit, tokens: estimatedTokens)))
            } catch {
                // Nothing taken may stay held by this (pooled) connection.
                if let modelSlot {
                    await FleetLimits.releaseSlot(connection, key: FleetLimits.lockKey(model: model), slot: modelSlot)
                }
                await releaseHosted(hosted)
                throw error
            }
            token["hosted"] = .array(hosted)
            if let modelSlot { token["slot"] = .number(Double(modelSlot)) }
            return GatePass(model: model, estimatedTokens: estimatedTokens, token: .object(token))
        } catch let e as ModelProviderError {
            throw e
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw ModelProviderError("fleet limits: \(error)", retriable: true, failureType: .infrastructureError)
        }
    }

    /// Waits until a stripe of the model's buckets grants the call; returns the stripe.
    private func takeRate(model: String, limit: ModelLimit, tokens: Int) async throws -> Int {
        let n = FleetLimits.stripes(limit)
        let requestInterval = limit.requestsPerMinute.map { 60 * Double(n) / $0 } ?? 0
        let tokenInterval = limit.tokensPerMinute.map { 60 * Double(n) / $0 } ?? 0
        var stripe = Int.random(in: 0..<n)
        var tried = 0
        while true {
            try Task.checkCancellation()
            let row = try await connection.query(
                """
                SELECT bridge.take_rate(\(model), \(stripe)::int, \(requestInterval)::float8, \(tokenInterval)::float8,
                                        \(Double(tokens))::float8, \(limits.burst.inSeconds)::float8) AS wait
                """
            ).first
            let wait = row?.double("wait") ?? 0
            if wait <= 0 { return stripe }
            tried += 1
            if tried < n {
                stripe = (stripe + 1) % n  // another stripe may be on schedule
                continue
            }
            tried = 0
            try await Task.sleep(for: .milliseconds(Int(min(wait, 5) * 1000 * Double.random(in: 1...1.2)) + 1))
        }
    }

    private func releaseHosted(_ held: [JSONValue]) async {
        for h in held {
            if let t = h["tool"]?.stringValue, let slot = h["slot"]?.intValue {
                await FleetLimits.releaseSlot(connection, key: FleetLimits.lockKey(tool: t), slot: slot)
            }
        }
    }

    func finish(_ pass: GatePass, request: ModelRequest, response: ModelResponse?) async {
        let model = pass.model
        if let slot = pass.token["slot"]?.intValue {
            await FleetLimits.releaseSlot(connection, key: FleetLimits.lockKey(model: model), slot: slot)
        }
        await releaseHosted(pass.token["hosted"]?.arrayValue ?? [])
        guard let response else { return }
        // Settle the token reservation with what the call used.
        if let stripe = pass.token["stripe"]?.intValue, let l = modelLimits?.models[model],
            let tpm = l.tokensPerMinute
        {
            let delta =
                Double(response.usage.totalTokens - pass.estimatedTokens) * 60 * Double(FleetLimits.stripes(l)) / tpm
            if delta != 0 {
                _ = try? await connection.query(
                    """
                    UPDATE bridge.rate_buckets SET token_tat = token_tat + \(delta)::float8 * interval '1 second'
                    WHERE model = \(model) AND stripe = \(stripe)::int
                    """)
            }
        }
        guard recordsSpend else { return }
        let u = response.usage
        let usd = response.cost?.usd
        if let usd { BridgeMetrics.modelCost(model: model, group: group ?? "", usd: usd) }
        let spend = ModelCallSpend(
            taskKey: taskKey, attempt: attempt, group: group, agent: request.agent.name, model: model,
            inputTokens: u.inputTokens, cachedTokens: u.cachedTokens, outputTokens: u.outputTokens, usd: usd)
        // A durable run's next journal write (or its finishing transaction) carries the spend,
        // in the round trip it makes anyway. Not when the total is written back to the
        // application's row, which needs it at once.
        if let riders, budgets?.spentColumn == nil {
            riders.ride(spend)
            return
        }
        do {
            let spent = try await connection.query(
                ModelCallSpend.with([spend], then: "SELECT spent FROM spend_groups")
            ).first?.double("spent")
            if let spent, let group, let b = budgets, let column = b.spentColumn {
                let types = config.columnTypes
                _ = try await connection.query(
                    """
                    UPDATE \(identifier: b.table) SET \(identifier: column) =
                        coalesce(\(identifier: column), '{}'::jsonb) || jsonb_build_object('used', \(spent)::float8)
                    WHERE \(identifier: b.key) = \(group)\(types.cast(b.table, b.key))
                    """)
            }
        } catch {
            progress?.log("could not record the spend of a \(model) call of task \(taskKey): \(error)")
        }
    }

    func rateLimited(_ pass: GatePass, for wait: Duration) async {
        let wait = min(max(wait, .milliseconds(50)), .seconds(300))
        let seconds = wait.inSeconds
        if modelLimits != nil {
            _ = try? await connection.query(
                """
                WITH blocked AS (
                    UPDATE bridge.rate_buckets SET blocked_until = greatest(blocked_until, now() + \(seconds)::float8 * interval '1 second')
                    WHERE model = \(pass.model) RETURNING 1
                )
                INSERT INTO bridge.rate_buckets (model, stripe, blocked_until)
                SELECT \(pass.model), 0, now() + \(seconds)::float8 * interval '1 second' WHERE NOT EXISTS (SELECT 1 FROM blocked)
                ON CONFLICT (model, stripe) DO UPDATE SET blocked_until = excluded.blocked_until
                """)
        }
        try? await Task.sleep(for: wait * Double.random(in: 1...1.1))
    }

    // MARK: Budgets

    /// Throws `BudgetExceeded` when the task's group has spent its budget: the run stops before
    /// this model call. A limit that is NULL means no limit.
    private func checkBudget() async throws {
        guard let b = budgets, let group else { return }
        let state = try await BudgetQueries.state(connection, config: config, budget: b, group: group)
        guard let max = state.limit, state.spent >= max else { return }
        throw ModelProviderError(
            "budget exceeded for \(config.source.groupColumn ?? "group") \(group): spent \(BudgetQueries.usd(state.spent)) of \(BudgetQueries.usd(max)) (\(b.table).\(b.limit))",
            retriable: b.onExceeded == .hold, failureType: .budgetExceeded)
    }
}

/// One model call's spend: its `bridge.model_calls` row, added to its group's total in
/// `bridge.group_spend`. Held as values (a durable run sends them with its next write) and
/// turned into SQL once, when sent.
struct ModelCallSpend: Sendable, Equatable {
    var taskKey: TaskKey
    var attempt: Int
    var group: String?
    var agent: String
    var model: String
    var inputTokens: Int
    var cachedTokens: Int
    var outputTokens: Int
    /// nil: the model has no price (unknown, never zero).
    var usd: Double?

    /// `spend_calls AS (…), spend_groups AS (…)`: the CTE list of a WITH that inserts the
    /// calls' rows (at least one) and adds them to their groups' totals (`spend_groups` returns
    /// each group's new `spent`). The totals are summed from the rows inserted, so several calls
    /// of one group make one upsert of its row. Built in one pass with its binds numbered from
    /// `$1`: placed first, nothing of it is renumbered. With `with`, the list starts with WITH.
    static func ctes(_ calls: [ModelCallSpend], with: Bool = false) -> PostgresQuery {
        // Raw: a keyword written here.
        """
        \(unsafeRaw: with ? "WITH " : "")spend_calls AS (
            INSERT INTO bridge.model_calls (task_key, attempt, group_key, agent, model, input_tokens, cached_tokens,
                                            output_tokens, cost_usd)
            VALUES \(calls.count == 1 ? calls[0].row : PostgresQuery.joined(calls.map(\.row), separator: ", "))
            RETURNING group_key, cost_usd
        ),
        spend_groups AS (
            INSERT INTO bridge.group_spend AS g (group_key, spent_usd, unpriced_calls)
            SELECT group_key, coalesce(sum(cost_usd), 0), count(*) FILTER (WHERE cost_usd IS NULL)
            FROM spend_calls WHERE group_key IS NOT NULL GROUP BY group_key
            ON CONFLICT (group_key) DO UPDATE SET spent_usd = g.spent_usd + excluded.spent_usd,
                unpriced_calls = g.unpriced_calls + excluded.unpriced_calls, updated_at = now()
            RETURNING g.spent_usd::float8 AS spent
        )

        """
    }

    /// `calls`' spend as a statement of its own.
    static func alone(_ calls: [ModelCallSpend]) -> PostgresQuery { with(calls, then: "SELECT 1 AS ok") }

    /// `statement` (which must not start with its own WITH) with `calls`' spend as the
    /// data-modifying CTEs in front of it; only `statement`'s binds are renumbered.
    static func with(_ calls: [ModelCallSpend], then statement: PostgresQuery) -> PostgresQuery {
        var out = ctes(calls, with: true)
        out.append(statement)
        return out
    }

    /// The call's `VALUES` row.
    private var row: PostgresQuery {
        """
        (\(taskKey), \(attempt)::int, \(group), \(agent), \(model), \(inputTokens)::bigint, \(cachedTokens)::bigint,
         \(outputTokens)::bigint, \(usd)::numeric)
        """
    }
}

/// The budget statements (a group's limit and spend; the groups on hold).
public enum BudgetQueries {
    public struct State: Sendable {
        public var limit: Double?
        public var spent: Double
    }

    public static func usd(_ v: Double) -> String {
        let cents = (v * 10000).rounded() / 10000
        return "$\(cents)"
    }

    /// The group's limit (the application's expression over its row; NULL: none) and what
    /// bridge recorded as spent.
    static func state(
        _ c: PostgresConnection, config: MappingConfig, budget b: BudgetMapping,
        group: String
    ) async throws -> State {
        // Raw: `budgets.limit` is the application's SQL expression over its row, written in the
        // mappings like a SQL tool's query (`mappings check` prepares it); never a value.
        let row = try await c.query(
            """
            SELECT (SELECT (\(unsafeRaw: b.limit))::float8 FROM \(identifier: b.table)
                    WHERE \(identifier: b.key) = \(group)\(config.columnTypes.cast(b.table, b.key))) AS lim,
                   coalesce((SELECT spent_usd::float8 FROM bridge.group_spend WHERE group_key = \(group)), 0) AS spent
            """
        ).first
        return State(limit: row?.double("lim"), spent: row?.double("spent") ?? 0)
    }

    /// The groups whose spend reached their limit (`on_exceeded: hold`): claims skip their
    /// tasks until the application raises the limit. Reads the (small) spend table and the
    /// budget rows by key.
    public static func heldGroupsQuery(_ config: MappingConfig, budget b: BudgetMapping) -> PostgresQuery {
        // Raw: `budgets.limit` is the application's SQL expression (see `state`).
        return """
            SELECT s.group_key AS g FROM bridge.group_spend AS s
            JOIN \(identifier: b.table) AS b ON b.\(identifier: b.key) = s.group_key\(config.columnTypes.cast(b.table, b.key))
            WHERE s.spent_usd >= (SELECT (\(unsafeRaw: b.limit))::numeric FROM \(identifier: b.table) AS r
                                  WHERE r.\(identifier: b.key) = b.\(identifier: b.key))
            """
    }
}

/// Function tools with a fleet-wide concurrency limit (`limits.tools`): each call holds one of
/// the tool's advisory-lock slots on the run's connection while it runs.
struct LimitedTools: ToolExecutor {
    let inner: any ToolExecutor
    let limits: [String: Int]
    let connection: PostgresConnection

    func execute(_ tool: ToolSpec, arguments: JSONValue, context: ToolContext) async throws -> String {
        guard let n = limits[tool.name] else {
            return try await inner.execute(tool, arguments: arguments, context: context)
        }
        let key = FleetLimits.lockKey(tool: tool.name)
        let slot: Int
        do {
            slot = try await FleetLimits.takeSlot(connection, key: key, slots: n)
        } catch is CancellationError {
            throw CancellationError()
        } catch {
            throw ToolFailure("fleet limits: cannot take a slot of tool \(tool.name): \(error)")
        }
        do {
            let out = try await inner.execute(tool, arguments: arguments, context: context)
            await FleetLimits.releaseSlot(connection, key: key, slot: slot)
            return out
        } catch {
            await FleetLimits.releaseSlot(connection, key: key, slot: slot)
            throw error
        }
    }
}

/// MCP tools with a fleet-wide concurrency limit (`limits.tools`, by the tool's name as the
/// model sees it): the same advisory-lock slots as function tools, held for the call.
struct LimitedMCP: MCPToolSource {
    let inner: any MCPToolSource
    let limits: [String: Int]
    let connection: PostgresConnection

    func tools(server: String) async throws(MCPError) -> [MCPTool] { try await inner.tools(server: server) }

    func usesStructuredContent(server: String) -> Bool { inner.usesStructuredContent(server: server) }

    func call(server: String, tool: String, arguments: JSONValue) async throws(MCPError) -> MCPCallResult {
        try await limited(tool) { () throws(MCPError) in
            try await inner.call(server: server, tool: tool, arguments: arguments)
        }
    }

    func call(server: String, tool: String, arguments: JSONValue, meta: JSONValue) async throws(MCPError)
        -> MCPCallResult
    {
        try await limited(tool) { () throws(MCPError) in
            try await inner.call(server: server, tool: tool, arguments: arguments, meta: meta)
        }
    }

    private func limited(
        _ tool: String, _ body: () async throws(MCPError) -> MCPCallResult
    ) async throws(MCPError) -> MCPCallResult {
        guard let n = limits[tool] else { return try await body() }
        let key = FleetLimits.lockKey(tool: tool)
        let slot: Int
        do {
            slot = try await FleetLimits.takeSlot(connection, key: key, slots: n)
        } catch {
            // Cancelled while waiting, or the database is gone: the call did not start.
            throw .unavailable("fleet limits: cannot take a slot of tool \(tool): \(error)")
        }
        let result: Result<MCPCallResult, MCPError>
        do { result = .success(try await body()) } catch { result = .failure(error) }
        await FleetLimits.releaseSlot(connection, key: key, slot: slot)
        return try result.get()
    }
}
