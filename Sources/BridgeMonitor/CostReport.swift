import BridgeCore
import BridgePostgres
import Foundation

/// `bridge cost`: model spend from `bridge.model_calls` (migration 0055), grouped by
/// workspace (the task's group), agent, model or task, since a time. Calls whose model had no
/// price count as unpriced: their cost is unknown, never zero.
public enum CostReport {
    public enum Dimension: String, Sendable, CaseIterable {
        case workspace, agent, model, task
        var column: String {
            switch self {
            case .workspace: "group_key"
            case .agent: "agent"
            case .model: "model"
            case .task: "task_key"
            }
        }
    }

    public struct Row: Sendable, Equatable {
        public var key: String?
        public var calls: Int
        public var inputTokens: Int
        public var cachedTokens: Int
        public var outputTokens: Int
        /// The priced calls' sum.
        public var usd: Double
        /// Calls whose model had no price (the row's real cost is more than `usd`).
        public var unpricedCalls: Int

        var json: JSONValue {
            [
                "key": key.map(JSONValue.string) ?? .null, "calls": .number(Double(calls)),
                "input_tokens": .number(Double(inputTokens)), "cached_input_tokens": .number(Double(cachedTokens)),
                "output_tokens": .number(Double(outputTokens)),
                "cost_usd": unpricedCalls > 0 && usd == 0 ? .null : .number(usd),
                "unpriced_calls": .number(Double(unpricedCalls)),
            ]
        }
    }

    /// One statement over the calls since `since` (by the `created_at` index).
    public static func query(by dimension: Dimension, since: Date) -> PostgresQuery {
        """
        SELECT \(identifier: dimension.column) AS k, count(*) AS calls, sum(input_tokens) AS input,
               sum(cached_tokens) AS cached, sum(output_tokens) AS output, coalesce(sum(cost_usd), 0)::float8 AS usd,
               count(*) FILTER (WHERE cost_usd IS NULL) AS unpriced
        FROM bridge.model_calls WHERE created_at >= \(since)::timestamptz
        GROUP BY 1 ORDER BY 6 DESC, 1
        """
    }

    public static func read(_ c: PostgresConnection, by dimension: Dimension, since: Date) async throws -> [Row] {
        // The key is NULL for calls without one (no group, say); a token sum is NULL when no
        // call of the row reported that count, which adds up to 0.
        try await c.query(query(by: dimension, since: since)).map { r in
            Row(
                key: try r.optional(String.self, "k"), calls: try r.decode(Int.self, "calls"),
                inputTokens: try r.optional(Int.self, "input") ?? 0,
                cachedTokens: try r.optional(Int.self, "cached") ?? 0,
                outputTokens: try r.optional(Int.self, "output") ?? 0, usd: try r.decode(Double.self, "usd"),
                unpricedCalls: try r.decode(Int.self, "unpriced"))
        }
    }

    static func total(_ rows: [Row]) -> Row {
        rows.reduce(
            Row(key: "total", calls: 0, inputTokens: 0, cachedTokens: 0, outputTokens: 0, usd: 0, unpricedCalls: 0)
        ) {
            Row(
                key: "total", calls: $0.calls + $1.calls, inputTokens: $0.inputTokens + $1.inputTokens,
                cachedTokens: $0.cachedTokens + $1.cachedTokens, outputTokens: $0.outputTokens + $1.outputTokens,
                usd: $0.usd + $1.usd, unpricedCalls: $0.unpricedCalls + $1.unpricedCalls)
        }
    }

    public static func json(_ rows: [Row], by dimension: Dimension, since: String) -> JSONValue {
        [
            "by": .string(dimension.rawValue), "since": .string(since), "rows": .array(rows.map(\.json)),
            "total": total(rows).json,
        ]
    }

    /// A table: the key, calls, tokens and USD (`+N unpriced` when some calls had no price).
    public static func render(_ rows: [Row], by dimension: Dimension) -> String {
        func usd(_ r: Row) -> String {
            let v = "$" + String(format: "%.4f", r.usd)
            return r.unpricedCalls > 0 ? v + " +\(r.unpricedCalls) unpriced" : v
        }
        let header = [dimension.rawValue.uppercased(), "CALLS", "INPUT", "CACHED", "OUTPUT", "COST"]
        let body = (rows + [total(rows)]).map { r in
            [
                r.key ?? "(none)", String(r.calls), String(r.inputTokens), String(r.cachedTokens),
                String(r.outputTokens), usd(r),
            ]
        }
        let widths = header.indices.map { i in ([header[i]] + body.map { $0[i] }).map(\.count).max() ?? 0 }
        func line(_ cells: [String]) -> String {
            cells.enumerated().map { i, c in
                i == 0
                    ? c.padding(toLength: widths[i], withPad: " ", startingAt: 0)
                    : String(repeating: " ", count: widths[i] - c.count) + c
            }.joined(separator: "  ")
        }
        return ([line(header)] + body.map(line)).joined(separator: "\n") + "\n"
    }
}
