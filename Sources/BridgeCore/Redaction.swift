import Foundation

/// Removes secrets from text that may reach a terminal, a log or a database row.
public enum Redaction {
    /// Replaces the password in a PostgreSQL URL (`postgres://user:secret@host`) or in a
    /// key/value connection string (`password=secret`) with `***`.
    public static func connectionString(_ s: String) -> String {
        var out = s
        // URL form: scheme://user:password@host
        if let schemeEnd = out.range(of: "://") {
            let rest = out[schemeEnd.upperBound...]
            if let at = rest.firstIndex(of: "@") {
                let userinfo = rest[rest.startIndex..<at]
                if let colon = userinfo.firstIndex(of: ":") {
                    out.replaceSubrange(out.index(after: colon)..<at, with: "***")
                }
            }
        }
        // Query parameter or key/value form: password=secret
        out = replaceValue(of: "password=", in: out)
        return out
    }

    /// Replaces every occurrence of each secret in `text` with `***`.
    public static func scrub(_ text: String, secrets: [String]) -> String {
        var out = text
        // Longer secrets first, so one that contains another is replaced whole.
        for secret in secrets.sorted(by: { $0.count > $1.count }) where secret.count >= 3 {
            out = out.replacingAll(secret, with: "***")
        }
        return out
    }

    /// `scrub` applied to every string inside a JSON value.
    public static func scrub(_ value: JSONValue, secrets: [String]) -> JSONValue {
        guard !secrets.isEmpty else { return value }
        switch value {
        case .string(let s): return .string(scrub(s, secrets: secrets))
        case .array(let a): return .array(a.map { scrub($0, secrets: secrets) })
        case .object(let o): return .object(o.mapValues { scrub($0, secrets: secrets) })
        default: return value
        }
    }

    private static func replaceValue(of key: String, in s: String) -> String {
        var result = ""
        var rest = Substring(s)
        while let r = rest.range(of: key) {
            result += rest[rest.startIndex..<r.upperBound]
            result += "***"
            var idx = r.upperBound
            if idx < rest.endIndex, rest[idx] == "'" {
                idx = rest.index(after: idx)
                while idx < rest.endIndex, rest[idx] != "'" { idx = rest.index(after: idx) }
                if idx < rest.endIndex { idx = rest.index(after: idx) }
            } else {
                while idx < rest.endIndex, rest[idx] != " ", rest[idx] != "&" { idx = rest.index(after: idx) }
            }
            rest = rest[idx...]
        }
        result += rest
        return result
    }
}

extension String {
    /// Replaces every occurrence of `target` (non-empty) with `replacement`.
    public func replacingAll(_ target: String, with replacement: String) -> String {
        guard !target.isEmpty else { return self }
        var result = ""
        var rest = Substring(self)
        while let r = rest.range(of: target) {
            result += rest[rest.startIndex..<r.lowerBound]
            result += replacement
            rest = rest[r.upperBound...]
        }
        result += rest
        return result
    }
}
