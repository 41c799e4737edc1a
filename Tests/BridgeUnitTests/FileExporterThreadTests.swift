import BridgeCore
import BridgeTraceModel
import BridgeTracing
import Foundation
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// File export blocks in write(2) when the file cannot take more (here: FIFOs nobody reads). It
/// must block its own thread, never Swift's cooperative pool: with more blocked exporters than
/// the pool has threads, other async work still runs, and every byte arrives once the readers
/// drain. Before the exporter ran on a thread of its own, this test hung.
@Suite struct FileExporterThreadTests {
    @Test(.timeLimit(.minutes(3))) func blockedWritesLeaveTheCooperativePoolFree() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bridge-fifo-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let writers = ProcessInfo.processInfo.activeProcessorCount + 2
        let payload = String(repeating: "x", count: 256 << 10)  // more than a pipe holds (64 KiB)
        var readers: [Int32] = []
        var exporters: [FileExporter] = []
        for i in 0..<writers {
            let path = "\(dir)/spans-\(i).jsonl"
            #expect(mkfifo(path, 0o600) == 0)
            let fd = open(path, O_RDONLY | O_NONBLOCK)  // a reader exists, so the writer's open does not wait
            #expect(fd >= 0)
            readers.append(fd)
            exporters.append(try FileExporter(path: path))
        }
        let trace = TraceRecord(
            id: "trace_0123456789abcdef0123456789abcdef", workflowName: "w", groupId: nil,
            metadata: ["big": payload])
        let writes = exporters.map { exporter in
            Task { try await exporter.traceStarted(trace, taskId: nil, at: Date()) }
        }
        // Every exporter is now (or soon) blocked in write(2); the pool must still run this.
        let answer = await Task {
            await Task.yield()
            return 42
        }.value
        #expect(answer == 42)

        // Drain the FIFOs: each write completes and the line arrives whole.
        var received = [Int](repeating: 0, count: writers)
        let expected = trace.exportJSON.compact.utf8.count + 1
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while received.contains(where: { $0 < expected }) {
            var progressed = false
            for (i, fd) in readers.enumerated() where received[i] < expected {
                let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
                if n > 0 {
                    received[i] += n
                    progressed = true
                }
            }
            if !progressed { try await Task.sleep(for: .milliseconds(1)) }
        }
        for w in writes { try await w.value }
        for fd in readers { close(fd) }
        #expect(received == [Int](repeating: expected, count: writers))
    }
}
