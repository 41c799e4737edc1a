import ArgumentParser

extension ArgumentHelp {
    /// The help of `--mappings`, the directory of YAML mappings that most commands read; `role`
    /// says what this command takes from them.
    static func mappings(_ role: String? = nil) -> ArgumentHelp {
        ArgumentHelp("Directory of *.yaml mappings\(role.map { " (\($0))" } ?? "").", valueName: "dir")
    }
}
