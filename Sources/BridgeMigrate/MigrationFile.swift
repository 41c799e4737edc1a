import BridgeCore
import BridgePostgres
import Foundation

/// One `NNNN_name.sql` file from the migrations folder, read, checked and split.
public struct MigrationFile: Sendable {
    /// The numeric prefix; files apply in ascending version order.
    public var version: Int64
    /// The part after `NNNN_`, without `.sql`.
    public var name: String
    /// The file name, e.g. `0002_trace_columns.sql`.
    public var fileName: String
    /// SHA-256 (hex) of the file with CRLF and CR line endings normalised to LF, before
    /// placeholders are filled.
    public var checksum: String
    /// The statements after placeholders are filled, each with its line number.
    public var statements: [SQLStatement]
    /// True when the file runs statement by statement without a transaction.
    public var runsWithoutTransaction: Bool
    /// Why: the `-- bridge:no-transaction` directive or the first statement that needs it.
    public var noTransactionReason: String?

    /// Parses `NNNN_name.sql`. Returns nil for names that are not `.sql` files (they are
    /// ignored); throws for `.sql` files whose name does not follow the pattern.
    public static func parseName(_ fileName: String) throws(MigrateError) -> (version: Int64, name: String)? {
        guard fileName.hasSuffix(".sql"), !fileName.hasPrefix(".") else { return nil }
        let stem = fileName.dropLast(4)
        guard let underscore = stem.firstIndex(of: "_") else { throw .badFileName(fileName) }
        let digits = stem[stem.startIndex..<underscore]
        let name = stem[stem.index(after: underscore)...]
        guard !digits.isEmpty, digits.count <= 18, digits.allSatisfy({ $0.isASCII && $0.isNumber }),
            let version = Int64(digits), !name.isEmpty,
            name.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") })
        else { throw .badFileName(fileName) }
        return (version, String(name))
    }

    /// The checksum of file text: SHA-256 over the text with `\r\n` and `\r` turned into `\n`.
    public static func checksum(_ text: String) -> String {
        SHA256.hex(normalizeLineEndings(text))
    }

    /// `\r\n` and lone `\r` become `\n`.
    public static func normalizeLineEndings(_ text: String) -> String {
        var out = [UInt8]()
        out.reserveCapacity(text.utf8.count)
        var previousCR = false
        for b in text.utf8 {
            if b == 13 {
                out.append(10)
                previousCR = true
                continue
            }
            if b == 10, previousCR {
                previousCR = false
                continue
            }
            previousCR = false
            out.append(b)
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// Builds a migration from a file's name and text, filling placeholders.
    public init(fileName: String, text: String, placeholders: Placeholders) throws(MigrateError) {
        guard let parsed = try Self.parseName(fileName) else { throw .badFileName(fileName) }
        self.version = parsed.version
        self.name = parsed.name
        self.fileName = fileName
        let normalized = Self.normalizeLineEndings(text)
        self.checksum = SHA256.hex(normalized)
        let filled = try placeholders.fill(normalized, file: fileName)
        do {
            self.statements = try SQLSplitter.split(filled)
        } catch {
            throw .syntax(file: fileName, line: error.line, message: error.message)
        }
        if SQLSplitter.hasNoTransactionDirective(filled) {
            runsWithoutTransaction = true
            noTransactionReason = "-- bridge:no-transaction"
        } else if let first = statements.first(where: { $0.nonTransactionalReason != nil }) {
            // A file that needs it throughout runs without a transaction; a mixed file is a lint error.
            runsWithoutTransaction = statements.allSatisfy { $0.nonTransactionalReason != nil }
            noTransactionReason = "line \(first.line): \(first.nonTransactionalReason!)"
        } else {
            runsWithoutTransaction = false
            noTransactionReason = nil
        }
    }

    /// Reads every migration in `directory`, in version order.
    ///
    /// Files not ending in `.sql` are ignored; a `.sql` file with a bad name, a duplicate
    /// version, an unreadable file or an unknown placeholder is an error (exit 2).
    public static func load(directory: String, placeholders: Placeholders) throws(MigrateError) -> [MigrationFile] {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDir), isDir.boolValue else {
            throw .directoryMissing(directory)
        }
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: directory) } catch {
            throw .unreadable(path: directory, reason: "\(error.localizedDescription)")
        }
        var files: [MigrationFile] = []
        var seen: [Int64: String] = [:]
        for fileName in names.sorted() {
            guard try parseName(fileName) != nil else { continue }
            let path = (directory as NSString).appendingPathComponent(fileName)
            guard let data = FileManager.default.contents(atPath: path) else {
                throw .unreadable(path: path, reason: "cannot read file")
            }
            guard let text = String(data: data, encoding: .utf8) else {
                throw .unreadable(path: path, reason: "not UTF-8 text")
            }
            let file = try MigrationFile(fileName: fileName, text: text, placeholders: placeholders)
            if let other = seen[file.version] { throw .duplicateVersion(file.version, other, fileName) }
            seen[file.version] = fileName
            files.append(file)
        }
        return files.sorted { $0.version < $1.version }
    }
}

