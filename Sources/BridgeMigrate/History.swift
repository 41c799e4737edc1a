import BridgePostgres

/// One row of `bridge.schema_migrations`.
public struct HistoryRow: Sendable, Codable, Equatable {
    public var version: Int64
    public var name: String
    /// The checksum the file had when it ran (or was baselined).
    public var checksum: String
    public var appliedAt: String
    public var appliedBy: String
    public var executionMS: Int
    /// `applied`, `failed` or `baseline` (see `HistoryStatus`).
    public var status: String
    /// For a file run without a transaction: statements completed so far.
    public var statementsDone: Int
    public var statementsTotal: Int
    public var error: String?
}

extension HistoryRow {
    init(row r: PostgresRow) throws(PostgresDecodingError) {
        self.init(
            version: try r.decode(Int64.self, "version"), name: try r.decode(String.self, "name"),
            checksum: try r.decode(String.self, "checksum"), appliedAt: try r.decode(String.self, "applied_at"),
            appliedBy: try r.decode(String.self, "applied_by"), executionMS: try r.decode(Int.self, "execution_ms"),
            status: try r.decode(String.self, "status"), statementsDone: try r.decode(Int.self, "statements_done"),
            statementsTotal: try r.decode(Int.self, "statements_total"), error: try r.optional(String.self, "error"))
    }
}

/// The `status` of a migration history row.
public enum HistoryStatus: String, Sendable, CaseIterable {
    case applied, failed, baseline
}

/// Reads and writes the migration history table, `bridge.schema_migrations`.
enum History {
    static let table = "bridge.schema_migrations"

    /// Idempotent DDL; runs under the migration lock.
    static let createSQL = """
        CREATE SCHEMA IF NOT EXISTS bridge;
        CREATE TABLE IF NOT EXISTS bridge.schema_migrations (
            version          bigint PRIMARY KEY,
            name             text NOT NULL,
            checksum         text NOT NULL,
            applied_at       timestamptz NOT NULL DEFAULT now(),
            applied_by       text NOT NULL DEFAULT current_user,
            execution_ms     bigint NOT NULL DEFAULT 0,
            status           text NOT NULL CHECK (status IN ('applied', 'failed', 'baseline')),
            statements_done  integer NOT NULL DEFAULT 0,
            statements_total integer NOT NULL DEFAULT 0,
            error            text
        )
        """

    /// Whether the history table exists, asked of the catalog without creating anything.
    static func exists(_ conn: isolated PostgresConnection) throws(PostgresError) -> Bool {
        try conn.query("SELECT to_regclass(\(table)) IS NOT NULL AS e").first?.bool("e") ?? false
    }

    static func ensure(_ conn: isolated PostgresConnection) throws(PostgresError) {
        try conn.simpleQuery(createSQL)
    }

    /// Every history row, by version. Every column but `error` is NOT NULL in the table, so a
    /// row that does not read is an error naming its column (a history table changed by hand).
    static func read(_ conn: isolated PostgresConnection) throws(MigrateError) -> [HistoryRow] {
        let rows: PostgresRows
        do {
            rows = try conn.query(
                """
                SELECT version, name, checksum, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS applied_at,
                       applied_by, execution_ms, status, statements_done, statements_total, error
                FROM \(identifier: table) ORDER BY version
                """
            ).from(table)
        } catch { throw .database(error) }
        var out: [HistoryRow] = []
        for r in rows {
            do { out.append(try HistoryRow(row: r)) } catch { throw .historyRow(error) }
        }
        return out
    }

    /// The history rows, or nil when the table does not exist yet (nothing is created).
    static func readIfExists(_ conn: isolated PostgresConnection) throws(MigrateError) -> [HistoryRow]? {
        let exists: Bool
        do { exists = try Self.exists(conn) } catch { throw .database(error) }
        return exists ? try read(conn) : nil
    }

    /// Inserts or replaces the row for `file`.
    static func upsert(
        _ conn: isolated PostgresConnection, file: MigrationFile, status: HistoryStatus, executionMS: Int,
        done: Int, error: String?
    ) throws(PostgresError) {
        let errorValue: PostgresValue = error.map { .text($0) } ?? .null
        try conn.query(
            """
            INSERT INTO \(identifier: table) (version, name, checksum, execution_ms, status, statements_done, statements_total, error)
            VALUES (\(file.version)::bigint, \(file.name), \(file.checksum), \(executionMS)::bigint, \(status.rawValue), \(done)::int,
                    \(file.statements.count)::int, \(errorValue))
            ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, checksum = EXCLUDED.checksum,
                applied_at = now(), applied_by = current_user, execution_ms = EXCLUDED.execution_ms,
                status = EXCLUDED.status, statements_done = EXCLUDED.statements_done,
                statements_total = EXCLUDED.statements_total, error = EXCLUDED.error
            """)
    }
}

/// Where one migration stands, comparing the folder with the history table.
public struct FileState: Sendable, Codable, Equatable {
    /// The state names used in output.
    public enum State: String, Sendable, Codable {
        /// Ran successfully and the file is unchanged.
        case applied
        /// Not run yet.
        case pending
        /// Ran, but the file has changed since.
        case drifted
        /// A run without a transaction stopped part-way.
        case failed
        /// Recorded by `baseline` without running.
        case baseline
        /// In history, but the file is gone from the folder.
        case missing
    }

    public var version: Int64
    /// The file name, or `NNNN_name` from history for a missing file.
    public var file: String
    public var state: State
    /// The history row, when there is one.
    public var history: HistoryRow?
    /// The file's current checksum, when the file exists.
    public var checksum: String?

    /// Compares files and history rows, in version order.
    static func compare(files: [MigrationFile], history: [HistoryRow]) -> [FileState] {
        var byVersion: [Int64: HistoryRow] = [:]
        for h in history { byVersion[h.version] = h }
        var out: [FileState] = []
        for f in files {
            guard let h = byVersion.removeValue(forKey: f.version) else {
                out.append(
                    FileState(version: f.version, file: f.fileName, state: .pending, history: nil, checksum: f.checksum)
                )
                continue
            }
            let state: State
            switch HistoryStatus(rawValue: h.status) {
            case .failed: state = .failed
            case .baseline: state = h.checksum == f.checksum ? .baseline : .drifted
            case .applied, nil: state = h.checksum == f.checksum ? .applied : .drifted
            }
            out.append(FileState(version: f.version, file: f.fileName, state: state, history: h, checksum: f.checksum))
        }
        for h in byVersion.values {
            out.append(
                FileState(
                    version: h.version,
                    file:
                        "\(String(repeating: "0", count: max(0, 4 - String(h.version).count)))\(h.version)_\(h.name).sql",
                    state: .missing,
                    history: h, checksum: nil))
        }
        return out.sorted { $0.version < $1.version }
    }
}
