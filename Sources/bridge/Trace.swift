import ArgumentParser

extension Bridge {
    /// `bridge trace`: look at stored traces.
    struct Trace: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Look at stored traces.",
            subcommands: [Show.self, Tail.self]
        )
    }
}
