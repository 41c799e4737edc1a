import BridgeCore

/// An error from libpq or from the PostgreSQL server, with the server's own fields.
///
/// `description` is one readable paragraph: the message, SQLSTATE, detail, hint and, when a
/// statement position is known, the position. Passwords never appear in it.
@MemberwiseInit
public struct PostgresError: BridgeError, Sendable, Equatable {
    /// What went wrong, broadly.
    public enum Kind: String, Sendable {
        /// The server could not be reached or the connection broke.
        case connection
        /// The server rejected a statement (it carries a SQLSTATE).
        case server
        /// The client was used wrongly (for example a closed connection).
        case client
    }

    public var kind: Kind
    /// The primary message (`PG_DIAG_MESSAGE_PRIMARY`, or libpq's message).
    public var message: String
    /// The five-character SQLSTATE, e.g. `55P03` for lock_not_available.
    public var sqlState: String? = nil
    public var severity: String? = nil
    public var detail: String? = nil
    public var hint: String? = nil
    /// 1-based character position of the error in the statement text, as the server reports it.
    public var position: Int? = nil
    /// Schema, table, column and constraint names the server attached, when any.
    public var schemaName: String? = nil
    public var tableName: String? = nil
    public var columnName: String? = nil
    public var constraintName: String? = nil
    /// The statement text (values are always bound separately, so it holds no data).
    public var statement: String? = nil

    /// Connection failures are configuration problems (exit 2); statement failures are work failures (exit 1).
    public var exitStatus: ExitStatus { kind == .server ? .failed : .badInput }

    /// `sqlState` as a named code, to compare with the constants of `SQLState`.
    public var code: SQLState? { sqlState.map(SQLState.init(rawValue:)) }

    /// True for lock_not_available (a `lock_timeout` fired) and deadlock_detected.
    public var isLockConflict: Bool { code == .lockNotAvailable || code == .deadlockDetected }

    public var description: String {
        var parts = [message]
        if let sqlState { parts[0] += " (SQLSTATE \(sqlState))" }
        if let tableName {
            parts.append("table: \(schemaName.map { "\($0)." } ?? "")\(tableName)\(columnName.map { ".\($0)" } ?? "")")
        }
        if let detail { parts.append("detail: \(detail)") }
        if let hint { parts.append("hint: \(hint)") }
        if let position { parts.append("at character \(position)") }
        return parts.joined(separator: "; ")
    }
}

/// A SQLSTATE error code (PostgreSQL's Appendix A), with the codes bridge acts on named, as
/// postgres-nio's `PostgresError.Code` names them: code compares `error.code == .undefinedTable`
/// rather than a string literal.
public struct SQLState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) { self.rawValue = rawValue }

    public var description: String { rawValue }

    /// `0A000`: e.g. a prepared statement that would return rows from a utility command.
    public static let featureNotSupported = SQLState(rawValue: "0A000")
    /// `22003`
    public static let numericValueOutOfRange = SQLState(rawValue: "22003")
    /// `22007`
    public static let invalidDatetimeFormat = SQLState(rawValue: "22007")
    /// `22008`
    public static let datetimeFieldOverflow = SQLState(rawValue: "22008")
    /// `22P02`: a text value that does not parse as the column's type.
    public static let invalidTextRepresentation = SQLState(rawValue: "22P02")
    /// `25006`: a write in a READ ONLY transaction.
    public static let readOnlySQLTransaction = SQLState(rawValue: "25006")
    /// `40P01`
    public static let deadlockDetected = SQLState(rawValue: "40P01")
    /// `42P01`
    public static let undefinedTable = SQLState(rawValue: "42P01")
    /// `42703`
    public static let undefinedColumn = SQLState(rawValue: "42703")
    /// `55P03`: a `lock_timeout` fired.
    public static let lockNotAvailable = SQLState(rawValue: "55P03")

    /// The codes of a value that does not fit its column's type (bad text, out of range, bad
    /// date or time).
    public static let badValue: Set<SQLState> = [
        .invalidTextRepresentation, .numericValueOutOfRange, .datetimeFieldOverflow, .invalidDatetimeFormat,
    ]
}
