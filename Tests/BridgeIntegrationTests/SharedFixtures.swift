import BridgeCore
import BridgeMigrate
import BridgePostgres
import BridgeTestSupport
import Foundation
import Synchronization

/// A new reference database (`seed` as `TestDatabase.createReference` takes it) with the
/// shipped migrations applied.
func migratedReferenceDatabase(seed: Bool, workspaces: Int = 3, tasksPerWorkspace: Int = 20) async throws -> String {
    let url = try await TestDatabase.createReference(
        seed: seed, workspaces: workspaces, tasksPerWorkspace: tasksPerWorkspace)
    var o = MigrateOptions(connection: ConnectionConfig(conninfo: url))
    o.directory = TestDatabase.projectRoot.appendingPathComponent("migrations").path
    _ = try await Migrator(options: o).up()
    return url
}

/// Collects values from concurrent `@Sendable` callbacks (progress, log lines), in order.
final class Collected<Element: Sendable>: Sendable {
    private let storage = Mutex<[Element]>([])
    func append(_ value: Element) { storage.withLock { $0.append(value) } }
    var values: [Element] { storage.withLock { $0 } }
}
