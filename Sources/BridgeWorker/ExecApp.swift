import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgePostgres
import BridgeRunner
import BridgeTraceModel
import BridgeTracing
import FoundationEssentials

/// A configuration problem found before any task is touched (exit 2).
public struct ExecSetupError: InputError {
    public var message: String
    public init(_ message: String) { self.message = message }
}

/// Everything `bridge exec` needs, validated up front: the mappings (statically and against
/// the live database), the connection, and the ledger tables created by `bridge migrate`.
public struct ExecApp: Sendable {
    public let config: MappingConfig
    public let connectionConfig: ConnectionConfig
    let environment: Environment
    /// Bounds on every HTTP request of the run (model calls, http tools, exporters).
    public var httpLimits = HTTPLimits()

    /// Every HTTP request has a connect timeout, a stall limit and a total deadline; a request
    /// that runs into one fails as a timeout, which is retried like a 5xx.
    public struct HTTPLimits: Sendable {
        /// Establishing a connection (TCP + TLS). `--http-connect-timeout`.
        public var connect: Duration = .seconds(10)
        /// The longest time without a byte in either direction (a server that never answers,
        /// or stops mid-answer). `--http-stall-timeout`.
        public var stall: Duration = .seconds(300)
        /// The stall window of streamed model calls: the longest time without progress between
        /// events. Tighter than `stall`, because a streaming model sends events as it works, so
        /// silence means a dead stream rather than a slow model. `--http-stall-timeout` sets both.
        public var streamStall: Duration = .seconds(60)
        /// Whether model calls stream (server-sent events). `--no-stream` turns it off.
        public var stream = true
        /// Bytes per second a response must keep up over the stall window: a server that
        /// trickles slower than this fails as a timeout after `stall`, not after the total
        /// deadline. `--http-min-rate`.
        public var minimumRate: Int = 64
        /// The whole of one model call attempt, however slowly bytes trickle in (the OpenAI
        /// SDKs' 600 s). `--model-timeout`. Exporters use 60 s (OpenAI) and 30 s (OTLP); http
        /// tools their `timeout_ms`.
        public var modelTimeout: Duration = .seconds(600)

        public init() {}

        func clientConfiguration(concurrency: Int = 1) -> HTTPClient.Configuration {
            HTTPClient.Configuration(
                timeout: .init(connect: connect, read: stall, minimumRate: minimumRate),
                maxConnectionsPerHost: max(8, concurrency), maxCachedConnections: max(32, 2 * concurrency))
        }
    }

    /// Loads and validates the mappings, then checks them against the database. Throws a
    /// `BridgeError` with exit status 2 before anything is written.
    ///
    /// The mapped columns' real types are read here, once, so every hot-path statement binds
    /// values with the column's type (see `ColumnTypes`); `taskKeys` (`--task`) must be values
    /// of the key's type.
    public static func prepare(
        mappingsDirectory: String, connection: ConnectionConfig,
        environment: Environment, taskKeys: [TaskKey] = []
    ) async throws -> ExecApp {
        let loaded = try MappingLoader.load(directory: mappingsDirectory)
        let types: ColumnTypes = try await PostgresConnection.withConnection(withSessionLimits(connection)) { conn in
            let config = loaded
            // The ledger comes from `bridge migrate`; say so rather than listing missing columns.
            guard try await conn.ledgerHas([.spans]) else {
                throw ExecSetupError(
                    "bridge.spans does not exist in \(connection.redacted): run `bridge migrate` first")
            }
            let issues = await MappingValidator.checkLive(config, connection: conn)
            if !issues.isEmpty { throw MappingErrors(issues) }
            guard try await TaskStore(config: config).hasLeaseColumns(on: conn) else {
                throw ExecSetupError(
                    "\(config.source.table) has no lease columns (\(TaskStore.Lease.all.joined(separator: ", "))): run `bridge migrate` first (migrations/0007_task_leases.sql)"
                )
            }
            if config.approvals != nil, try await !ApprovalStore(config: config).isMigrated(on: conn) {
                throw ExecSetupError(
                    "the mappings have an 'approvals' section, but bridge.run_states or \(config.source.table).\(ApprovalStore.waitingColumn) is missing: run `bridge migrate` first (migrations/0020_approvals.sql)"
                )
            }
            if let s = config.sessions, s.table == nil, try await !conn.ledgerHas([.agentSessions, .agentMessages]) {
                throw ExecSetupError(
                    "the mappings' 'sessions' section names no table, but bridge.agent_sessions or bridge.agent_messages is missing: run `bridge migrate` first (migrations/0072_agent_sessions.sql)"
                )
            }
            if FleetLimits(config: config).isActive {
                let row = try await conn.query(
                    """
                    SELECT to_regclass('bridge.model_calls') IS NOT NULL AS spend,
                           to_regprocedure('bridge.take_rate(text,integer,double precision,double precision,double precision,double precision)') IS NOT NULL AS rate
                    """
                ).first
                guard row?["spend"] == "t", config.limits == nil || row?["rate"] == "t" else {
                    throw ExecSetupError(
                        "the mappings have 'pricing', 'limits' or 'budgets', but bridge.model_calls or bridge.take_rate is missing: run `bridge migrate` first (migrations/0055_spend.sql, 0056_rate_limits.sql)"
                    )
                }
            }
            let types = try await ColumnTypes.load(for: config, connection: conn)
            try await checkKeys(taskKeys, config: config, types: types, connection: conn)
            return types
        }
        return ExecApp(
            config: loaded.with(columnTypes: types), connectionConfig: Self.withSessionLimits(connection),
            environment: environment)
    }

