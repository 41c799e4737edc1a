/// How one kind of input writes a duration: a number followed by one of its units, or, where it
/// allows, a bare number of seconds. The one parser of duration text people type; its callers
/// differ only in what they name here: a command's time flags (`Duration(parsing:)`: `ms` to
/// `h`), a mapping's waits (`s` to `d`, never zero) and `--since` (`s` to `w`, a unit required).
/// The rate-limit reset headers servers send (`6m0s`, several units in one value) are read by
/// `RateLimitReset.parse`.
public struct DurationSyntax: Sendable {
    /// Each unit's suffix and the seconds it stands for. When several suffixes end the text
    /// (`s` and `ms` in `500ms`), the longest is the unit.
    public var units: [(suffix: String, seconds: Double)]
    /// Whether a number without a unit is accepted, as seconds.
    public var bareSeconds: Bool
    /// Whether zero is accepted; else only positive durations are.
    public var allowsZero: Bool
    /// The longest duration accepted, in seconds, inclusive.
    public var maximumSeconds: Double

    public init(
        units: [(suffix: String, seconds: Double)], bareSeconds: Bool, allowsZero: Bool, maximumSeconds: Double
    ) {
        self.units = units
        self.bareSeconds = bareSeconds
        self.allowsZero = allowsZero
        self.maximumSeconds = maximumSeconds
    }

    /// The seconds `text` stands for; nil unless it is a finite number (at least zero when
    /// `allowsZero`, else above zero) with one of the units (or none, where allowed), of at most
    /// `maximumSeconds`. `text` is taken as it is: callers trim it, and fold its case, as their
    /// input wants.
    public func seconds(_ text: String) -> Double? {
        guard let (n, factor) = split(text), allowsZero ? n >= 0 : n > 0, n * factor <= maximumSeconds else {
            return nil
        }
        return n * factor
    }

    /// The number and the seconds its unit stands for; nil unless `text` is a finite decimal
    /// number with one of the units, or without one where allowed.
    private func split(_ text: String) -> (number: Double, factor: Double)? {
        var (number, factor) = (Substring(text), 1.0)
        let unit = units.filter { text.hasSuffix($0.suffix) }.max { $0.suffix.count < $1.suffix.count }
        if let unit {
            (number, factor) = (number.dropLast(unit.suffix.count), unit.seconds)
        } else if !bareSeconds {
            return nil
        }
        // Decimal only: `Double` also reads hex (`0x1p4`, 16), which no one means as a duration.
        guard number.allSatisfy({ "0123456789.eE+-".contains($0) }), let n = Double(number), n.isFinite else {
            return nil
        }
        return (n, factor)
    }
}
