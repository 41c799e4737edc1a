import ArgumentParser

extension Bridge {
    /// `bridge mappings`: work with the YAML agent and tool mappings.
    struct Mappings: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Validate the YAML agent and tool mappings.",
            subcommands: [Check.self, Keys.self]
        )
    }
}