    /// With fleet-wide `limits`, a 429 goes to the fleet's buckets (every worker waits for its
    /// reset) instead of being retried by this process alone.
    /// The model `choice` names: the offline model, or the OpenAI API over `client` with the
    /// `--http-*` limits and streaming setting.
    func modelProvider(_ choice: ModelChoice, client: HTTPClient, retry: RetryPolicy = RetryPolicy()) throws
        -> any ModelProvider
    {
        switch choice {
        case .offline(let latency): return OfflineModel(latency: latency)
        case .openAI(let api):
            return try ModelProviders.make(
                environment: environment, defaultAPI: api, client: client, retry: retry,
                requestTimeout: httpLimits.modelTimeout, stream: httpLimits.stream,
                streamStallTimeout: httpLimits.streamStall)
        }
    }

    static func retryPolicy(_ config: MappingConfig) -> RetryPolicy {
        var policy = RetryPolicy()
        policy.rateLimitsShared = config.limits != nil
        return policy
    }

    /// Each `--task` value must be a value of the key column's type (a malformed uuid would
    /// otherwise fail deep inside a claim): exit 2 naming the value, the column and its type.
    static func checkKeys(
        _ keys: [TaskKey], config: MappingConfig, types: ColumnTypes,
        connection conn: PostgresConnection
    ) async throws {
        let s = config.source
        guard let type = types.type(s.table, s.key), type != "text" else { return }
        for key in keys {
            let probe: PostgresQuery = "SELECT \(key)\(types.cast(s.table, s.key)) AS k"
            guard let e = await failure(of: probe, on: conn) else { continue }
            if e.sqlState?.hasPrefix("22") == true {
                throw ExecSetupError("task key \(key): not a valid \(type) for \(s.table).\(s.key) (\(e.message))")
            }
            throw e
        }
    }

    /// The error `query` fails with, or nil.
    static func failure(of query: PostgresQuery, on conn: PostgresConnection) async -> PostgresError? {
        do {
            _ = try await conn.query(query)
            return nil
        } catch {
            return error
        }
    }

    /// Every exec connection runs with timeouts, so no statement, lock wait or forgotten
    /// transaction of ours can hold up the application that owns the tables. Settings the
    /// caller gave already are kept.
    public static let sessionLimits: [(String, String)] = [
        ("statement_timeout", "30s"),
        ("lock_timeout", "5s"),
        ("idle_in_transaction_session_timeout", "60s"),
    ]

    static func withSessionLimits(_ config: ConnectionConfig) -> ConnectionConfig {
        var c = config
        for (name, value) in sessionLimits where !c.sessionSettings.contains(where: { $0.0 == name }) {
            c.sessionSettings.append((name, value))
        }
        return c
    }

    /// One JSON line per task's run spec. Reads only: nothing is claimed or written.
    public func dryRun(keys: [TaskKey], limit: Int) async throws -> [String] {
        try await PostgresConnection.withConnection(connectionConfig) { conn in
            try await specLines(conn, keys: keys, limit: limit)
        }
    }

