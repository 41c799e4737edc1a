import BridgeCore
import BridgeMapping
import Foundation
import Synchronization

/// The cost of one model call: USD from the mappings' `pricing`, or unknown when the model has
/// no price (never counted as zero).
public enum ModelCost: Sendable, Equatable {
    case usd(Double)
    case unknown

    /// A span's `cost_usd`: the number, or null when unknown.
    public var json: JSONValue {
        switch self {
        case .usd(let v): .number(v)
        case .unknown: .null
        }
    }

    public var usd: Double? { if case .usd(let v) = self { v } else { nil } }

    /// The cost of `usage` on `model` under `pricing`.
    public static func of(_ usage: Usage, model: String, pricing: Pricing) -> ModelCost {
        pricing.cost(
            model: model, inputTokens: usage.inputTokens, cachedTokens: usage.cachedTokens,
            outputTokens: usage.outputTokens
        ).map(ModelCost.usd) ?? .unknown
    }
}

/// A run's model spend so far: the sum of its priced calls and how many calls had no price.
public final class CostTally: Sendable {
    private struct Sums {
        var total = 0.0
        var unknown = 0
        var calls = 0
    }
    private let sums = Mutex(Sums())

    public init() {}

    public func add(_ cost: ModelCost) {
        sums.withLock {
            $0.calls += 1
            switch cost {
            case .usd(let v): $0.total += v
            case .unknown: $0.unknown += 1
            }
        }
    }

    /// The run's cost in USD; nil when a call's cost was unknown (the sum would understate it).
    public var usd: Double? { sums.withLock { $0.unknown > 0 ? nil : $0.total } }

    /// `{cost_usd, cost_unpriced_calls}` for the execution row's usage (only when priced calls
    /// were made or some were unknown).
    public var json: [String: JSONValue] {
        var o: [String: JSONValue] = [:]
        note(into: &o)
        return o
    }

    /// Sets `json`'s fields in `usage` (the execution row's), in place.
    public func note(into usage: inout [String: JSONValue]) {
        sums.withLock { s in
            guard s.calls > 0 else { return }
            usage["cost_usd"] = s.unknown > 0 ? .null : .number(s.total)
            if s.unknown > 0 { usage["cost_unpriced_calls"] = .number(Double(s.unknown)) }
        }
    }
}

/// Capacity granted for one model call (a fleet-wide rate and concurrency grant).
@MemberwiseInit
public struct GatePass: Sendable {
    public var model: String
    public var estimatedTokens: Int
    /// Opaque to the runner: what the gate needs to settle or release it.
    public var token: JSONValue = .null
}

/// What stands between a run and its model calls: fleet-wide limits, budgets and spend
/// records (the worker implements it on PostgreSQL).
public protocol ModelGate: Sendable {
    /// Waits for capacity for a call of `request` (its model's rate and concurrency limits);
    /// throws a `ModelProviderError` with a `failureType` when the call must not happen (the
    /// group's budget is spent).
    func acquire(_ request: ModelRequest, estimatedTokens: Int) async throws -> GatePass
    /// The call ended: settle the token estimate with the actual usage, record the spend, and
    /// free the concurrency slot. `response` is nil when the call failed.
    func finish(_ pass: GatePass, request: ModelRequest, response: ModelResponse?) async
    /// The provider answered 429: every worker waits `wait` before calling `model` again.
    func rateLimited(_ pass: GatePass, for wait: Duration) async
    /// Whether `acquire` uses the token estimate for `model` (a tokens-per-minute limit):
    /// estimating serialises the whole request, so it is skipped when nothing reads it.
    func needsTokenEstimate(model: String) -> Bool
}

extension ModelGate {
    public func needsTokenEstimate(model: String) -> Bool { true }
}

/// A `ModelProvider` that prices every call (`ModelResponse.cost`, from `pricing`) and passes
/// it through a `ModelGate`. A 429 from the provider is not a failure of the task: the gate
/// makes the whole fleet wait for the reset, and the call is made again.
public struct MeteredModel: ModelProvider {
    public let inner: any ModelProvider
    public let pricing: Pricing
    public let gate: (any ModelGate)?
    public let tally: CostTally

    public init(
        inner: any ModelProvider, pricing: Pricing, gate: (any ModelGate)? = nil, tally: CostTally = CostTally()
    ) {
        self.inner = inner
        self.pricing = pricing
        self.gate = gate
        self.tally = tally
    }

    public var spanKind: ModelSpanKind { inner.spanKind }
    public func spanKind(for agent: AgentSpec) -> ModelSpanKind { inner.spanKind(for: agent) }
    public func spanInput(for request: ModelRequest) -> [JSONValue] { inner.spanInput(for: request) }

    public func respond(_ request: ModelRequest) async throws -> ModelResponse {
        guard let gate else {
            var response = try await inner.respond(request)
            price(&response, request)
            return response
        }
        let estimate = gate.needsTokenEstimate(model: request.agent.model) ? Self.estimatedTokens(request) : 0
        while true {
            try Task.checkCancellation()
            let pass = try await gate.acquire(request, estimatedTokens: estimate)
            do {
                var response = try await inner.respond(request)
                price(&response, request)
                await gate.finish(pass, request: request, response: response)
                return response
            } catch let e as ModelProviderError where e.statusCode == 429 {
                await gate.finish(pass, request: request, response: nil)
                await gate.rateLimited(pass, for: e.rateLimitReset ?? e.retryAfter ?? .seconds(1))
            } catch {
                await gate.finish(pass, request: request, response: nil)
                throw error
            }
        }
    }

    private func price(_ response: inout ModelResponse, _ request: ModelRequest) {
        guard pricing.isConfigured else { return }
        let cost = ModelCost.of(response.usage, model: request.agent.model, pricing: pricing)
        response.cost = cost
        tally.add(cost)
    }

    /// The tokens a call is expected to use, reserved before it (settled after): about a token
    /// per 4 bytes of instructions, history and tool schemas, plus the output cap
    /// (`max_output_tokens`/`max_tokens`, else 1,024).
    public static func estimatedTokens(_ request: ModelRequest) -> Int {
        var bytes = request.agent.instructions.utf8.count
        for item in request.input { bytes += item.json.compact.utf8.count }
        for t in request.functionTools { bytes += t.parameters.compact.utf8.count + t.description.utf8.count }
        let settings = request.agent.modelSettings
        let output = (settings["max_output_tokens"] ?? settings["max_tokens"])?.intValue ?? 1_024
        return bytes / 4 + max(0, output)
    }
}
