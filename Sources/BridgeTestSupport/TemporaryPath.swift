import Foundation

/// Unique names in the temporary directory, for the files and folders a test makes (the test
/// removes them when it is done with them).
public enum TemporaryPath {
    /// `<tmp>/<prefix>-<uuid><suffix>`, not created.
    public static func unique(_ prefix: String, suffix: String = "") -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("\(prefix)-\(UUID().uuidString)\(suffix)").path
    }

    /// A new empty folder `<tmp>/<prefix>-<uuid>`.
    public static func directory(_ prefix: String) throws -> URL {
        let dir = URL(fileURLWithPath: unique(prefix))
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }
}
