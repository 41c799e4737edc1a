import BridgeCore

/// A model's price in USD per 1M tokens (`pricing.<model>`). Cached input tokens have their
/// own price (`cached_input`, default: the input price); reasoning tokens are output tokens.
public struct ModelPrice: Sendable, Equatable {
    public var input: Double
    public var cachedInput: Double
    public var output: Double

    public init(input: Double, cachedInput: Double? = nil, output: Double) {
        self.input = input
        self.cachedInput = cachedInput ?? input
        self.output = output
    }

    /// The cost of one call in USD. `inputTokens` includes the cached ones (as the APIs report
    /// them): those are charged at `cachedInput`, the rest at `input`.
    public func cost(inputTokens: Int, cachedTokens: Int, outputTokens: Int) -> Double {
        let cached = max(0, min(cachedTokens, inputTokens))
        let fresh = max(0, inputTokens - cached)
        return (Double(fresh) * input + Double(cached) * cachedInput + Double(max(0, outputTokens)) * output)
            / 1_000_000
    }
}

/// The `pricing` section: one price per model name.
@MemberwiseInit
public struct Pricing: Sendable, Equatable {
    public var models: [String: ModelPrice] = [:]
    /// Where the section was written (nil: no `pricing` section).
    public var origin: MappingLocation? = nil

    /// Whether costs are computed at all (a `pricing` section exists).
    public var isConfigured: Bool { origin != nil }

    /// The cost of a call of `model` in USD; nil when the model has no price (unknown, never zero).
    public func cost(model: String, inputTokens: Int, cachedTokens: Int, outputTokens: Int) -> Double? {
        models[model]?.cost(inputTokens: inputTokens, cachedTokens: cachedTokens, outputTokens: outputTokens)
    }
}

/// Fleet-wide limits of one model (`limits.models.<model>`), shared by every worker of the
/// database. nil: not limited.
@MemberwiseInit
public struct ModelLimit: Sendable, Equatable {
    public var requestsPerMinute: Double? = nil
    public var tokensPerMinute: Double? = nil
    public var concurrency: Int? = nil
}

/// The `limits` section.
public struct LimitsMapping: Sendable, Equatable {
    public var models: [String: ModelLimit] = [:]
    /// Concurrency per tool name, fleet-wide.
    public var tools: [String: Int] = [:]
    /// `fairness.group`: the task column whose values share claims in turn.
    public var fairnessGroup: String?
    public var origin: MappingLocation = .unknown
}

/// The `budgets` section: the application's own budget per group (the reference schema's
/// `workspaces.budget` `{used, max_budget}`), compared with what bridge recorded as spent.
public struct BudgetMapping: Sendable, Equatable {
    public enum OnExceeded: String, Sendable, Equatable, CaseIterable { case hold, fail }
    /// The table holding one budget per group (e.g. `workspaces`).
    public var table: String
    /// Its key column, equal to the task's `source.group_column`.
    public var key: String = "id"
    /// A read-only SQL expression over the row giving the limit in USD (NULL: no limit).
    public var limit: String
    /// Where bridge writes back `{used: …}` (a jsonb column), when set.
    public var spentColumn: String?
    public var onExceeded: OnExceeded = .hold
    public var origin: MappingLocation = .unknown
}

/// Checks of the spend sections that are warnings, not errors (`bridge mappings check`).
public enum SpendChecks {
    /// With a `pricing` section, each agent whose model has no price: its calls' cost will be
    /// unknown (never zero).
    public static func warnings(_ config: MappingConfig) -> [MappingIssue] {
        guard let origin = config.pricing.origin else { return [] }
        var seen: Set<String> = []
        var out: [MappingIssue] = []
        for a in config.agents where config.pricing.models[a.model] == nil && !seen.contains(a.model) {
            seen.insert(a.model)
            var msg =
                "warning: model '\(a.model)' (agent '\(a.name)') has no price in 'pricing' (at \(origin)); its calls' cost is recorded as unknown"
            if let near = nearest(a.model, in: Array(config.pricing.models.keys).sorted()) {
                msg += " (did you mean '\(near)'?)"
            }
            out.append(MappingIssue(config.location(a.origin, "model"), msg))
        }
        return out
    }
}
