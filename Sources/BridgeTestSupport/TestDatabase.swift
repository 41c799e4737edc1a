import BridgeCore
import BridgePostgres
import Foundation

/// Test helpers shared by the integration and end-to-end suites (not linked into `bridge`).
///
/// Integration tests need `BRIDGE_TEST_DATABASE_URL`, a superuser URL that
/// `scripts/with-postgres.sh` exports. Each test gets its own fresh database, so tests run in
/// parallel without seeing each other's rows.
public enum TestDatabase {
    /// The server URL, or nil when integration tests cannot run here.
    public static var serverURL: String? { Environment.process["BRIDGE_TEST_DATABASE_URL"] }

    /// True when integration tests should run. When `BRIDGE_REQUIRE_DB=1` and no server is
    /// configured, this crashes loudly instead of silently skipping.
    public static var isAvailable: Bool {
        if serverURL != nil { return true }
        if Environment.process["BRIDGE_REQUIRE_DB"] == "1" {
            fatalError("BRIDGE_REQUIRE_DB=1 but BRIDGE_TEST_DATABASE_URL is not set; run scripts/test.sh")
        }
        return false
    }

    /// Creates a new empty database and returns its URL.
    public static func create(prefix: String = "t") async throws -> String {
        guard let server = serverURL else {
            throw PostgresError(kind: .client, message: "BRIDGE_TEST_DATABASE_URL not set")
        }
        let name = "\(prefix)_\(UUID().uuidString.lowercased().replacingOccurrences(of: "-", with: "").prefix(16))"
        let admin = try await PostgresConnection.connect(
            ConnectionConfig(conninfo: server, applicationName: "bridge-tests"))
        try await admin.simpleQuery("CREATE DATABASE \(PostgresQuery.quoteIdentifier(name))")
        await admin.close()
        return url(server, database: name)
    }

    /// Creates a database loaded with the reference schema (and optionally the seed).
    public static func createReference(seed: Bool, workspaces: Int = 3, tasksPerWorkspace: Int = 20) async throws
        -> String
    {
        let url = try await create(prefix: "ref")
        try await runPsql(url: url, file: fixture("reference-schema.sql"))
        if seed {
            try await runPsql(
                url: url, file: fixture("reference-seed.sql"),
                variables: ["workspaces": "\(workspaces)", "tasks_per_workspace": "\(tasksPerWorkspace)"])
        }
        return url
    }

    /// Runs `sql` (one or more statements, no binds) on `url` over a connection of its own.
    public static func execute(_ url: String, _ sql: String) async throws {
        _ = try await rows(url, sql)
    }

    /// The rows `sql` (no binds) returns on `url`, over a connection of its own.
    public static func rows(_ url: String, _ sql: String) async throws -> PostgresRows {
        let c = try await connect(url)
        do {
            let rows = try await c.simpleQuery(sql)
            await c.close()
            return rows
        } catch {
            await c.close()
            throw error
        }
    }

    /// `count(*)` of the rows of `table` where `condition` holds.
    public static func count(_ url: String, _ condition: String, table: String = "tasks") async throws -> Int {
        guard let n = try await rows(url, "SELECT count(*) AS n FROM \(table) WHERE \(condition)").first?.int("n")
        else {
            throw PostgresError(kind: .client, message: "no count of \(table) where \(condition)")
        }
        return n
    }

    /// Adds `n` pending tasks (named `prefix`1…`prefix`n) to the first workspace of a reference
    /// database, adding a workspace first when it has none.
    public static func insertTasks(_ url: String, _ n: Int, prefix: String = "t") async throws {
        try await execute(url, insertTasksSQL(n, prefix: prefix))
    }

    /// The statements of `insertTasks`.
    public static func insertTasksSQL(_ n: Int, prefix: String = "t") -> String {
        """
        INSERT INTO workspaces (name, user_id) SELECT 'w', gen_random_uuid() WHERE NOT EXISTS (SELECT 1 FROM workspaces);
        INSERT INTO tasks (workspace_id, name, status)
        SELECT (SELECT id FROM workspaces LIMIT 1), '\(prefix)' || g, 'pending' FROM generate_series(1, \(n)) g
        """
    }

    /// Opens a connection to `url`.
    public static func connect(_ url: String, applicationName: String = "bridge-tests") async throws
        -> PostgresConnection
    {
        try await PostgresConnection.connect(ConnectionConfig(conninfo: url, applicationName: applicationName))
    }

    /// Replaces the database name in a `postgres://` URL.
    public static func url(_ server: String, database: String) -> String {
        guard var c = URLComponents(string: server) else { return server }
        c.path = "/" + database
        return c.string ?? server
    }

