import ArgumentParser
import BridgeMigrate

extension Bridge.Migrate {
    /// `bridge migrate plan`.
    struct Plan: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print exactly what `bridge migrate` would run, and change nothing.",
            discussion: """
                Shows the session settings, the lock, each pending file's transaction boundaries and every \
                statement with its line number, checked against the live catalog: PostgreSQL version, table \
                sizes, and whether each change is metadata-only, scans, blocks writes or rewrites the table. \
                Lint errors are listed; silence one with `-- bridge:lint-ignore RULE reason` before the statement. \
                The session is read-only and nothing is created, not even the history table. \
                Exits 1 when `up` would refuse (lint errors, drift, out-of-order files).
                """
        )

        @OptionGroup var shared: MigrateOptionsGroup

        @Flag(help: "Plan as `up --allow-lint` would run.")
        var allowLint = false

        func run() async throws {
            try await runMigrate(json: shared.json) {
                var options = try shared.options()
                options.allowLint = allowLint
                return try await Migrator(options: options).plan()
            }
        }
    }
}
