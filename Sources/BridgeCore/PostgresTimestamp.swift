import Foundation

/// Formatting and parsing of PostgreSQL `timestamptz` text.
public enum PostgresTimestamp {
    /// The instants `parse` reads and `format` writes: 0001-01-01 up to 10000-01-01 (not
    /// included), UTC. (`BackfillHistory.readable` holds the user's columns to the same range.)
    public static let range =
        Date(timeIntervalSince1970: -62_135_596_800)..<Date(timeIntervalSince1970: 253_402_300_800)

    /// `date` moved by `seconds`, or nil when `seconds` is not finite or the result is outside
    /// `range`: a duration read from the user's history (`Infinity`, `1e300`) must not make an
    /// instant `format` cannot write (it would trap, or write the wrong year).
    public static func moved(_ date: Date, by seconds: Double) -> Date? {
        guard seconds.isFinite else { return nil }
        let moved = date.addingTimeInterval(seconds)
        return range.contains(moved) ? moved : nil
    }

    /// ISO 8601 with microseconds in UTC, e.g. `2026-11-26T09:03:44.123456Z`.
    public static func format(_ date: Date) -> String {
        let (tm, micros) = utcFields(date)
        // Digits written by hand: String(format:) costs more than the rest (bulk writes format
        // hundreds of thousands).
        var out = [UInt8](repeating: 0, count: 27)
        func put(_ value: Int, _ at: Int, _ width: Int) {
            var v = value
            for i in stride(from: at + width - 1, through: at, by: -1) {
                out[i] = UInt8(48 + v % 10)
                v /= 10
            }
        }
        put(Int(tm.tm_year) + 1900, 0, 4)
        put(Int(tm.tm_mon) + 1, 5, 2)
        put(Int(tm.tm_mday), 8, 2)
        put(Int(tm.tm_hour), 11, 2)
        put(Int(tm.tm_min), 14, 2)
        put(Int(tm.tm_sec), 17, 2)
        put(micros, 20, 6)
        for (i, c) in [(4, "-"), (7, "-"), (10, "T"), (13, ":"), (16, ":"), (19, "."), (26, "Z")]
            as [(Int, Unicode.Scalar)]
        {
            out[i] = UInt8(ascii: c)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The UTC calendar fields of `date` and its microseconds, rounded to the nearest one (a
    /// carry goes into the seconds). Every text form of an instant is written from these, so
    /// the file exporter and the ledger agree to the microsecond.
    public static func utcFields(_ date: Date) -> (tm: tm, micros: Int) {
        let t = date.timeIntervalSince1970
        var secs = t.rounded(.down)
        var micros = Int(((t - secs) * 1_000_000).rounded())
        if micros >= 1_000_000 {
            micros -= 1_000_000
            secs += 1
        }
        var fields = tm()
        var time = time_t(secs)
        gmtime_r(&time, &fields)
        return (fields, micros)
    }

    /// Parses the server's text output for timestamptz in the ISO style, which every connection
    /// asks for (`2026-11-26 09:03:44.123456+00`), and ISO 8601 forms (`2026-11-26T09:03:44Z`,
    /// `+01:00`, `+0100`; `T` and `Z` upper case). Returns nil on anything else: separators other
    /// than these, a field out of its range (month 13 is not next January), a point without
    /// digits, or any text after the zone (` BC`), so a typed `--since` is refused rather than
    /// read as some other instant. Without a zone the time is UTC. Only years 1–9999 in four
    /// digits are read: the server's `infinity`, BC dates and longer years are nil too (backfill
    /// reads the user's columns through `BackfillHistory.readable`, which leaves them out).
    public static func parse(_ s: String) -> Date? {
        let u = Array(s.utf8)
        func num(_ from: Int, _ len: Int, _ range: ClosedRange<Int>) -> Int? {
            guard from + len <= u.count else { return nil }
            var v = 0
            for i in from..<from + len {
                guard u[i] >= 48, u[i] <= 57 else { return nil }
                v = v * 10 + Int(u[i] - 48)
            }
            return range.contains(v) ? v : nil
        }
        func at(_ i: Int, _ separators: String) -> Bool { i < u.count && separators.utf8.contains(u[i]) }
        guard at(4, "-"), at(7, "-"), at(10, " T"), at(13, ":"), at(16, ":"),
            let y = num(0, 4, 1...9999), let mo = num(5, 2, 1...12), let d = num(8, 2, 1...31),
            let h = num(11, 2, 0...23), let mi = num(14, 2, 0...59), let se = num(17, 2, 0...59)
        else { return nil }
        var i = 19
        var frac = 0.0
        if at(i, ".") {
            i += 1
            let digits = i
            var scale = 0.1
            while i < u.count, u[i] >= 48, u[i] <= 57 {
                frac += Double(u[i] - 48) * scale
                scale /= 10
                i += 1
            }
            guard i > digits else { return nil }
        }
        var offset = 0
        if at(i, "Z") {
            i += 1
        } else if at(i, "+-") {
            // `+hh`, `+hh:mm`, `+hhmm`, or the server's `+hh:mm:ss` for a zone's local mean time.
            let sign = u[i] == UInt8(ascii: "+") ? 1 : -1
            guard let hours = num(i + 1, 2, 0...15) else { return nil }
            i += 3
            var seconds = hours * 3600
            if at(i, ":"), let minutes = num(i + 1, 2, 0...59) {
                seconds += minutes * 60
                i += 3
                if at(i, ":"), let rest = num(i + 1, 2, 0...59) {
                    seconds += rest
                    i += 3
                }
            } else if let minutes = num(i, 2, 0...59) {
                seconds += minutes * 60
                i += 2
            }
            offset = sign * seconds
        }
        guard i == u.count else { return nil }
        var tm = tm()
        tm.tm_year = Int32(y - 1900)
        tm.tm_mon = Int32(mo - 1)
        tm.tm_mday = Int32(d)
        tm.tm_hour = Int32(h)
        tm.tm_min = Int32(mi)
        tm.tm_sec = Int32(se)
        let epoch = timegm(&tm)
        // timegm normalises the fields it was given: a day past the month's end (`02-31`) moved.
        guard tm.tm_mday == Int32(d), tm.tm_mon == Int32(mo - 1) else { return nil }
        return Date(timeIntervalSince1970: Double(epoch - offset) + frac)
    }
}
