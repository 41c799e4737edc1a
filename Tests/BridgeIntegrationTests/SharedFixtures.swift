import BridgeCore
import BridgeHTTP
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

/// Runs `body` with a loopback stand-in answering with `handler` and an HTTP client to call it
/// with; stops both when `body` returns or throws.
func withStandIn<T>(
    answering handler: @escaping TestHTTPServer.Handler, _ body: (TestHTTPServer, HTTPClient) async throws -> T
) async throws -> T {
    let server = try TestHTTPServer(handler: handler)
    defer { server.stop() }
    let client = HTTPClient()
    defer { client.shutdown() }
    return try await body(server, client)
}

/// `withStandIn` with every request answered with `response`.
func withStandIn<T>(always response: TestHTTPResponse, _ body: (TestHTTPServer, HTTPClient) async throws -> T)
    async throws -> T
{
    try await withStandIn(answering: { _ in response }, body)
}
