import BridgeCore
import BridgePostgres

/// A task's key: the value of the tasks table's key column (`source.key`) in its text form, as
/// `::text` gives it (`42`, a lower-case uuid, …). The claim, `--task`, the ledger
/// (`bridge.run_journals`, `run_states`, `approval_waits`, `journal_calls`, `model_calls`) and
/// the traces' `task_id` all carry it; a type of its own so that it is never taken for a lease
/// token, an execution key or a trace id.
///
/// It binds as text. A statement comparing it with the key column itself appends the column's
/// type (`ColumnTypes.cast` / `arrayCast`), so the comparison stays on the column's own type and
/// its index serves it; the ledger's `task_key` columns are text and need no cast.
public struct TaskKey: TextID, PostgresBindable, PostgresDecodable {
    public let text: String

    public init(_ text: String) { self.text = text }
}
