/// Text from outside (models, tools) made storable: PostgreSQL `text` and `jsonb` cannot hold
/// U+0000, and bytes that are not UTF-8 have no text at all. Both become U+FFFD (the
/// replacement character), so a run goes on and loses nothing silently: what was replaced is
/// counted, and the runner flags it on the span (`span_data.text_replaced`).
public enum TextSafety {
    /// What was replaced in one piece of text.
    public struct Replacements: Sendable, Equatable {
        /// U+0000 characters replaced.
        public var nul = 0
        /// Whether some bytes were not valid UTF-8.
        public var invalidUTF8 = false

        public init(nul: Int = 0, invalidUTF8: Bool = false) {
            self.nul = nul
            self.invalidUTF8 = invalidUTF8
        }

        public var isEmpty: Bool { nul == 0 && !invalidUTF8 }

        public static func + (a: Self, b: Self) -> Self {
            Self(nul: a.nul + b.nul, invalidUTF8: a.invalidUTF8 || b.invalidUTF8)
        }

        /// `{"nul": n, "invalid_utf8": true}` (only what happened), for the span.
        public var json: JSONValue {
            var o: [String: JSONValue] = [:]
            if nul > 0 { o["nul"] = .number(Double(nul)) }
            if invalidUTF8 { o["invalid_utf8"] = true }
            return .object(o)
        }
    }

    /// `bytes` as text: invalid UTF-8 sequences and U+0000 become U+FFFD.
    public static func decode(_ bytes: [UInt8]) -> (text: String, replaced: Replacements) {
        let valid = String(validating: bytes, as: UTF8.self)
        let (text, r) = storable(valid ?? String(decoding: bytes, as: UTF8.self))
        return (text, Replacements(nul: r.nul, invalidUTF8: valid == nil))
    }

    /// `text` safe to print on a terminal: control characters (C0, DEL, C1) and the
    /// bidirectional embeddings, overrides and isolates are shown escaped (`\n`, `\t`,
    /// `\u{1B}`), never written raw, so a name from the database cannot move the cursor, clear
    /// the screen or reorder what is shown.
    public static func printable(_ text: String) -> String {
        func unsafe(_ u: Unicode.Scalar) -> Bool {
            u.value < 0x20 || (0x7F...0x9F).contains(u.value) || (0x202A...0x202E).contains(u.value)
                || (0x2066...0x2069).contains(u.value)
        }
        guard text.unicodeScalars.contains(where: unsafe) else { return text }
        return text.escaped { u in
            u.lineEscape ?? (unsafe(u) ? "\\u{" + String(u.value, radix: 16, uppercase: true) + "}" : nil)
        }
    }

    /// `text` with every U+0000 replaced by U+FFFD.
    public static func storable(_ text: String) -> (text: String, replaced: Replacements) {
        guard text.utf8.contains(0) else { return (text, Replacements()) }
        var n = 0
        var out = String.UnicodeScalarView()
        for u in text.unicodeScalars {
            if u == "\u{0}" {
                n += 1
                out.append("\u{FFFD}")
            } else {
                out.append(u)
            }
        }
        return (String(out), Replacements(nul: n))
    }

    /// `storable` applied to every string (and object key) inside a JSON value.
    public static func storable(_ value: JSONValue) -> (value: JSONValue, replaced: Replacements) {
        switch value {
        case .string(let s):
            let (t, r) = storable(s)
            return (.string(t), r)
        case .array(let a):
            var total = Replacements()
            let out = a.map { v -> JSONValue in
                let (x, r) = storable(v)
                total = total + r
                return x
            }
            return (.array(out), total)
        case .object(let o):
            var total = Replacements()
            var out: [String: JSONValue] = [:]
            for (k, v) in o {
                let (key, rk) = storable(k)
                let (x, rv) = storable(v)
                total = total + rk + rv
                out[key] = x
            }
            return (.object(out), total)
        default:
            return (value, Replacements())
        }
    }
}
