import BridgeCore

/// The key of a session advisory lock: one 64-bit number, the single form every bridge lock
/// uses (`pg_try_advisory_lock(bigint)`).
///
/// A named key is the first 8 bytes of the SHA-256 of its name, so every worker and every
/// bridge version derive the same key from the same name, and two names collide with odds of
/// 2^-63 rather than `hashtext`'s 2^-32 (which, over thousands of tool and model slots, would
/// let two limits share a lock). The top bit is cleared: `pg_locks` shows a bigint key as
/// `classid` (its high 32 bits) and `objid` (its low 32 bits), and a non-negative key keeps
/// both within `oid`'s range, so `heldQuery` can find it there.
public struct AdvisoryLockKey: Hashable, Sendable, CustomStringConvertible {
    public let rawValue: Int64

    public init(rawValue: Int64) { self.rawValue = rawValue }

    /// The key named `name`, stable across processes and versions.
    public init(name: String) {
        let digest = SHA256.digest(Array(name.utf8))
        var v: UInt64 = 0
        for b in digest.prefix(8) { v = v << 8 | UInt64(b) }
        rawValue = Int64(bitPattern: v & 0x7FFF_FFFF_FFFF_FFFF)
    }

    /// `pg_locks.classid` of this key held in its bigint form.
    public var classID: Int64 { Int64(UInt64(bitPattern: rawValue) >> 32) }
    /// `pg_locks.objid` of this key held in its bigint form.
    public var objectID: Int64 { Int64(UInt64(bitPattern: rawValue) & 0xFFFF_FFFF) }

    public var description: String { String(rawValue) }
}

extension AdvisoryLockKey: PostgresBindable {
    public var postgresValue: PostgresValue { rawValue.postgresValue }
}

/// Session advisory locks, taken without waiting: the one lock idiom of bridge. A session lock
/// is freed by PostgreSQL when its connection ends, so a worker that dies holding one gives it
/// back at once; nothing ever blocks in `pg_advisory_lock` (a blocking wait deadlocks with
/// concurrent index builds and cannot be cancelled), callers poll with backoff instead.
public enum AdvisoryLock {
    /// Takes `key` on `connection` if no other session holds it; whether it is held now.
    public static func tryLock(_ key: AdvisoryLockKey, on connection: PostgresConnection) async throws(PostgresError)
        -> Bool
    {
        try await connection.query("SELECT pg_try_advisory_lock(\(key)::bigint) AS ok").first?.bool("ok") ?? false
    }

    /// Releases `key` on `connection` (closing the connection does too); whether it was held.
    @discardableResult
    public static func unlock(_ key: AdvisoryLockKey, on connection: PostgresConnection) async throws(PostgresError)
        -> Bool
    {
        try await connection.query("SELECT pg_advisory_unlock(\(key)::bigint) AS ok").first?.bool("ok") ?? false
    }

    /// The backend pid of a session that holds `key` in this database, if any (for "waiting
    /// for the lock held by …" messages).
    public static func holder(of key: AdvisoryLockKey, on connection: PostgresConnection) async throws(PostgresError)
        -> Int?
    {
        try await connection.query(
            """
            SELECT pid FROM pg_locks
            WHERE locktype = 'advisory' AND granted AND objsubid = 1
              AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
              AND classid = \(key.classID)::oid AND objid = \(key.objectID)::oid
            LIMIT 1
            """
        ).first?.int("pid")
    }

    /// Takes the first of `keys`, starting at `offset` and wrapping, that no session holds and
    /// this one does not already hold (session locks are reentrant, so a key this session holds
    /// would otherwise be "taken" twice); returns its index, or nil when all are held. One
    /// statement: the function scan yields the keys in array order and LIMIT stops at the first
    /// lock taken (an ORDER BY would evaluate, and so take, every lock before sorting); the CASE
    /// checks `pg_locks` before the lock is tried.
    public static func takeFirstFree(
        _ keys: [AdvisoryLockKey], from offset: Int, on connection: PostgresConnection
    ) async throws(PostgresError) -> Int? {
        guard !keys.isEmpty else { return nil }
        let n = keys.count
        let order = (0..<n).map { (offset + $0) % n }
        let row = try await connection.query(takeFirstFreeQuery(order.map { keys[$0] })).first
        return row?.int("i").map { order[$0 - 1] }
    }

    /// The statement of `takeFirstFree` over keys already in the order to try (`i` is 1-based).
    static func takeFirstFreeQuery(_ keys: [AdvisoryLockKey]) -> PostgresQuery {
        let raw = keys.map(\.rawValue)
        return """
            SELECT x.i FROM unnest(\(raw)::bigint[]) WITH ORDINALITY AS x(k, i)
            WHERE CASE WHEN EXISTS (SELECT 1 FROM pg_locks AS l
                                    WHERE l.locktype = 'advisory' AND l.pid = pg_backend_pid() AND l.objsubid = 1
                                      AND l.classid = (x.k >> 32)::oid AND l.objid = (x.k & 4294967295)::oid)
                       THEN false ELSE pg_try_advisory_lock(x.k) END
            LIMIT 1
            """
    }
}
