import BridgeCore
import BridgeTraceModel
import FoundationEssentials

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Appends traces and spans to a JSONL file in the SDK's export format (`--trace-file PATH`).
///
/// `bridge exec` and `bridge export` use it as the `file` exporter (see the `TraceExporter`
/// conformance below): it is fed from the ledger by an `ExportPump`, which records each
/// delivery. It can still be used directly as a `SpanSink` (a trace line when a run starts,
/// then a span line as each span ends), which records nothing. Each line (or batch) goes out
/// through an `O_APPEND` descriptor, so concurrent writers never interleave within a line.
///
/// `write(2)` can block (a slow or network disk, a FIFO nobody reads), so the actor runs on a
/// thread of its own (`ThreadExecutor`, as `PostgresConnection` does for libpq), never on Swift's
/// cooperative pool.
public actor FileExporter: SpanSink {
    public nonisolated let path: String
    private let fd: Int32
    private let executor = ThreadExecutor(name: "bridge-file")
    public nonisolated var unownedExecutor: UnownedSerialExecutor { executor.asUnownedSerialExecutor() }

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw FileExporterError(message: "cannot open trace file \(path): \(String(cString: strerror(errno)))")
        }
        self.fd = fd
    }

    deinit {
        close(fd)
        executor.shutdown()
    }

    /// Writes one JSON value as a line.
    public func writeLine(_ value: JSONValue) throws {
        try writeText(value.compact + "\n")
    }

    /// Appends `text` with as few `write(2)` calls as the kernel allows.
    func writeText(_ text: String) throws {
        let bytes = Array(text.utf8)
        var offset = 0
        while offset < bytes.count {
            let n = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw FileExporterError(message: "cannot write trace file \(path): \(String(cString: strerror(errno)))")
            }
            offset += n
        }
    }

    public func traceStarted(_ trace: TraceRecord, taskId: TaskKey?, at: Date) async throws {
        try writeLine(trace.exportJSON)
    }

    public func spanEnded(_ span: SpanRecord) async throws {
        try writeLine(span.exportJSON)
    }
}

public struct FileExporterError: InputError, Sendable {
    public var message: String
}

/// The `file` exporter (`--trace-file PATH`): like the other exporters it reads the ledger
/// through an `ExportPump` and records each delivery, so a span the process did not get to
/// write (a crash, a full disk) is written by the next `bridge exec --trace-file` or
/// `bridge export --trace-file` instead of going missing. A batch is appended as one buffer;
/// a run killed between writing and recording writes that batch again (readers deduplicate by
/// `id`). Trace lines come before the lines of their spans.
extension FileExporter: TraceExporter {
    public nonisolated var name: String { "file" }
    public nonisolated var target: String { path }
    public nonisolated var batchSize: Int { 512 }

    public func send(_ batch: ExportBatch) async -> ExportResult {
        var text = ""
        for t in batch.traces { text += t.exportJSON.compact + "\n" }
        for s in batch.spans { text += s.record.exportJSON.compact + "\n" }
        do {
            try writeText(text)
            return .delivered()
        } catch {
            return .fatal(reason: "\(error)")
        }
    }
}
