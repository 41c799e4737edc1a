/// A state bridge writes to a status column, named by the field of the mappings that holds its
/// stored text (`Texts`): the text is the user's own, so code branches on these values and
/// looks the text up only where it reaches SQL (`text(in:)`).
public struct MappedStatus<Texts>: Sendable, Hashable {
    let field: any KeyPath<Texts, String> & Sendable

    /// File-private: only the statuses below exist (`TaskStatus(\.column)` would write a
    /// column name as a status).
    fileprivate init(_ field: any KeyPath<Texts, String> & Sendable) { self.field = field }

    /// The configured text (what the status column holds).
    public func text(in texts: Texts) -> String { texts[keyPath: field] }
}

/// The states bridge moves a task row through; the texts are `source.status` in the mappings
/// (e.g. `in_progress` for `running`).
public typealias TaskStatus = MappedStatus<StatusMapping>

extension MappedStatus<StatusMapping> {
    public static let pending = Self(\.pending)
    public static let running = Self(\.running)
    public static let completed = Self(\.completed)
    public static let failed = Self(\.failed)
}

/// The states of one attempt's execution row; the texts are `results.executions.statuses`.
public typealias ExecutionStatus = MappedStatus<ExecutionStatuses>

extension MappedStatus<ExecutionStatuses> {
    public static let started = Self(\.started)
    public static let completed = Self(\.completed)
    public static let failedRetriable = Self(\.failedRetriable)
    public static let failedTerminal = Self(\.failedTerminal)
}
