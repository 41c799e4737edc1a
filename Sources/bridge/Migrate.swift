import ArgumentParser
import BridgeCore
import BridgeMapping
import BridgeMigrate
import Foundation

extension Bridge {
    /// `bridge migrate`: safe, live upgrades of an existing PostgreSQL schema.
    struct Migrate: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "migrate",
            abstract: "Apply bridge's schema migrations safely to a live PostgreSQL database.",
            discussion: """
                Migrations are NNNN_name.sql files in --dir (default: migrations/), applied in version order and \
                recorded in bridge.schema_migrations with a SHA-256 checksum.

                Each file runs in one transaction together with its history row, so a failure leaves schema and \
                history untouched. Statements that cannot run in a transaction (CREATE INDEX CONCURRENTLY, VACUUM, \
                ...) or files marked `-- bridge:no-transaction` run statement by statement, recording progress so a \
                re-run resumes safely. Every statement runs under a short lock_timeout and is retried with jittered \
                backoff on lock timeouts and deadlocks, so a queued exclusive lock never stalls the application.

                Exit status: 0 ok, 1 a migration or check failed, 2 bad input or unreachable database, \
                3 migrations pending (status only).

                Reference: docs/migrate.md
                """,
            subcommands: [Up.self, Status.self, Plan.self, Baseline.self, Repair.self],
            defaultSubcommand: Up.self
        )
    }
}

/// Options shared by the migrate subcommands.
struct MigrateOptionsGroup: ParsableArguments {
    @OptionGroup var connection: ConnectionOptions

    @Option(help: ArgumentHelp("The migrations folder.", valueName: "path"))
    var dir: String = "migrations"

    @Option(help: .duration("lock_timeout for every statement, e.g. 3s or 500ms."))
    var lockTimeout: String = "3s"

    @Option(
        name: .customLong("set"), help: ArgumentHelp("Fill ${name} placeholders (repeatable).", valueName: "name=value")
    )
    var assignments: [String] = []

    @Option(
        help: ArgumentHelp(
            "Take placeholder values (tasks_table, executions_table) from these YAML mappings; --set overrides them.",
            valueName: "dir"))
    var mappings: String?

    @Flag(help: "Print machine-readable JSON on stdout.")
    var json = false

    @Flag(help: "Apply pending files older than the newest applied one.")
    var allowOutOfOrder = false

    /// Builds the library options; throws MigrateError for bad values.
    func options() throws -> MigrateOptions {
        var o = MigrateOptions(connection: connection.config(applicationName: "bridge-migrate"))
        o.directory = dir
        o.lockTimeoutMS = try MigrateOptions.parseDuration(lockTimeout)
        var values: [String: String] = [:]
        if let mappings { values = try MappingLoader.load(directory: mappings).placeholders }
        values.merge(try Placeholders.parseAssignments(assignments)) { _, explicit in explicit }
        o.placeholders = values
        o.allowOutOfOrder = allowOutOfOrder
        o.log = { message in FileHandle.standardError.write(Data("bridge: \(message)\n".utf8)) }
        return o
    }
}

/// How a migrate error's remedy is spelled on this command line.
func flag(for remedy: MigrateRemedy) -> String {
    switch remedy {
    case .chooseFolder: "use --dir"
    case .setPlaceholder(let name?): "pass --set \(name)=VALUE"
    case .setPlaceholder(nil): "--set takes name=value"
    case .allowOutOfOrder: "pass --allow-out-of-order"
    case .allowLint: "pass --allow-lint"
    case .waitLonger: "see --lock-wait"
    }
}

/// Runs a migrate action: prints its report (text or JSON) and maps errors to exit codes.
func runMigrate<R: MigrateReport>(json: Bool, _ body: () async throws -> R) async throws {
    do {
        let report = try await body()
        print(json ? report.json : report.text)
        if report.exitStatus != .ok { throw ExitCode(report.exitStatus.rawValue) }
    } catch let error as any BridgeError {
        if json {
            let payload = ["error": error.description, "exit_status": "\(error.exitStatus.rawValue)"]
            let data =
                (try? JSONSerialization.data(withJSONObject: payload, options: [.prettyPrinted, .sortedKeys])) ?? Data()
            print(String(decoding: data, as: UTF8.self))
        }
        // Empty default: no remedy, no hint.
        let hint = (error as? MigrateError)?.remedy.map { " (\(flag(for: $0)))" } ?? ""
        FileHandle.standardError.write(Data("bridge: error: \(error.description)\(hint)\n".utf8))
        throw ExitCode(error.exitStatus.rawValue)
    }
}
