import BridgeCore

/// Where and how to connect.
///
/// Resolution order: `--database-url`, then `DATABASE_URL`, then libpq's own defaults
/// (the `PG*` variables, `~/.pgpass`, `PGSSLMODE`/`sslmode`). An empty `conninfo` lets libpq
/// apply its defaults.
@MemberwiseInit
public struct ConnectionConfig: Sendable {
    /// A `postgres://` URL or a `key=value` string; empty means libpq defaults.
    public var conninfo: String
    /// Sent as `application_name` so DBAs can see bridge in `pg_stat_activity`.
    public var applicationName: String = "bridge"
    /// Seconds to wait for the connection (libpq `connect_timeout`).
    public var connectTimeout: Int = 10
    /// Session settings applied right after connecting (`SET name = value`).
    public var sessionSettings: [(String, String)] = []

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
