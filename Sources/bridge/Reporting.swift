import ArgumentParser
import BridgeCore
import Foundation

/// A usage problem found by a command itself (exit 2).
struct UsageError: InputError {
    var message: String
    init(_ message: String) { self.message = message }
}

/// Runs a command body; a `BridgeError` is printed as `bridge: error: …` on stderr and ends the
/// process with its exit status (1 for any other error).
func runReportingErrors(_ body: () async throws -> Void) async throws {
    do {
        try await body()
    } catch let exit as ExitCode {
        throw exit
    } catch let error as any BridgeError {
        FileHandle.standardError.write(Data("bridge: error: \(error.description)\n".utf8))
        throw ExitCode(error.exitStatus.rawValue)
    } catch {
        FileHandle.standardError.write(Data("bridge: error: \(error)\n".utf8))
        throw ExitCode(ExitStatus.failed.rawValue)
    }
}
