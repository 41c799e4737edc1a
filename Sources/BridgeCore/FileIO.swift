import FoundationEssentials

/// Whole-file reads and writes for async code (`bridge trace show --html`, `bridge verify
/// --output`, `--spans` files): they run on a thread of their own (`ThreadExecutor`, as libpq and
/// libcurl calls do), so a slow or network disk never blocks Swift's cooperative pool.
public actor FileIO {
    public static let shared = FileIO()
    private let executor = ThreadExecutor(name: "bridge-file-io")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    /// Runs `body`, which may block on the file system, on this actor's thread.
    public func run<T: Sendable, E: Error>(_ body: @Sendable () throws(E) -> T) throws(E) -> T {
        try body()
    }

    /// The contents of `path`, or nil when it cannot be read.
    public static func read(_ path: String) async -> Data? {
        await shared.run { FileManager.default.contents(atPath: path) }
    }

    /// Writes `text` to `path`, replacing what was there.
    public static func write(_ text: String, to path: String) async throws {
        try await shared.run { try Data(text.utf8).write(to: URL(fileURLWithPath: path)) }
    }
}
