import BridgeCore
import Foundation

/// Standard output written from a thread of its own: a reader that stops reading (`| less`,
/// a full pipe) blocks this thread, never Swift's cooperative pool. Used by the commands that
/// stream (`bridge top`, `bridge trace tail --follow`); each write goes out at once, unbuffered.
actor StandardOutput {
    static let shared = StandardOutput()
    private let executor = ThreadExecutor(name: "bridge-stdout")
    nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    func write(_ text: String) {
        FileHandle.standardOutput.write(Data(text.utf8))
    }
}

/// Writes a file named on the command line (a report, a page); one that cannot be written is a
/// usage problem (exit 2).
func writeOutputFile(_ text: String, to path: String) async throws {
    do { try await FileIO.write(text, to: path) } catch {
        throw UsageError("cannot write \(path): \(error.localizedDescription)")
    }
}
