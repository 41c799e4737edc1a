import ArgumentParser
import BridgeMigrate

extension Bridge.Migrate {
    /// `bridge migrate repair`.
    struct Repair: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Clear failed runs and accept new checksums of edited files.",
            discussion: """
                Deletes history rows of runs that failed part-way (the file then runs again from its first \
                statement) and records the current checksum of applied files that were deliberately edited. \
                Prints every change it makes.
                """
        )

        @OptionGroup var shared: MigrateOptionsGroup

        func run() async throws {
            try await runMigrate(json: shared.json) { try await Migrator(options: try shared.options()).repair() }
        }
    }
}
