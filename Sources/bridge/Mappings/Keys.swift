import ArgumentParser
import BridgeMapping

extension Bridge.Mappings {
    /// `bridge mappings keys`: every key of the mapping files, from the loader's declarations
    /// (hidden; scripts/gen-mapping-keys.sh writes its Markdown into docs/mappings.md).
    struct Keys: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List every key of the mapping files: type, whether required, default, meaning.",
            shouldDisplay: false
        )

        @Flag(help: "Print the Markdown table of docs/mappings.md.")
        var markdown = false

        func run() {
            if markdown {
                print(MappingKeyTable.markdown(), terminator: "")
                return
            }
            for row in MappingKeyTable.rows {
                let required = row.required == "yes" ? " (required)" : ""
                let value = row.defaultValue.isEmpty ? "" : ", default \(row.defaultValue)"
                print("\(row.path): \(row.kind)\(required)\(value) — \(row.summary)")
            }
        }
    }
}
