import BridgeCore
import BridgeHTTP
import BridgeMapping
import BridgeRunner
import Testing

/// Prices, costs, limits and the 429 reset headers (issue 21).
@Suite struct SpendTests {
    @Test func costCountsCachedInputAtItsOwnPriceAndUnknownModelsAsUnknown() {
        let pricing = Pricing(
            models: [
                "gpt-4.1": ModelPrice(input: 2, cachedInput: 0.5, output: 8),
                "m": ModelPrice(input: 1, output: 2),
            ], origin: .unknown)
        // 1,000 input of which 400 cached, 100 output: 600 × 2 + 400 × 0.5 + 100 × 8 per 1M.
        let usage = Usage(requests: 1, inputTokens: 1_000, outputTokens: 100, cachedTokens: 400)
        #expect(ModelCost.of(usage, model: "gpt-4.1", pricing: pricing) == .usd(0.0022))
        // Without cached_input, cached tokens cost the input price.
        #expect(ModelCost.of(usage, model: "m", pricing: pricing) == .usd(0.0012))
        #expect(ModelCost.of(usage, model: "gpt-5", pricing: pricing) == .unknown)
        #expect(ModelCost.unknown.json == .null)
        let tally = CostTally()
        tally.add(.usd(0.5))
        #expect(tally.usd == 0.5)
        tally.add(.unknown)
        #expect(tally.usd == nil)
        #expect(tally.json["cost_usd"] == .null && tally.json["cost_unpriced_calls"] == 1)
    }

    @Test func spendSectionsLoadAndBadValuesAreRefusedWhereTheyAre() throws {
        let base = """
            version: 1
            source: {table: tasks, input: "{{task.name}}", group_column: workspace_id}
            results: {result_column: result}
            agents: [{name: A, model: gpt-4.1}]

            """
        let good = try MappingLoader.load(documents: [
            (
                "m.yaml",
                base + """
                    pricing:
                      gpt-4.1: {input: 2, cached_input: 0.5, output: 8}
                    limits:
                      models: {gpt-4.1: {requests_per_minute: 500, tokens_per_minute: 200000, concurrency: 20}}
                      tools: {web_search: {concurrency: 4}}
                      fairness: {group: workspace_id}
                    budgets: {table: workspaces, key: id, limit: "budget->>'max_budget'", spent_column: budget, on_exceeded: fail}
                    """
            )
        ])
        #expect(good.pricing.models["gpt-4.1"] == ModelPrice(input: 2, cachedInput: 0.5, output: 8))
        #expect(
            good.limits?.models["gpt-4.1"]
                == ModelLimit(requestsPerMinute: 500, tokensPerMinute: 200_000, concurrency: 20))
        #expect(good.limits?.tools == ["web_search": 4])
        #expect(good.limits?.fairnessGroup == "workspace_id")
        #expect(good.budgets?.onExceeded == .fail && good.budgets?.spentColumn == "budget")
        #expect(SpendChecks.warnings(good).isEmpty)
        #expect(good.placeholders["tasks_group_column"] == "workspace_id")

        do {
            _ = try MappingLoader.load(documents: [
                (
                    "m.yaml",
                    base + """
                        pricing:
                          gpt-4.1: {input: "2", output: -1}
                        limits:
                          models: {gpt-4.1: {concurrency: 2.5, tokens_per_minute: -3}}
                        budgets: {table: workspaces, limit: "1; DROP TABLE x", on_exceeded: later}
                        """
                )
            ])
            Issue.record("bad values were accepted")
        } catch {
            let text = error.issues.map(\.description)
            #expect(text.contains("m.yaml:6:20: pricing.gpt-4.1.input: expected a number, got a string"), "\(text)")
            #expect(text.contains("m.yaml:6:33: pricing.gpt-4.1.output: must not be negative, got -1"), "\(text)")
            #expect(
                text.contains { $0.contains("limits.models.gpt-4.1.concurrency: must be a whole number") }, "\(text)")
            #expect(
                text.contains {
                    $0.contains("limits.models.gpt-4.1.tokens_per_minute: must be greater than 0, got -3")
                }, "\(text)")
            #expect(text.contains { $0.contains("budgets.limit: the limit must be one SQL expression") }, "\(text)")
            #expect(
                text.contains { $0.contains("budgets.on_exceeded: expected 'hold' or 'fail', got 'later'") }, "\(text)")
        }
    }

    @Test func unpricedModelsAreWarnedAbout() throws {
        let config = try MappingLoader.load(documents: [
            (
                "m.yaml",
                """
                version: 1
                source: {table: tasks, input: "{{task.name}}"}
                results: {result_column: result}
                agents: [{name: A, model: gpt-4.1}, {name: B, model: gpt-4.1-mini}]
                pricing: {gpt-4.1-mini: {input: 0.4, output: 1.6}}
                """
            )
        ])
        let warnings = SpendChecks.warnings(config).map(\.message)
        #expect(warnings.count == 1)
        #expect(warnings.first?.contains("model 'gpt-4.1' (agent 'A') has no price") == true)
    }

    @Test func rateLimitResetHeaders() {
        #expect(RateLimitReset.parse("1s") == .seconds(1))
        #expect(RateLimitReset.parse("6m0s") == .seconds(360))
        #expect(RateLimitReset.parse("20ms") == .milliseconds(20))
        #expect(RateLimitReset.parse("1h2m3.5s") == .milliseconds(3_723_500))
        #expect(RateLimitReset.parse("0.5") == .milliseconds(500))
        #expect(RateLimitReset.parse("soon") == nil)
        #expect(RateLimitReset.parse("1e300") == .seconds(Duration.maximumSeconds))
        let headers: HTTPHeaders = ["x-ratelimit-reset-requests": "200ms", "x-ratelimit-reset-tokens": "1.5s"]
        #expect(RateLimitReset.wait(headers) == .milliseconds(1_500))
        #expect(RateLimitReset.wait(["retry-after": "3"]) == .seconds(3))
        // A server's absurd wait is the longest one, never a trap converting it.
        for (name, value) in [("retry-after", "1e300"), ("retry-after", "inf"), ("retry-after-ms", "1e300")] {
            let headers = HTTPHeaders(dictionaryLiteral: (name, value))
            #expect(headers.retryAfter == .seconds(Duration.maximumSeconds), "\(name): \(value)")
            #expect(RateLimitReset.wait(headers) == .seconds(Duration.maximumSeconds), "\(name): \(value)")
        }
        #expect((["retry-after-ms": "1500"] as HTTPHeaders).retryAfter == .milliseconds(1_500))
    }
}
