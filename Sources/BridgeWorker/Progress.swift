import Foundation
import Synchronization

/// Progress output for long work: a live line on a terminal, plain log lines otherwise.
///
/// The command owns the process's streams: it says where the text goes (`write`; `bridge`
/// writes to standard error, so standard output stays machine-readable), whether that is a
/// terminal, and the prefix of the command's own lines (`bridge exec: `). Libraries only call
/// `status`, `log` and `update`; they never write to a stream or name the command.
public final class ProgressReporter: Sendable {
    private let isTTY: Bool
    private let quiet: Bool
    private let prefix: String
    private let write: @Sendable (String) -> Void
    /// The live line drawn last; held while writing, so that lines never interleave.
    private let lastLine = Mutex("")

    /// - Parameters:
    ///   - isTTY: whether `write` reaches a terminal (then `update` draws a live line).
    ///   - prefix: put before `status` lines and the live line (e.g. `bridge exec: `).
    ///   - write: receives the text, newlines and terminal control sequences included.
    public init(
        quiet: Bool = false, isTTY: Bool = false, prefix: String = "",
        write: @escaping @Sendable (String) -> Void
    ) {
        self.quiet = quiet
        self.isTTY = isTTY
        self.prefix = prefix
        self.write = write
    }

    /// A reporter that drops everything.
    public static func silent() -> ProgressReporter { ProgressReporter(quiet: true) { _ in } }

    /// Whether `update` draws a live line (a terminal, not quiet).
    public var isLive: Bool { isTTY && !quiet }

    /// Replaces the live line (TTY) or does nothing (logs get `log` lines instead).
    public func update(_ line: String) {
        guard isTTY, !quiet else { return }
        lastLine.withLock {
            $0 = prefix + line
            write("\r\u{1B}[2K" + $0)
        }
    }

    /// A permanent line about one item (a task, a lease), as given; clears the live line first
    /// on a TTY and redraws it after.
    public func log(_ line: String) {
        guard !quiet else { return }
        lastLine.withLock { lastLine in
            let clear = isTTY && !lastLine.isEmpty ? "\r\u{1B}[2K" : ""
            write(clear + line + "\n" + (isTTY ? lastLine : ""))
        }
    }

    /// A permanent line about the command as a whole (shutdown, the database lost), after the
    /// command's prefix.
    public func status(_ line: String) {
        log(prefix + line)
    }

    /// A `status` line when there is no live line (not a TTY); on a TTY the live line says it.
    public func statusWhenNotLive(_ line: String) {
        if !isLive { status(line) }
    }

    /// Ends the live line.
    public func finish() {
        guard isTTY, !quiet else { return }
        lastLine.withLock {
            if !$0.isEmpty { write("\r\u{1B}[2K") }
            $0 = ""
        }
    }
}
