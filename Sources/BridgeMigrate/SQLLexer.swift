/// One lexical token of PostgreSQL SQL text.
///
/// The lexer only needs to know where statements end and which words a statement is made
/// of, so it distinguishes strings, quoted identifiers, comments and bare words, and leaves
/// everything else as single punctuation characters.
public struct SQLToken: Sendable, Equatable {
    /// What kind of text a token covers.
    public enum Kind: Sendable, Equatable {
        /// A keyword, unquoted identifier or number (`CREATE`, `tasks`, `42`).
        case word
        /// A double-quoted identifier; `text` is the name with quotes removed and `""` undone.
        case quotedIdentifier
        /// A string constant of any form (`'x'`, `E'x'`, `$tag$x$tag$`); `text` is the source text.
        case string
        /// A `--` or `/* */` comment; `text` is the source text.
        case comment
        /// Any other single character (`;`, `(`, `,`, `.`, ...).
        case punctuation
    }

    /// The token's kind.
    public var kind: Kind
    /// See ``Kind`` for what each kind stores here.
    public var text: String
    /// The 1-based line on which the token starts.
    public var line: Int
    /// Offsets (in Unicode scalars) of the token in the lexed text.
    public var range: Range<Int>

    /// The upper-cased text of a bare word, or nil for any other token.
    public var keyword: String? { kind == .word ? text.uppercased() : nil }

    /// True for punctuation `c`.
    public func isPunctuation(_ c: Character) -> Bool { kind == .punctuation && text == String(c) }
}

extension [SQLToken] {
    /// The tokens' keywords, index for index: `""` for a token that is not a bare word, so a
    /// pattern of keywords never matches a quoted name, a literal or punctuation.
    public var keywords: [String] { map { $0.keyword ?? "" } }
}

/// An error in SQL text that the lexer cannot get past (an unterminated quote or comment).
public struct SQLLexError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The 1-based line where the unterminated construct starts.
    public var line: Int
    /// What is unterminated.
    public var message: String
    public var description: String { "line \(line): \(message)" }
}

