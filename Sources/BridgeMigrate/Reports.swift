import BridgeCore
import FoundationEssentials

/// Output that `bridge migrate` prints: human text by default, JSON with `--json`.
public protocol MigrateReport: Encodable, Sendable {
    /// Human-readable text, one item per line.
    var text: String { get }
    /// How the command should exit.
    var exitStatus: ExitStatus { get }
}

extension MigrateReport {
    /// Pretty-printed JSON with sorted keys.
    public var json: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// What `up` did.
public struct UpReport: MigrateReport {
    /// One applied file.
    public struct Applied: Codable, Sendable {
        public var file: String
        public var version: Int64
        public var statements: Int
        public var transactional: Bool
        public var milliseconds: Int
        /// Set when a non-transactional file resumed after an earlier partial run.
        public var resumedAtStatement: Int?
    }

    public var applied: [Applied]
    /// True when there was nothing to do.
    public var upToDate: Bool

    public var text: String {
        if applied.isEmpty { return "Database is up to date; nothing to apply." }
        var lines = applied.map { a in
            "applied \(a.file): \(a.statements) statement(s) in \(a.milliseconds) ms"
                + (a.transactional ? " (one transaction)" : " (no transaction)")
                // Empty default: not resumed, nothing to say.
                + (a.resumedAtStatement.map { ", resumed at statement \($0)" } ?? "")
        }
        lines.append("\(applied.count) migration(s) applied.")
        return lines.joined(separator: "\n")
    }

    public var exitStatus: ExitStatus { .ok }
}

/// Where every migration stands.
public struct StatusReport: MigrateReport {
    public var files: [FileState]

    /// 1 on drift or a failed run, 3 when files are pending, else 0.
    public var exitStatus: ExitStatus {
        if files.contains(where: { $0.state == .drifted || $0.state == .failed }) { return .failed }
        if files.contains(where: { $0.state == .pending }) { return .pending }
        return .ok
    }

    public var text: String {
        guard !files.isEmpty else { return "No migration files and no history." }
        let width = files.map(\.file.count).max() ?? 0
        var lines: [String] = []
        for f in files {
            var line =
                f.file.padding(toLength: width, withPad: " ", startingAt: 0) + "  "
                + f.state.rawValue.padding(toLength: 8, withPad: " ", startingAt: 0)
            if let h = f.history {
                switch f.state {
                case .applied: line += "  \(h.appliedAt) by \(h.appliedBy), \(h.executionMS) ms"
                case .baseline: line += "  recorded \(h.appliedAt) by \(h.appliedBy) without running"
                // Empty default: a failed run that recorded no error.
                case .failed: line += "  \(h.statementsDone)/\(h.statementsTotal) statements done; \(h.error ?? "")"
                case .drifted:
                    // Empty default: a file without a checksum (missing).
                    line +=
                        "  file changed since it ran (checksum \(h.checksum.prefix(12)) → \((f.checksum ?? "").prefix(12)))"
                case .missing: line += "  \(h.status) \(h.appliedAt), but the file is gone"
                case .pending: break
                }
            }
            lines.append(line)
        }
        let pending = files.filter { $0.state == .pending }.count
        switch exitStatus {
        case .failed: lines.append("Problems found: run `bridge migrate repair` once the cause is fixed.")
        case .pending: lines.append("\(pending) migration(s) pending; run `bridge migrate` to apply.")
        default: lines.append("Up to date.")
        }
        return lines.joined(separator: "\n")
    }
}

/// Exactly what `up` would run.
public struct PlanReport: MigrateReport {
    /// One statement and its expected effect on the live database.
    public struct Statement: Codable, Sendable {
        public var line: Int
        public var sql: String
        public var effect: StatementEffect
        public var notes: [String]
        /// Session changes around this statement.
        public var settings: [String]
    }

    /// One pending file.
    public struct File: Codable, Sendable {
        public var file: String
        public var version: Int64
        public var checksum: String
        /// True when the file runs in one transaction with its history row.
        public var transaction: Bool
        public var noTransactionReason: String?
        public var resumeAtStatement: Int?
        public var statements: [Statement]
        public var findings: [LintFinding]
    }

    public var server: String
    public var serverVersionNum: Int
    /// The connection target with the password redacted.
    public var target: String
    public var historyTableExists: Bool
    public var sessionSettings: [String]
    public var lock: String
    public var files: [File]
    /// Why `up` would refuse to run, if it would.
    public var refusal: String?

    public var exitStatus: ExitStatus { refusal == nil ? .ok : .failed }

    public var text: String {
        var out: [String] = []
        out.append("Plan for \(target) (\(server))")
        out.append(
            "history: bridge.schema_migrations "
                + (historyTableExists ? "exists" : "does not exist yet (up creates it)"))
        out.append("session: " + sessionSettings.map { "SET \($0)" }.joined(separator: "; "))
        out.append("lock: \(lock)")
        if files.isEmpty && refusal == nil { out.append("Nothing to apply: the database is up to date.") }
        for f in files {
            out.append("")
            out.append("\(f.file)  (checksum \(f.checksum.prefix(12)))")
            if f.transaction {
                out.append("  BEGIN")
            } else {
                // Empty default: a file that gives no reason.
                out.append("  no transaction (\(f.noTransactionReason ?? "")): each statement is sent on its own")
            }
            if let r = f.resumeAtStatement { out.append("  resuming at statement \(r) after an earlier partial run") }
            let indent = f.transaction ? "    " : "  "
            for s in f.statements {
                for setting in s.settings { out.append("\(indent)-- \(setting)") }
                let sqlLines = s.sql.split(separator: "\n", omittingEmptySubsequences: false)
                // Empty default: a statement with no text.
                out.append("\(indent)line \(s.line): \(sqlLines.first ?? "")")
                for more in sqlLines.dropFirst() { out.append("\(indent)    \(more)") }
                out.append(
                    "\(indent)  => \(s.effect.rawValue)"
                        + (s.notes.isEmpty ? "" : ": " + s.notes.joined(separator: "; ")))
            }
            out.append(
                "\(indent)INSERT INTO bridge.schema_migrations (version \(f.version), status 'applied')"
                    + (f.transaction ? "" : " after each statement records progress"))
            if f.transaction { out.append("  COMMIT") }
            if f.findings.isEmpty {
                out.append("  lint: ok")
            } else {
                for finding in f.findings { out.append("  lint: \(finding)") }
            }
        }
        if let refusal {
            out.append("")
            out.append("up would refuse: \(refusal)")
        }
        return out.joined(separator: "\n")
    }
}

/// What `baseline` recorded.
public struct BaselineReport: MigrateReport {
    public var version: Int64
    public var recorded: [String]
    public var exitStatus: ExitStatus { .ok }
    public var text: String {
        if recorded.isEmpty { return "Nothing to record: every file up to version \(version) is already in history." }
        return
            (recorded.map { "baseline \($0) (recorded as applied, not run)" }
            + ["\(recorded.count) file(s) recorded up to version \(version)."]).joined(separator: "\n")
    }
}

/// What `repair` changed.
public struct RepairReport: MigrateReport {
    public var changes: [String]
    public var notes: [String] = []
    public var exitStatus: ExitStatus { .ok }
    public var text: String {
        if changes.isEmpty && notes.isEmpty { return "Nothing to repair." }
        return (changes + notes + ["\(changes.count) change(s) made to bridge.schema_migrations."]).joined(
            separator: "\n")
    }
}
