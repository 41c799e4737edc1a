import ArgumentParser
import BridgeMigrate

extension Bridge.Migrate {
    /// `bridge migrate status`.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show applied, pending, drifted, failed and baseline migrations.",
            discussion: """
                Read-only. Exit status: 0 up to date, 3 migrations pending, 1 an applied file changed (drift) or a \
                run failed part-way (see `bridge migrate repair`), 2 bad input or unreachable database.
                """
        )

        @OptionGroup var shared: MigrateOptionsGroup

        func run() async throws {
            try await runMigrate(json: shared.json) { try await Migrator(options: try shared.options()).status() }
        }
    }
}
