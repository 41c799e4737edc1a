import ArgumentParser
import BridgeCore
import BridgePostgres

/// `--database-url`, shared by every command that connects to PostgreSQL.
struct ConnectionOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "PostgreSQL URL or key=value string. Default: DATABASE_URL, then libpq's PG* variables and .pgpass.",
            valueName: "url"))
    var databaseURL: String?

    /// The resolved connection settings (flag, then DATABASE_URL, then libpq defaults).
    func config(applicationName: String) -> ConnectionConfig {
        ConnectionConfig.resolve(flag: databaseURL, environment: .process, applicationName: applicationName)
    }
}
