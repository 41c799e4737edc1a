import ArgumentParser
import BridgeCore
import Foundation

@main
struct Bridge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bridge",
        abstract: "Trace database-driven agent runs in the OpenAI Agents SDK's format.",
        subcommands: [Migrate.self, Exec.self, Mappings.self, Export.self, Verify.self, Trace.self]
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
