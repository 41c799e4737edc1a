import Foundation

/// Retry delays: exponential with jitter, never shorter than what the model asked for. The one
/// backoff of bridge: task retries and MCP server restarts use it.
public enum RetryBackoff {
    /// Attempt 1 failed → about `base` seconds, attempt 2 → 2×base, … capped at `cap`; the
    /// delay is drawn uniformly from its upper half ("equal jitter"), so workers that failed
    /// together do not retry together. A `Retry-After` from the model is a lower bound.
    public static func delay(attempt: Int, base: Double, cap: Double, retryAfter: Double? = nil,
                             random: Double = Double.random(in: 0...1)) -> Double {
        let exponential = min(cap, base * pow(2, Double(max(0, attempt - 1))))
        let jittered = exponential / 2 + exponential / 2 * random
        return max(jittered, retryAfter ?? 0)
    }
}
