import Foundation

/// Progress output for long work: a live line on a terminal, plain log lines otherwise.
/// Everything goes to standard error so standard output stays machine-readable.
public final class ProgressReporter: @unchecked Sendable {
    // @unchecked Sendable: all state is guarded by `lock`.
    private let lock = NSLock()
    private let isTTY: Bool
    private let quiet: Bool
    private var lastLine = ""

    public init(quiet: Bool = false, isTTY: Bool = isatty(STDERR_FILENO) == 1) {
        self.quiet = quiet
        self.isTTY = isTTY
    }

    /// Whether `update` draws a live line (a terminal, not quiet).
    public var isLive: Bool { isTTY && !quiet }

    /// Replaces the live line (TTY) or does nothing (logs get `log` lines instead).
    public func update(_ line: String) {
        guard isTTY, !quiet else { return }
        lock.lock(); defer { lock.unlock() }
        lastLine = line
        FileHandle.standardError.write(Data(("\r\u{1B}[2K" + line).utf8))
    }

    /// A permanent line (clears the live line first on a TTY).
    public func log(_ line: String) {
        guard !quiet else { return }
        lock.lock(); defer { lock.unlock() }
        let prefix = isTTY && !lastLine.isEmpty ? "\r\u{1B}[2K" : ""
        FileHandle.standardError.write(Data((prefix + line + "\n").utf8))
        if isTTY, !lastLine.isEmpty { FileHandle.standardError.write(Data(lastLine.utf8)) }
    }

    /// Ends the live line.
    public func finish() {
        guard isTTY, !quiet else { return }
        lock.lock(); defer { lock.unlock() }
        if !lastLine.isEmpty { FileHandle.standardError.write(Data("\r\u{1B}[2K".utf8)) }
        lastLine = ""
    }
}