    private func specLines(_ conn: PostgresConnection, keys: [TaskKey], limit: Int) async throws -> [String] {
        let store = TaskStore(config: config)
        let bridge = DatabaseToSDKBridge(config: config)
        let rows = try await store.peek(on: conn, keys: keys, limit: limit)
        try requireAll(keys, in: rows)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        var lines: [String] = []
        for row in rows {
            // The attempt the next claim will make (claims count attempts in bridge_attempts).
            let attempt = (row[TaskStore.Lease.attempts]?.intValue ?? 0) + 1
            let (agents, edges) = try await bridge.loadAgentsAndEdges(for: row, connection: conn)
            let spec = try bridge.runSpec(task: row, agentRows: agents, handoffEdges: edges, attempt: attempt)
            lines.append(String(decoding: try encoder.encode(spec), as: UTF8.self))
        }
        return lines
    }

    /// Throws (exit 2) naming every `--task` id that matches no row, in any status. Reads only.
    public func requireTasks(_ keys: [TaskKey]) async throws {
        guard !keys.isEmpty else { return }
        try await PostgresConnection.withConnection(connectionConfig) { conn in
            try requireAll(keys, in: try await TaskStore(config: config).peek(on: conn, keys: keys, limit: keys.count))
        }
    }

    private func requireAll(_ keys: [TaskKey], in rows: [Row]) throws {
        guard !keys.isEmpty else { return }
        let source = config.source
        let found = Set(rows.compactMap(source.taskKey(of:)))
        let missing = keys.filter { !found.contains($0) }
        if !missing.isEmpty {
            throw ExecSetupError(
                "no task with \(source.table).\(source.key) = \(missing.map(\.text).joined(separator: ", "))")
        }
    }

    /// Which model the runs call.
    public enum ModelChoice: Sendable {
        /// The built-in deterministic offline model, answering after `latency` (for tests and
        /// benchmarks; zero by default).
        case offline(latency: Duration = .zero)
        /// OpenAI (or an OpenAI-compatible server at OPENAI_BASE_URL) with this default API;
        /// agents may choose their own with `model_api`.
        case openAI(ModelAPI)
    }

    /// Checks that the model choice can serve every agent (hosted tools need the Responses
    /// API; a key is needed for api.openai.com). Throws a `BridgeError` with exit status 2.
    public func validate(model: ModelChoice) throws {
        guard case .openAI(let api) = model else { return }
        try ModelRouting.validate(config, defaultAPI: api)
        if let why = ModelProviders.missingKeyExplanation(environment: environment) { throw ExecSetupError(why) }
    }

    /// Drains pending tasks with the given model and returns the summary.
    ///
    /// Exporters (`openai`, `otlp` from the environment; `file` for `traceFile`) run
    /// concurrently, reading the ledger as spans land, and get up to `flushTimeout` after the
    /// last task to deliver the rest; what is left stays in the ledger for `bridge export` and
    /// is reported in `summary.exports`. `shutdown` stops the worker gracefully (the command
    /// requests it on SIGTERM/SIGINT); the exporters are flushed after the drain.
    public func execute(
        options: WorkerOptions, model choice: ModelChoice, traceFile: String?,
        progress: ProgressReporter, flushTimeout: Duration = .seconds(10),
        shutdown: ShutdownRequest? = nil
    ) async throws -> WorkerSummary {
        let cc = connectionConfig
        let connect: @Sendable () async throws -> PostgresConnection = { try await PostgresConnection.connect(cc) }
        let env = environment
        // One connection per concurrently running task: an HTTP/1.1 server (a local or
        // OpenAI-compatible one) serves one request per connection, so the default cap of 8
        // would hold `--concurrency 50` to 8 model calls in flight.
        let httpClient = HTTPClient(configuration: httpLimits.clientConfiguration(concurrency: options.concurrency))
        defer { httpClient.shutdown() }
        let model = try modelProvider(choice, client: httpClient, retry: Self.retryPolicy(config))
        // One connection per MCP server for the whole worker, started and initialized before
        // anything is claimed (one that cannot start is a configuration error, exit 2; one that
        // crashes later is restarted); stopped (children included) when the drain ends, however
        // it ends.
        let mcpServers = try await Self.startMCPServers(
            config, environment: env, client: httpClient, progress: progress)
        let (session, secrets): (ExportSession, [String])
        do {
            (session, secrets) = try startExports(traceFile: traceFile, client: httpClient, progress: progress)
        } catch {
            await mcpServers.shutdown()
            throw error
        }
        let worker = Worker(
            config: config, connect: connect, model: model,
            tools: { conn in
                CompositeToolExecutor(
                    sql: SQLToolExecutor(connection: { conn }),
                    http: HTTPToolExecutor(client: httpClient, environment: env),
                    command: CommandToolExecutor(environment: env))
            },
            progress: progress, options: options, secrets: secrets, mcp: mcpServers)
        shutdown?.onRequest { worker.requestShutdown() }
        var summary: WorkerSummary
        do {
            summary = try await worker.drain()
        } catch {
            await mcpServers.shutdown()
            _ = await session.finish(flushTimeout: flushTimeout)
            throw error
        }
        await mcpServers.shutdown()
        summary.exports = await session.finish(flushTimeout: flushTimeout)
        return summary
    }

