import ArgumentParser
import BridgeCore
import Foundation

@main
struct Bridge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bridge",
        abstract: "Trace database-driven agent runs in the OpenAI Agents SDK's format.",
        discussion: """
            A typical run against a task table in PostgreSQL:

              bridge migrate           trace columns and bridge's tables, safely
              bridge mappings check    validate mappings/*.yaml against the database
              bridge exec --offline    run pending tasks traced (real model: OPENAI_API_KEY)
              bridge exec --backfill   traces for tasks that ran before bridge
              bridge verify            the tracing checklist, for CI
              bridge top               live view of every worker: tasks, tools, models, export lag
              bridge trace tail -f     spans as they land
              bridge prune --older-than 30d   retention for the ledger

            The database comes from --database-url, else DATABASE_URL, else libpq's PG* variables.

            Exit status: 0 ok; 1 work or checks failed; 2 bad usage, configuration or input \
            (including an unreachable database); 3 migrations pending (migrate status only).
            """,
        subcommands: [
            Migrate.self, Exec.self, Mappings.self, Export.self, Verify.self, Trace.self, Top.self, Cost.self,
            Approvals.self, Approve.self, Reject.self, Prune.self,
        ]
    )

    /// As ArgumentParser's, except that bad usage (unknown flags, failed validation; its exit
    /// code 64) ends with bridge's exit status 2, as documented.
    static func main() async {
        do {
            var command = try parseAsRoot()
            if var async = command as? any AsyncParsableCommand {
                try await async.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(ExitStatus.badInput.rawValue)
            }
            exit(withError: error)
        }
    }
}
