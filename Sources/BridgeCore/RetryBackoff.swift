import Foundation

/// Retry delays: exponential with jitter, never shorter than what the server asked for. The one
/// backoff of bridge: task retries, model and exporter HTTP retries, migration lock retries,
/// MCP server restarts, the worker's reconnects and idle claim waits all use it.
public enum RetryBackoff {
    /// Attempt 1 failed → about `base` seconds, attempt 2 → 2×base, … capped at `cap`; the
    /// delay is that times a factor drawn uniformly from `jitter` (default [0.5, 1], "equal
    /// jitter"), so workers that failed together do not retry together. A `Retry-After` from
    /// the server is a lower bound.
    public static func delay(
        attempt: Int, base: Double, cap: Double, jitter: ClosedRange<Double> = 0.5...1,
        retryAfter: Double? = nil, random: Double = Double.random(in: 0...1)
    ) -> Double {
        let exponential = min(cap, base * pow(2, Double(min(max(0, attempt - 1), 62))))
        let factor = jitter.lowerBound + (jitter.upperBound - jitter.lowerBound) * random
        return max(exponential * factor, retryAfter ?? 0)
    }

    /// `delay` for callers that count in `Duration`.
    public static func delay(
        attempt: Int, base: Duration, cap: Duration, jitter: ClosedRange<Double> = 0.5...1,
        random: Double = Double.random(in: 0...1)
    ) -> Duration {
        .seconds(delay(attempt: attempt, base: base.inSeconds, cap: cap.inSeconds, jitter: jitter, random: random))
    }
}

extension Duration {
    /// The duration in seconds, fractions included.
    public var inSeconds: Double {
        Double(components.seconds) + Double(components.attoseconds) / 1e18
    }

    /// `seconds` (fractions allowed) as a duration, to the microsecond.
    public static func seconds(fractional seconds: Double) -> Duration {
        .microseconds(Int64((seconds * 1_000_000).rounded()))
    }

    /// The durations of command-line flags: a bare number of seconds (`60`, `0.25`) or a number
    /// with a unit, `ms`, `s`, `m`/`min` or `h` (`500ms`, `3s`, `1min`), in any case. Nil for
    /// anything else: negative values, and more than `maximumSeconds` (which a microsecond count
    /// could not hold, and no timeout needs).
    public init?(parsing text: String) {
        guard let seconds = Self.flagSyntax.seconds(text.trimmingCharacters(in: .whitespaces).lowercased()) else {
            return nil
        }
        self = .seconds(fractional: seconds)
    }

    /// The longest duration `Duration(parsing:)` accepts: 10^9 seconds, about 31 years.
    public static let maximumSeconds = 1e9

    /// What `Duration(parsing:)` accepts, once trimmed and lower-cased.
    static let flagSyntax = DurationSyntax(
        units: [("ms", 0.001), ("s", 1), ("min", 60), ("m", 60), ("h", 3600)], bareSeconds: true, allowsZero: true,
        maximumSeconds: maximumSeconds)

    /// `1.5s`: seconds with one decimal, for messages.
    public var secondsText: String { String(format: "%.1fs", inSeconds) }
}
