import BridgeWorker
import Dispatch
import Foundation
import Synchronization

/// `bridge exec`'s signal policy, which only the command decides: the first SIGTERM or SIGINT
/// asks the worker to drain (stop claiming, let runs finish within --drain-timeout, release the
/// rest, exit 0); a second one ends the process at once with 128 + the signal number, and the
/// leases cover what was left. The default handlers are ignored so the signals reach the
/// dispatch sources.
final class ShutdownSignals: Sendable {
    private let queue = DispatchQueue(label: "bridge.signals")
    /// The signal sources (set up in init) and how many signals came.
    private let state = Mutex((sources: [any DispatchSourceSignal](), count: 0))

    /// What the policy does with the `count`-th signal `signal`.
    enum Action: Equatable {
        case drain
        case exit(Int32)
    }

    static func action(count: Int, signal: Int32) -> Action {
        count == 1 ? .drain : .exit(128 + signal)
    }

    /// Installs the policy: `request` is asked for at the first signal.
    init(request: ShutdownRequest, log: @escaping @Sendable (String) -> Void) {
        for sig in [SIGTERM, SIGINT] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler { [unowned self] in
                let count = self.state.withLock {
                    $0.count += 1
                    return $0.count
                }
                switch Self.action(count: count, signal: sig) {
                case .drain:
                    request.request()
                case .exit(let status):
                    log("second signal, exiting now; leases cover unfinished tasks")
                    exit(status)
                }
            }
            source.resume()
            state.withLock { $0.sources.append(source) }
        }
    }

    func cancel() {
        state.withLock { for s in $0.sources { s.cancel() } }
    }
}

extension ProgressReporter {
    /// The commands' progress output: standard error (standard output stays machine-readable),
    /// a live line when that is a terminal, the command's name before its own lines.
    static func standardError(quiet: Bool, prefix: String) -> ProgressReporter {
        ProgressReporter(quiet: quiet, isTTY: isatty(STDERR_FILENO) == 1, prefix: prefix) { text in
            FileHandle.standardError.write(Data(text.utf8))
        }
    }
}