/// Values for `${name}` placeholders in migration files.
///
/// Built-in defaults (``defaults``) name the reference schema's tables; `--set name=value`
/// (or, later, the mappings configuration) overrides them. A placeholder with no value is an
/// error naming file and line, raised before any SQL runs.
public struct Placeholders: Sendable, Equatable {
    /// The built-in defaults: the reference schema's table names.
    public static let defaults: [String: String] = [
        "tasks_table": "tasks",
        "tasks_key": "id",
        "tasks_status_column": "status",
        "tasks_priority_column": "priority",
        "tasks_created_at_column": "created_at",
        "tasks_group_column": "workspace_id",
        "executions_table": "task_executions",
        "executions_completed_at_column": "completed_at",
        "executions_started_at_column": "started_at",
    ]

    /// The effective values.
    public var values: [String: String]

    /// The defaults with `overrides` applied on top.
    public init(overrides: [String: String] = [:], defaults: [String: String] = Placeholders.defaults) {
        values = defaults.merging(overrides) { _, new in new }
    }

    /// Parses `--set name=value` arguments.
    public static func parseAssignments(_ items: [String]) throws(MigrateError) -> [String: String] {
        var out: [String: String] = [:]
        for item in items {
            guard let eq = item.firstIndex(of: "=") else { throw .badSetting(item) }
            let name = String(item[item.startIndex..<eq])
            guard isValidName(name) else { throw .badSetting(item) }
            out[name] = String(item[item.index(after: eq)...])
        }
        return out
    }

    static func isValidName(_ name: String) -> Bool {
        guard let f = name.first, f == "_" || (f.isASCII && f.isLetter) else { return false }
        return name.allSatisfy { $0 == "_" || ($0.isASCII && ($0.isLetter || $0.isNumber)) }
    }

    /// Replaces every `${name}` in `text`; throws for the first one without a value.
    public func fill(_ text: String, file: String) throws(MigrateError) -> String {
        var out = ""
        var line = 1
        var rest = Substring(text)
        while let open = rest.range(of: "${") {
            let before = rest[rest.startIndex..<open.lowerBound]
            line += before.reduce(0) { $0 + ($1 == "\n" ? 1 : 0) }
            out += before
            let afterOpen = rest[open.upperBound...]
            guard let close = afterOpen.firstIndex(of: "}"),
                Self.isValidName(String(afterOpen[afterOpen.startIndex..<close]))
            else {
                // Not a placeholder (e.g. `${` inside a string); keep it as written.
                out += "${"
                rest = afterOpen
                continue
            }
            let name = String(afterOpen[afterOpen.startIndex..<close])
            guard let value = values[name] else {
                throw .unknownPlaceholder(file: file, line: line, name: name, known: values.keys.sorted())
            }
            // Values name tables and columns: checked as identifiers and always quoted.
            if let problem = PostgresQuery.qualifiedIdentifierProblem(value) {
                throw .badPlaceholderValue(name: name, problem: problem)
            }
            out += PostgresQuery.quoteIdentifier(value)
            rest = afterOpen[afterOpen.index(after: close)...]
        }
        out += rest
        return out
    }
}