/// Tokenises PostgreSQL SQL text.
///
/// Understands `'...'` strings with `''`, `E'...'` strings with backslash escapes,
/// `"identifiers"` with `""`, dollar quotes `$tag$...$tag$`, `--` comments and nested
/// `/* */` comments, so a `;` inside any of them never ends a statement.
public enum SQLLexer {
    /// Splits `text` into tokens; whitespace is dropped.
    public static func tokenize(_ text: String) throws(SQLLexError) -> [SQLToken] {
        // A lexer's state machine, kept in one function on purpose (over the 80-line limit):
        // every branch consumes one construct from the same cursor (`i`, `line`), and the
        // order of the branches decides what a character starts (`E'` a string, not a word;
        // `$1` a word, not a dollar quote). Split up, each piece would take and return the
        // whole cursor, and that order would be spread over several functions.
        let s = Array(text.unicodeScalars)
        var tokens: [SQLToken] = []
        var i = 0
        var line = 1

        func isDigit(_ c: Unicode.Scalar) -> Bool { c >= "0" && c <= "9" }
        func isIdentStart(_ c: Unicode.Scalar) -> Bool {
            c == "_" || c.properties.isAlphabetic || c.value >= 0x80
        }
        func isIdentChar(_ c: Unicode.Scalar) -> Bool { isIdentStart(c) || isDigit(c) || c == "$" }
        func source(_ r: Range<Int>) -> String {
            var out = String.UnicodeScalarView()
            out.append(contentsOf: s[r])
            return String(out)
        }
        func countLines(_ r: Range<Int>) -> Int { s[r].reduce(0) { $0 + ($1 == "\n" ? 1 : 0) } }

        while i < s.count {
            let c = s[i]
            let start = i
            let startLine = line
            if c == "\n" {
                line += 1
                i += 1
                continue
            }
            if c == " " || c == "\t" || c == "\r" || c == "\u{0C}" {
                i += 1
                continue
            }

            // -- comment to the end of the line
            if c == "-", i + 1 < s.count, s[i + 1] == "-" {
                while i < s.count, s[i] != "\n" { i += 1 }
                tokens.append(SQLToken(kind: .comment, text: source(start..<i), line: startLine, range: start..<i))
                continue
            }
            // /* nested */ comment
            if c == "/", i + 1 < s.count, s[i + 1] == "*" {
                var depth = 0
                while i < s.count {
                    if s[i] == "/", i + 1 < s.count, s[i + 1] == "*" {
                        depth += 1
                        i += 2
                        continue
                    }
                    if s[i] == "*", i + 1 < s.count, s[i + 1] == "/" {
                        depth -= 1
                        i += 2
                        if depth == 0 { break }
                        continue
                    }
                    i += 1
                }
                if depth != 0 { throw SQLLexError(line: startLine, message: "unterminated /* comment") }
                line += countLines(start..<i)
                tokens.append(SQLToken(kind: .comment, text: source(start..<i), line: startLine, range: start..<i))
                continue
            }
            // E'...' (backslash escapes) and plain '...' strings
            let isEscapeString =
                (c == "E" || c == "e") && i + 1 < s.count && s[i + 1] == "'"
                && (start == 0 || !isIdentChar(s[start - 1]))
            if c == "'" || isEscapeString {
                i += isEscapeString ? 2 : 1
                var closed = false
                while i < s.count {
                    let d = s[i]
                    if isEscapeString, d == "\\" {
                        i += 2
                        continue
                    }
                    if d == "'" {
                        if i + 1 < s.count, s[i + 1] == "'" {
                            i += 2
                            continue
                        }
                        i += 1
                        closed = true
                        break
                    }
                    i += 1
                }
                if !closed { throw SQLLexError(line: startLine, message: "unterminated string constant") }
                line += countLines(start..<i)
                tokens.append(SQLToken(kind: .string, text: source(start..<i), line: startLine, range: start..<i))
                continue
            }
            // "quoted identifier"
            if c == "\"" {
                i += 1
                var name = String.UnicodeScalarView()
                var closed = false
                while i < s.count {
                    if s[i] == "\"" {
                        if i + 1 < s.count, s[i + 1] == "\"" {
                            name.append("\"")
                            i += 2
                            continue
                        }
                        i += 1
                        closed = true
                        break
                    }
                    name.append(s[i])
                    i += 1
                }
                if !closed { throw SQLLexError(line: startLine, message: "unterminated quoted identifier") }
                line += countLines(start..<i)
                tokens.append(SQLToken(kind: .quotedIdentifier, text: String(name), line: startLine, range: start..<i))
                continue
            }
            // $tag$ ... $tag$ (a `$1` parameter is not a dollar quote)
            if c == "$" {
                var j = i + 1
                if j < s.count, isIdentStart(s[j]) {
                    while j < s.count, isIdentChar(s[j]), s[j] != "$" { j += 1 }
                }
                if j < s.count, s[j] == "$" {
                    let tag = Array(s[i...j])
                    var k = j + 1
                    var closed = false
                    while k < s.count {
                        if s[k] == "$", k + tag.count <= s.count, Array(s[k..<k + tag.count]) == tag {
                            k += tag.count
                            closed = true
                            break
                        }
                        k += 1
                    }
                    if !closed {
                        throw SQLLexError(
                            line: startLine, message: "unterminated dollar-quoted string \(source(i..<j + 1))")
                    }
                    i = k
                    line += countLines(start..<i)
                    tokens.append(SQLToken(kind: .string, text: source(start..<i), line: startLine, range: start..<i))
                    continue
                }
            }
            // words: keywords, identifiers, numbers (a B'', X'', N'' prefix lexes as a word, then a string)
            if isIdentStart(c) || isDigit(c) {
                i += 1
                while i < s.count {
                    if isIdentChar(s[i]) {
                        i += 1
                        continue
                    }
                    if isDigit(c), s[i] == ".", i + 1 < s.count, isDigit(s[i + 1]) {
                        i += 1
                        continue
                    }
                    break
                }
                tokens.append(SQLToken(kind: .word, text: source(start..<i), line: startLine, range: start..<i))
                continue
            }
            i += 1
            tokens.append(SQLToken(kind: .punctuation, text: source(start..<i), line: startLine, range: start..<i))
        }
        return tokens
    }
}

/// One statement of a migration file.
public struct SQLStatement: Sendable, Equatable {
    /// The statement's source text, from its first token to its last, without the closing `;`.
    /// Comments inside it are kept.
    public var text: String
    /// The 1-based line of its first token.
    public var line: Int
    /// Its tokens without comments.
    public var tokens: [SQLToken]
    /// Comments between the previous statement and this one, and inside this one.
    public var comments: [SQLToken]

    /// The upper-cased leading keywords (up to `n` bare words, stopping at the first other token).
    public func leadingKeywords(_ n: Int = 6) -> [String] {
        var out: [String] = []
        for t in tokens {
            guard let k = t.keyword, out.count < n else { break }
            out.append(k)
        }
        return out
    }