    /// The worker's MCP servers, every one that an agent uses started and initialized: throws
    /// `MappingErrors` (exit 2) naming each that cannot be (it exited, could not be started, or
    /// broke the protocol), after stopping the others. One that only timed out may be slow or
    /// loaded: it is reported on `progress`, and its runs start it again (and are retried).
    static func startMCPServers(
        _ config: MappingConfig, environment: Environment, client: HTTPClient,
        progress: ProgressReporter
    ) async throws -> MCPServerPool {
        let pool = MCPServerPool(servers: config.mcpServers, environment: environment, client: client)
        let used = Set(config.agents.flatMap(\.mcpServers))
        let failed = await pool.initializeAll(Array(used))
        var broken: [MappingIssue] = []
        var slow: [MappingIssue] = []
        for server in config.mcpServers {
            guard let error = failed[server.name] else { continue }
            let why = error.description
            let issue = MappingIssue(
                config.location(server.origin),
                why.hasPrefix("MCP server '\(server.name)'") ? why : "MCP server '\(server.name)': \(why)")
            if case .timeout = error { slow.append(issue) } else { broken.append(issue) }
        }
        guard broken.isEmpty else {
            await pool.shutdown()
            throw MappingErrors(broken)
        }
        for issue in slow { progress.status("\(issue.description); its runs will start it again") }
        return pool
    }

    /// The values that the mappings' HTTP headers take from the environment (`${env:NAME}` in http
    /// tools and Streamable HTTP MCP servers): bearer tokens a tool's output or an error could echo,
    /// redacted like the API keys.
    static func headerSecrets(_ config: MappingConfig, _ env: Environment) -> [String] {
        var templates: [String] = []
        for tool in config.tools { if case .http(let spec) = tool.implementation { templates += spec.headers.values } }
        for server in config.mcpServers {
            if case .streamableHTTP(_, let headers) = server.transport { templates += headers.values }
        }
        return templates.flatMap { (try? HTTPToolExecutor.expand($0, header: "", tool: "", environment: env).1) ?? [] }
    }

    /// Starts the exporters the environment enables (`openai`, `otlp`) and `file` for
    /// `traceFile`, reading the ledger as spans land. Returns the session to `finish` and the
    /// secrets (keys, the database password) that must never be recorded.
    func startExports(
        traceFile: String?, client: HTTPClient,
        progress: ProgressReporter
    ) throws -> (ExportSession, secrets: [String]) {
        let cc = connectionConfig
        let env = environment
        let exporters = try ExporterSetup.enabled(environment: env, traceFile: traceFile, client: client)
        let secrets = Secrets.collect(
            connection: cc, environment: env,
            extra: ExporterSetup.secrets(of: exporters) + Self.headerSecrets(config, env))
        let exportOptions = ExportPumpOptions(
            onEvent: { event in
                if case .delivered = event { return }
                progress.status("export: \(event.line)")
            }, secrets: secrets)
        let session = ExportSession.start(
            exporters: exporters, connect: { try await PostgresConnection.connect(cc) },
            options: exportOptions)
        return (session, secrets)
    }

}
