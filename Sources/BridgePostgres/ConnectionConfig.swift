import BridgeCore

/// Where and how to connect.
///
/// Resolution order: `--database-url`, then `DATABASE_URL`, then libpq's own defaults
/// (the `PG*` variables, `~/.pgpass`, `PGSSLMODE`/`sslmode`). An empty `conninfo` lets libpq
/// apply its defaults.
public struct ConnectionConfig: Sendable {
    /// A `postgres://` URL or a `key=value` string; empty means libpq defaults.
    public var conninfo: String
    /// Sent as `application_name` so DBAs can see bridge in `pg_stat_activity`.
    public var applicationName: String
    /// Seconds to wait for the connection (libpq `connect_timeout`).
    public var connectTimeout: Int
    /// Session settings applied right after connecting (`SET name = value`).
    public var sessionSettings: [(String, String)]

    public init(
        conninfo: String, applicationName: String = "bridge", connectTimeout: Int = 10,
        sessionSettings: [(String, String)] = []
    ) {
        self.conninfo = conninfo
        self.applicationName = applicationName
        self.connectTimeout = connectTimeout
        self.sessionSettings = sessionSettings
    }

    /// Resolves the connection string from the flag and the environment.
    public static func resolve(flag: String?, environment: Environment, applicationName: String = "bridge")
        -> ConnectionConfig
    {
        if let flag, !flag.isEmpty { return ConnectionConfig(conninfo: flag, applicationName: applicationName) }
        if let url = environment["DATABASE_URL"] {
            return ConnectionConfig(conninfo: url, applicationName: applicationName)
        }
        return ConnectionConfig(conninfo: "", applicationName: applicationName)
    }

    /// The connection string with any password replaced by `***`; safe to print.
    public var redacted: String {
        conninfo.isEmpty ? "(libpq defaults: PG* environment, .pgpass)" : Redaction.connectionString(conninfo)
    }
}
