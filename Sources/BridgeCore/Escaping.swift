/// The one loop behind bridge's text escapers (JSON strings, Python's `repr`, terminal-safe
/// text, XML): each writes its own table of replacements as a closure.
extension String {
    /// Appends `s`, each Unicode scalar that `replacement` maps to text replaced by that text.
    public mutating func appendEscaped(_ s: String, _ replacement: (Unicode.Scalar) -> String?) {
        for u in s.unicodeScalars {
            if let r = replacement(u) {
                self += r
            } else {
                unicodeScalars.append(u)
            }
        }
    }

    /// The string with each Unicode scalar that `replacement` maps to text replaced by that text.
    public func escaped(_ replacement: (Unicode.Scalar) -> String?) -> String {
        var out = ""
        out.appendEscaped(self, replacement)
        return out
    }
}

extension Unicode.Scalar {
    /// `\n`, `\r` or `\t` for a newline, a carriage return or a tab: the escapes that JSON,
    /// Python and terminal-safe text share. Nil for any other scalar.
    public var lineEscape: String? {
        switch self {
        case "\n": "\\n"
        case "\r": "\\r"
        case "\t": "\\t"
        default: nil
        }
    }
}