    /// Why this statement cannot run inside a transaction block, or nil if it can.
    ///
    /// CREATE/DROP INDEX CONCURRENTLY, REINDEX … CONCURRENTLY, VACUUM, CREATE/DROP DATABASE,
    /// CREATE/DROP TABLESPACE and ALTER SYSTEM are detected. ALTER TYPE … ADD VALUE runs in a
    /// transaction on PostgreSQL 12 and later and is treated as transaction-safe.
    public var nonTransactionalReason: String? {
        let words = tokens.compactMap(\.keyword)
        guard let first = words.first else { return nil }
        let head = Array(words.prefix(4))
        switch first {
        case "CREATE":
            if head.starts(with: ["CREATE", "INDEX", "CONCURRENTLY"])
                || head.starts(with: ["CREATE", "UNIQUE", "INDEX", "CONCURRENTLY"])
            {
                return "CREATE INDEX CONCURRENTLY"
            }
            if head.starts(with: ["CREATE", "DATABASE"]) { return "CREATE DATABASE" }
            if head.starts(with: ["CREATE", "TABLESPACE"]) { return "CREATE TABLESPACE" }
        case "DROP":
            if head.starts(with: ["DROP", "INDEX", "CONCURRENTLY"]) { return "DROP INDEX CONCURRENTLY" }
            if head.starts(with: ["DROP", "DATABASE"]) { return "DROP DATABASE" }
            if head.starts(with: ["DROP", "TABLESPACE"]) { return "DROP TABLESPACE" }
        case "REINDEX":
            if words.prefix(5).contains("CONCURRENTLY") { return "REINDEX CONCURRENTLY" }
            if words.count > 1, words[1] == "SYSTEM" || words[1] == "DATABASE" { return "REINDEX \(words[1])" }
        case "VACUUM":
            return "VACUUM"
        case "ALTER":
            if head.starts(with: ["ALTER", "SYSTEM"]) { return "ALTER SYSTEM" }
        default:
            break
        }
        return nil
    }
}

/// Splits SQL text into statements at top-level `;`.
public enum SQLSplitter {
    /// The statements in `text`, each with its 1-based start line. Empty statements (a lone
    /// `;`, or only comments) are dropped; comments after the last statement are ignored.
    public static func split(_ text: String) throws(SQLLexError) -> [SQLStatement] {
        let tokens = try SQLLexer.tokenize(text)
        let scalars = Array(text.unicodeScalars)
        var statements: [SQLStatement] = []
        var current: [SQLToken] = []
        var comments: [SQLToken] = []

        func flush() {
            defer {
                current = []
                comments = []
            }
            guard let first = current.first, let last = current.last else { return }
            // Keep interior comments in the text; the slice runs from the first to the last real token.
            var view = String.UnicodeScalarView()
            view.append(contentsOf: scalars[first.range.lowerBound..<last.range.upperBound])
            statements.append(SQLStatement(text: String(view), line: first.line, tokens: current, comments: comments))
        }

        for token in tokens {
            switch token.kind {
            case .comment:
                comments.append(token)
            case .punctuation where token.text == ";":
                flush()
            default:
                current.append(token)
            }
        }
        flush()
        return statements
    }

    /// True when a `-- bridge:no-transaction` comment appears before the first statement.
    public static func hasNoTransactionDirective(_ text: String) -> Bool {
        guard let tokens = try? SQLLexer.tokenize(text) else { return false }
        for t in tokens {
            guard t.kind == .comment else { return false }
            if commentBody(t.text).lowercased().hasPrefix("bridge:no-transaction") { return true }
        }
        return false
    }

    /// The text of a comment without its `--` or `/* */` markers, trimmed.
    public static func commentBody(_ comment: String) -> String {
        var body = Substring(comment)
        if body.hasPrefix("--") {
            body = body.dropFirst(2)
        } else if body.hasPrefix("/*") {
            body = body.dropFirst(2)
            if body.hasSuffix("*/") { body = body.dropLast(2) }
        }
        return body.trimmingCharacters(in: [" ", "\t", "\r", "\n"])
    }
}

extension Substring {
    func trimmingCharacters(in set: Set<Character>) -> String {
        var s = self
        while let f = s.first, set.contains(f) { s = s.dropFirst() }
        while let l = s.last, set.contains(l) { s = s.dropLast() }
        return String(s)
    }
}
