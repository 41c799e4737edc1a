import ArgumentParser
import BridgeMigrate

extension Bridge.Migrate {
    /// `bridge migrate up` (the default).
    struct Up: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "up",
            abstract: "Apply pending migrations (the default subcommand).",
            discussion: """
                Takes a session advisory lock (pg_try_advisory_lock, polled with backoff up to --lock-wait; a \
                waiting run names the backend pid that holds it), re-reads history under the lock, refuses on \
                drift, out-of-order files or lint errors, then applies each pending file. A run that waited for \
                another finds nothing left to do and exits 0.
                """
        )

        @OptionGroup var shared: MigrateOptionsGroup

        @Option(help: .duration("How long to wait for another run's lock."))
        var lockWait: String = "60s"

        @Option(help: "Retries after a lock timeout or deadlock.")
        var lockRetries: Int = 10

        @Flag(help: "Apply files even when lint finds errors.")
        var allowLint = false

        func validate() throws {
            guard lockRetries >= 0 else { throw ValidationError("--lock-retries must be 0 or more") }
        }

        func run() async throws {
            try await runMigrate(json: shared.json) {
                var options = try shared.options()
                options.lockWaitSeconds = Double(try MigrateOptions.parseDuration(lockWait)) / 1000
                options.lockRetries = lockRetries
                options.allowLint = allowLint
                return try await Migrator(options: options).up()
            }
        }
    }
}
