import BridgeCore
import BridgePostgres

/// A choice the caller of the migrator can make to get past an error (the command names it:
/// errors from this library never spell a command-line flag).
public enum MigrateRemedy: Sendable, Equatable {
    /// Point at another migrations folder.
    case chooseFolder
    /// Give placeholder `name` (or a malformed setting) a value.
    case setPlaceholder(String?)
    /// Apply pending files older than the newest applied one.
    case allowOutOfOrder
    /// Apply despite lint errors.
    case allowLint
    /// Wait longer for the migration lock.
    case waitLonger
}

/// Everything that can stop `bridge migrate`, each quoting the file, line, SQLSTATE or
/// version it concerns.
public enum MigrateError: BridgeError, Sendable, Equatable {
    /// A `.sql` file in the migrations folder is not named `NNNN_name.sql`.
    case badFileName(String)
    /// Two files share a version.
    case duplicateVersion(Int64, String, String)
    /// The migrations folder does not exist.
    case directoryMissing(String)
    /// A file or folder could not be read.
    case unreadable(path: String, reason: String)
    /// A placeholder setting is not `name=value`.
    case badSetting(String)
    /// A placeholder's value is not a (possibly schema-qualified) identifier.
    case badPlaceholderValue(name: String, problem: String)
    /// A `${name}` with no value.
    case unknownPlaceholder(file: String, line: Int, name: String, known: [String])
    /// Unterminated string, identifier or comment.
    case syntax(file: String, line: Int, message: String)
    /// A flag value is out of range or malformed.
    case badOption(String)
    /// A statement failed; nothing of a transactional file was kept.
    case statementFailed(
        file: String, line: Int, statement: String, error: PostgresError, transactional: Bool, done: Int, total: Int)
    /// Applied files whose checksum changed.
    case drift([String])
    /// Pending files older than the newest applied one.
    case outOfOrder(files: [String], newestApplied: String)
    /// A run of this file failed before and the file has since changed.
    case failedRunChanged(String)
    /// Pending files have lint errors.
    case lint([LintFinding])
    /// Another run held the migration lock for longer than the caller would wait.
    case lockWaitTimeout(seconds: Double, holder: Int?)
    /// The connection goes through a transaction-mode pooler.
    case pooler(String)
    /// `baseline VERSION` names no file, or history already has rows past it.
    case baseline(String)
    /// A database error outside a migration statement (connection, history table).
    case database(PostgresError)
    /// A row of the history table that does not read (a column missing, NULL or mistyped).
    case historyRow(PostgresDecodingError)

    public var exitStatus: ExitStatus {
        switch self {
        case .badFileName, .duplicateVersion, .directoryMissing, .unreadable, .badSetting,
            .unknownPlaceholder, .badPlaceholderValue, .syntax, .badOption, .pooler, .baseline:
            return .badInput
        case .database(let e):
            return e.exitStatus
        case .historyRow(let e):
            return e.exitStatus
        case .statementFailed, .drift, .outOfOrder, .failedRunChanged, .lint, .lockWaitTimeout:
            return .failed
        }
    }

    public var description: String {
        switch self {
        case .badFileName(let f):
            return "\(f): migration file names must look like NNNN_name.sql (digits, underscore, letters/digits/_/-)"
        case .duplicateVersion(let v, let a, let b):
            return "\(a) and \(b) share version \(v); every file needs its own version"
        case .directoryMissing(let d):
            return "migrations folder \(d) does not exist"
        case .unreadable(let p, let r):
            return "\(p): \(r)"
        case .badSetting(let s):
            return "placeholder setting \(s): expected name=value with a name of letters, digits and _"
        case .unknownPlaceholder(let f, let l, let n, let known):
            return
                "\(f):\(l): unknown placeholder ${\(n)}, which needs a value (known: \(known.joined(separator: ", ")))"
        case .badPlaceholderValue(let n, let problem):
            return "placeholder ${\(n)}: \(problem); placeholders name tables and columns"
        case .syntax(let f, let l, let m):
            return "\(f):\(l): \(m)"
        case .badOption(let m):
            return m
        case .statementFailed(let f, let l, let stmt, let e, let tx, let done, let total):
            var s = "\(f):\(l): \(e.description)\n  statement: \(Self.excerpt(stmt))"
            if tx {
                s += "\n  the transaction was rolled back: no change from \(f) was kept and history is unchanged"
            } else {
                s +=
                    "\n  \(f) runs without a transaction: \(done) of \(total) statements completed; "
                    + "history records it as failed. Fix the cause and run `bridge migrate` again to resume, "
                    + "or `bridge migrate repair` to clear it"
            }
            return s
        case .drift(let files):
            return "applied migration changed since it ran: \(files.joined(separator: ", ")); "
                + "restore the file, or run `bridge migrate repair` to accept the new checksum"
        case .outOfOrder(let files, let newest):
            return "pending \(files.joined(separator: ", ")) older than applied \(newest); "
                + "give it a newer version, or allow out-of-order files"
        case .failedRunChanged(let f):
            return
                "\(f) failed part-way earlier and has changed since; run `bridge migrate repair` to clear the failed run"
        case .lint(let findings):
            let lines = findings.map { "  " + $0.description }
            return
                "lint errors (fix them, silence one with `-- bridge:lint-ignore RULE reason`, or allow them):\n"
                + lines.joined(separator: "\n")
        case .lockWaitTimeout(let secs, let holder):
            return "gave up after \(Self.seconds(secs)) waiting for the migration lock"
                + (holder.map { " held by backend pid \($0)" } ?? "")
        case .pooler(let why):
            return "\(why); session advisory locks and SET are unsafe through a transaction-mode pooler. "
                + "Use the direct or session-mode connection (for Supabase: port 5432 instead of 6543)"
        case .baseline(let m):
            return m
        case .database(let e):
            return e.description
        case .historyRow(let e):
            return e.description
        }
    }

    /// What the caller can change to get past this error; the command says how (its flags).
    public var remedy: MigrateRemedy? {
        switch self {
        case .directoryMissing: .chooseFolder
        case .badSetting: .setPlaceholder(nil)
        case .unknownPlaceholder(_, _, let name, _): .setPlaceholder(name)
        case .outOfOrder: .allowOutOfOrder
        case .lint: .allowLint
        case .lockWaitTimeout: .waitLonger
        default: nil
        }
    }

    static func excerpt(_ sql: String) -> String {
        let oneLine = sql.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: [" ", "\t"]) }
            .joined(separator: " ")
        return oneLine.count > 160 ? String(oneLine.prefix(157)) + "..." : oneLine
    }

    static func seconds(_ s: Double) -> String {
        s == s.rounded() ? "\(Int(s)) s" : "\((s * 10).rounded() / 10) s"
    }
}
