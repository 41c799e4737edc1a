import ArgumentParser
import BridgeCore

/// Every flag that takes a time parses into a `Duration`: a bare number of seconds (`60`, `0.25`)
/// or a number with a unit (`500ms`, `30s`, `2min`, `1h`), through the one parser,
/// `Duration(parsing:)`. The conformance is retroactive on purpose: only the command parses
/// flags, and it owns this one conformance.
// swift-format-ignore: AvoidRetroactiveConformances
extension Duration: @retroactive ExpressibleByArgument {
    public init?(argument: String) { self.init(parsing: argument) }

    /// Defaults show as the seconds a user would type (`60`, `0.25`).
    public var defaultValueDescription: String {
        let s = inSeconds
        return s == s.rounded() ? String(Int(s)) : String(s)
    }
}

extension ArgumentHelp {
    /// The help of a flag that takes a time: its value shows as `<duration>`, whatever the
    /// property is called.
    static func duration(_ abstract: String) -> ArgumentHelp { ArgumentHelp(abstract, valueName: "duration") }
}
