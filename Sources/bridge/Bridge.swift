import ArgumentParser

@main
struct Bridge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bridge",
        abstract: "Trace database-driven agent runs in the OpenAI Agents SDK's format.",
        subcommands: [Migrate.self, Exec.self, Mappings.self, Verify.self, Trace.self]
    )
}
