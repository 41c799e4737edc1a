import BridgeCore
import Yams

// The spend sections: `pricing`, `limits` and `budgets` (issue 21). Prices and limits are
// numbers ≥ 0 (limits > 0); anything else is an issue at its file:line:column.
extension LoadState {
    /// A finite number ≥ 0 (or > 0 with `positive`), from a YAML integer or float.
    static func number(_ r: YAMLReader, _ node: Node, _ path: String, positive: Bool = false) -> Double? {
        r.record(node, path)
        guard node.tagName == .int || node.tagName == .float, let v = node.float ?? node.int.map(Double.init),
            v.isFinite
        else {
            r.issue(node, path, "expected a number, got \(YAMLReader.kind(node))")
            return nil
        }
        if positive ? v <= 0 : v < 0 {
            r.issue(
                node, path,
                positive
                    ? "must be greater than 0, got \(node.scalar?.string ?? "\(v)")"
                    : "must not be negative, got \(node.scalar?.string ?? "\(v)")")
            return nil
        }
        return v
    }

    static func parsePricing(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> Pricing? {
        r.record(node, "pricing")
        guard case .mapping(let m) = node else {
            r.issue(node, "pricing", "expected a mapping of model names to prices, got \(YAMLReader.kind(node))")
            return nil
        }
        var out = Pricing(origin: origin)
        for (k, v) in m {
            guard let model = k.scalar?.string, !model.isEmpty else {
                r.issue(k, "pricing", "model names must be strings")
                continue
            }
            let path = "pricing.\(model)"
            guard let p = r.map(v, path, Keys.Price.self) else { continue }
            let (input, output, cached) = (p.number(.input), p.number(.output), p.number(.cachedInput))
            if let input, let output, p.node(.cachedInput) == nil || cached != nil {
                out.models[model] = ModelPrice(input: input, cachedInput: cached, output: output)
            }
        }
        return out
    }

    static func parseLimits(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> LimitsMapping? {
        guard let m = r.map(node, "limits", Keys.Limits.self) else { return nil }
        var out = LimitsMapping(origin: origin)
        for (model, l) in limitEntries(r, m.node(.models), "limits.models", "model", Keys.ModelLimit.self) {
            out.models[model] = ModelLimit(
                requestsPerMinute: l.number(.requestsPerMinute), tokensPerMinute: l.number(.tokensPerMinute),
                concurrency: l.node(.concurrency).flatMap { concurrency(r, $0, l.path(.concurrency)) })
        }
        for (tool, l) in limitEntries(r, m.node(.tools), "limits.tools", "tool", Keys.ToolLimit.self) {
            if let c = l.value(.concurrency).flatMap({ concurrency(r, $0, l.path(.concurrency)) }) {
                out.tools[tool] = c
            }
        }
        if let f = m.map(.fairness, Keys.Fairness.self) {
            out.fairnessGroup = f.name(.group)
        }
        return out
    }

    /// The entries of the mapping of `kind` names to limits at `path` (none when `node` is nil),
    /// each read as `Section` (entries whose name is not a string are passed over); an issue
    /// when it is no mapping.
    static func limitEntries<Section: MappingKeySet>(
        _ r: YAMLReader, _ node: Node?, _ path: String, _ kind: String, _ section: Section.Type
    ) -> [(name: String, limit: MapReader<Section>)] {
        guard let node else { return [] }
        r.record(node, path)
        guard case .mapping(let entries) = node else {
            r.issue(node, path, "expected a mapping of \(kind) names to limits, got \(YAMLReader.kind(node))")
            return []
        }
        var out: [(name: String, limit: MapReader<Section>)] = []
        for (k, v) in entries {
            guard let name = k.scalar?.string, !name.isEmpty else { continue }
            if let limit = r.map(v, "\(path).\(name)", section) { out.append((name, limit)) }
        }
        return out
    }

    static func concurrency(_ r: YAMLReader, _ node: Node, _ path: String) -> Int? {
        guard let v = number(r, node, path, positive: true) else { return nil }
        guard v == v.rounded(), v <= 100_000 else {
            r.issue(node, path, "must be a whole number of calls (1 to 100000)")
            return nil
        }
        return Int(v)
    }

    static func parseBudgets(_ r: YAMLReader, _ node: Node, _ origin: MappingLocation) -> BudgetMapping? {
        guard let m = r.map(node, "budgets", Keys.Budgets.self) else { return nil }
        let table = m.name(.table)
        var budget = m.read()
        let limit = m.name(.limit)
        if let n = m.node(.onExceeded), let s = r.string(n, m.path(.onExceeded)) {
            if let v = BudgetMapping.OnExceeded(rawValue: s) {
                budget.onExceeded = v
            } else {
                r.issue(n, m.path(.onExceeded), "expected 'hold' or 'fail', got '\(s)'")
            }
        }
        if let limit, let n = m.node(.limit), let second = ToolStatement.secondStatement(in: "SELECT " + limit) {
            r.issue(
                n, m.path(.limit),
                "the limit must be one SQL expression; a second statement starts at column \(second.column - 7)")
        }
        guard let table, let limit else { return nil }
        budget.table = table
        budget.limit = limit
        budget.origin = origin
        return budget
    }
}

extension MapReader {
    /// The number under `key`, checked against its declaration (`.number(positive:)`).
    func number(_ key: Key) -> Double? {
        guard case .number(let positive) = key.declaration.kind else {
            preconditionFailure("\(path(key)) is not declared a number")
        }
        return value(key).flatMap { LoadState.number(reader, $0, path(key), positive: positive) }
    }
}
