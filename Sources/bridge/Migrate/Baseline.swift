import ArgumentParser
import BridgeMigrate

extension Bridge.Migrate {
    /// `bridge migrate baseline VERSION`.
    struct Baseline: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Record files up to VERSION as applied without running them.",
            discussion: """
                Adopts a database that already has those changes: each file with a version up to VERSION that \
                is not yet in history is recorded with status 'baseline' and its current checksum.
                """
        )

        @OptionGroup var shared: MigrateOptionsGroup

        @Argument(help: "The last version to record, e.g. 2 or 0002.")
        var version: Int64

        func run() async throws {
            try await runMigrate(json: shared.json) {
                try await Migrator(options: try shared.options()).baseline(version: version)
            }
        }
    }
}