    /// The project's root folder (where Package.swift is).
    public static var projectRoot: URL {
        var dir = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while dir.path != "/" {
            if FileManager.default.fileExists(atPath: dir.appendingPathComponent("Package.swift").path) { return dir }
            dir.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    }

    /// A fresh mappings directory: the shipped bridge.yaml with one tool-less agent, so each run
    /// is one model call (4 spans).
    public static func noopMappings() throws -> String {
        let dir = try TemporaryPath.directory("bridge-noop")
        try FileManager.default.copyItem(
            atPath: projectRoot.appendingPathComponent("mappings/bridge.yaml").path,
            toPath: dir.appendingPathComponent("bridge.yaml").path)
        try """
        version: 1
        agents:
          - name: Project Manager
            match: Project Manager
            instructions: Answer the task.
            model: gpt-4.1
        """.write(to: dir.appendingPathComponent("agents.yaml"), atomically: true, encoding: .utf8)
        return dir.path
    }

    /// A file from the project's copy of the reference fixtures (`examples/`).
    public static func fixture(_ name: String) -> String {
        projectRoot.appendingPathComponent("examples").appendingPathComponent(name).path
    }

    /// Runs `psql -v ON_ERROR_STOP=1 -f file`.
    public static func runPsql(url: String, file: String, variables: [String: String] = [:]) async throws {
        var args = [url, "-X", "-q", "-v", "ON_ERROR_STOP=1"]
        for (k, v) in variables.sorted(by: { $0.key < $1.key }) { args += ["-v", "\(k)=\(v)"] }
        args += ["-f", file]
        let result = try await TestProcess.run("psql", args)
        if result.status != 0 {
            throw PostgresError(kind: .client, message: "psql -f \(file) failed: \(result.stderr)")
        }
    }

    /// Runs `sql` with psql and returns its output, unaligned and tuples only, trimmed.
    public static func psql(_ url: String, _ sql: String) async throws -> String {
        let r = try await TestProcess.run("psql", [url, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        guard r.status == 0 else { throw PostgresError(kind: .client, message: "psql failed: \(r.stderr)") }
        return r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }
}

/// Runs a program and collects its output (for end-to-end tests of the built binary): a thin
/// layer over bridge's own `ChildProcess`, without its supervisor, so that what bridge leaves
/// behind is left for the tests to find.
public enum TestProcess {
    public struct Result: Sendable {
        public var status: Int32
        public var stdout: String
        public var stderr: String
    }

    /// Runs `program` (looked up in PATH unless it has a slash) with `arguments`, in `environment`
    /// (the test process's own when nil), to its end. Blocks: call it off the cooperative pool
    /// (`OffPool`), or call the async `run`.
    public static func run(
        _ program: String, _ arguments: [String], environment: [String: String]? = nil,
        currentDirectory: String? = nil, stdin: String? = nil
    ) throws -> Result {
        let command = try command(program, arguments, environment: environment, currentDirectory: currentDirectory)
        return result(try ChildProcess.runBlocking(command, input: Array((stdin ?? "").utf8), options: options))
    }

    /// `run` without blocking a thread of the cooperative pool.
    public static func run(
        _ program: String, _ arguments: [String], environment: [String: String]? = nil,
        currentDirectory: String? = nil, stdin: String? = nil
    ) async throws -> Result {
        let command = try command(program, arguments, environment: environment, currentDirectory: currentDirectory)
        return result(try await ChildProcess.run(command, input: Array((stdin ?? "").utf8), options: options))
    }

    private static var options: ChildProcess.Options {
        var options = ChildProcess.Options()
        options.supervised = false
        options.threadName = "test-process-io"
        return options
    }

    private static func command(
        _ program: String, _ arguments: [String], environment: [String: String]?, currentDirectory: String?
    ) throws -> ChildProcess.Command {
        let environment = environment ?? ProcessInfo.processInfo.environment
        guard let path = ChildProcess.resolve(program, environment: Environment(environment)) else {
            throw ChildStartError(reason: "\(program): command not found")
        }
        return ChildProcess.Command(
            path: path, argv: [program] + arguments, environment: environment, directory: currentDirectory)
    }

    private static func result(_ outcome: ChildProcess.Outcome) -> Result {
        let status: Int32
        switch outcome.termination {
        case .exit(let code): status = code
        case .signal(let sig): status = sig
        }
        return Result(
            status: status, stdout: String(decoding: outcome.stdout, as: UTF8.self),
            stderr: String(decoding: outcome.stderr, as: UTF8.self))
    }
}
