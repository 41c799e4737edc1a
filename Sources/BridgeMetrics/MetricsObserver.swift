import BridgeRunner
import FoundationEssentials

/// Counts a run's tool and model calls as they end, then passes every event on unchanged to
/// `next` (the trace recorder). One `toolEnded` is one `function` span, so the tool-call
/// counters match the ledger's function spans; the outcome is `error` exactly when the span
/// carries an error (from the call itself or a later `spanError`).
public actor MetricsObserver: RunObserver {
    let next: any RunObserver

    struct Started {
        var name: String
        var at: Date
        var failed: Bool
    }

    private var tools: [EventID: Started] = [:]
    private var models: [EventID: Started] = [:]

    public init(next: any RunObserver) { self.next = next }

    public func record(_ event: RunEvent) async {
        note(event)
        await next.record(event)
    }

    private func note(_ event: RunEvent) {
        switch event {
        case .toolStarted(let id, _, let name, _, let at):
            tools[id] = Started(name: name, at: at, failed: tools[id]?.failed ?? false)
        case .toolEnded(let id, _, let error, let at):
            guard let s = tools.removeValue(forKey: id) else { return }
            BridgeMetrics.toolCall(
                tool: s.name, outcome: (error != nil || s.failed) ? .error : .ok,
                seconds: at.timeIntervalSince(s.at))
        case .modelStarted(let id, _, _, let model, _, let at):
            models[id] = Started(name: model, at: at, failed: models[id]?.failed ?? false)
        case .modelEnded(let id, let response, let error, let at):
            guard let s = models.removeValue(forKey: id) else { return }
            BridgeMetrics.modelCall(
                model: s.name, status: (error != nil || s.failed || response == nil) ? .error : .ok,
                seconds: at.timeIntervalSince(s.at),
                inputTokens: response?.usage.inputTokens ?? 0, outputTokens: response?.usage.outputTokens ?? 0)
            if let ttft = response?.timeToFirstToken {
                BridgeMetrics.modelTimeToFirstToken(model: s.name, seconds: ttft.inSeconds)
            }
        case .spanError(let id, _):
            tools[id]?.failed = true
            models[id]?.failed = true
        default:
            break
        }
    }
}
