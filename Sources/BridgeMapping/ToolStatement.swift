import BridgeMigrate

/// The one-statement rule for tool SQL, decided by the SQL lexer (strings, quoted
/// identifiers, dollar quotes and comments are never mistaken for a `;`).
public enum ToolStatement {
    /// Where a second statement starts in `sql` (1-based line and column within the query
    /// text), or nil when `sql` is one statement (trailing `;` and comments allowed). Text the
    /// lexer cannot read (an unterminated quote) is left to PostgreSQL to report.
    public static func secondStatement(in sql: String) -> (line: Int, column: Int)? {
        guard let tokens = try? SQLLexer.tokenize(sql) else { return nil }
        var sawTerminator = false
        var sawBody = false
        for t in tokens where t.kind != .comment {
            if t.isPunctuation(";") {
                sawTerminator = sawBody
                continue
            }
            if sawTerminator {
                let scalars = Array(sql.unicodeScalars)
                var column = 1
                var i = t.range.lowerBound - 1
                while i >= 0, scalars[i] != "\n" {
                    column += 1
                    i -= 1
                }
                return (t.line, column)
            }
            sawBody = true
        }
        return nil
    }

    /// `sql` without what follows its last token: trailing comments, semicolons and
    /// whitespace, so the statement can be nested (`WITH r AS (<sql>) …`) and behaves at run
    /// time as it did when it was checked.
    public static func trimmed(_ sql: String) -> String {
        guard let tokens = try? SQLLexer.tokenize(sql) else {
            var s = sql
            while let last = s.last, last == ";" || last.isWhitespace { s.removeLast() }
            return s
        }
        guard let last = tokens.last(where: { $0.kind != .comment && !$0.isPunctuation(";") }) else { return "" }
        var out = String.UnicodeScalarView()
        out.append(contentsOf: Array(sql.unicodeScalars)[..<last.range.upperBound])
        return String(out)
    }

    static let writingVerbs: Set<String> = [
        "INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE", "CREATE", "DROP",
        "ALTER", "COPY", "GRANT", "REVOKE", "LOCK", "CALL", "NOTIFY", "VACUUM",
        "REINDEX", "CLUSTER", "COMMENT", "SECURITY", "REFRESH", "NEXTVAL", "SETVAL",
    ]

    /// The first writing keyword of `sql` (`INSERT`, `UPDATE`, `nextval`, …), for messages
    /// that must name the statement that tried to write.
    public static func writingVerb(in sql: String) -> String? {
        guard let tokens = try? SQLLexer.tokenize(sql) else { return nil }
        return tokens.lazy.compactMap(\.keyword).first(where: { writingVerbs.contains($0) })
    }
}
