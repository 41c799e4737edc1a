import Foundation

/// Formatting and parsing of PostgreSQL `timestamptz` text.
public enum PostgresTimestamp {
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

    /// Parses the server's text output for timestamptz (`2026-11-26 09:03:44.123456+00`)
    /// and ISO 8601 forms. Returns nil on anything else.
    public static func parse(_ s: String) -> Date? {
        let u = Array(s.utf8)
        func num(_ from: Int, _ len: Int) -> Int? {
            guard from + len <= u.count else { return nil }
            var v = 0
            for i in from..<from + len {
                guard u[i] >= 48, u[i] <= 57 else { return nil }
                v = v * 10 + Int(u[i] - 48)
            }
            return v
        }
        guard let y = num(0, 4), let mo = num(5, 2), let d = num(8, 2),
            let h = num(11, 2), let mi = num(14, 2), let se = num(17, 2)
        else { return nil }
        var i = 19
        var frac = 0.0
        if i < u.count, u[i] == UInt8(ascii: ".") {
            i += 1
            var scale = 0.1
            while i < u.count, u[i] >= 48, u[i] <= 57 {
                frac += Double(u[i] - 48) * scale
                scale /= 10
                i += 1
            }
        }
        var offset = 0
        if i < u.count {
            if u[i] == UInt8(ascii: "Z") {
                offset = 0
            } else if u[i] == UInt8(ascii: "+") || u[i] == UInt8(ascii: "-") {
                let sign = u[i] == UInt8(ascii: "+") ? 1 : -1
                let oh = num(i + 1, 2) ?? 0
                var om = 0
                if i + 3 < u.count {
                    om = u[i + 3] == UInt8(ascii: ":") ? (num(i + 4, 2) ?? 0) : (num(i + 3, 2) ?? 0)
                }
                offset = sign * (oh * 3600 + om * 60)
            }
        }
        var tm = tm()
        tm.tm_year = Int32(y - 1900)
        tm.tm_mon = Int32(mo - 1)
        tm.tm_mday = Int32(d)
        tm.tm_hour = Int32(h)
        tm.tm_min = Int32(mi)
        tm.tm_sec = Int32(se)
        let epoch = timegm(&tm)
        return Date(timeIntervalSince1970: Double(epoch - offset) + frac)
    }
}
