import BridgeTestSupport
import Foundation
import Testing

/// `examples/` is the project's own copy of the reference fixtures (the quick start and the tests
/// load it, and a fresh clone may have no `../shared`). Where the shared fixtures are beside the
/// checkout, as in CI, the copies must be byte for byte the same, so they cannot drift apart.
@Suite struct ExamplesFixtureTests {
    @Test(arguments: ["reference-schema.sql", "reference-seed.sql"])
    func examplesMatchTheSharedFixture(name: String) throws {
        let shared = TestDatabase.projectRoot.deletingLastPathComponent()
            .appendingPathComponent("shared/fixtures").appendingPathComponent(name)
        guard FileManager.default.fileExists(atPath: shared.path) else { return }
        let ours = try Data(contentsOf: URL(fileURLWithPath: TestDatabase.fixture(name)))
        let theirs = try Data(contentsOf: shared)
        #expect(ours == theirs, "examples/\(name) differs from ../shared/fixtures/\(name): copy it over")
    }
}
