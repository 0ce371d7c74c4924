/// Applies the numbered migrations of `schema/` (embedded at build time) in order, each in its
/// own transaction, recording each applied version in `PRAGMA user_version`.
public enum SchemaMigrations {
    /// The newest schema version this binary knows.
    public static var latestVersion: Int { embedded.last?.version ?? 0 }

    /// `PRAGMA application_id` of every wledger ledger ("WLDG").
    public static let applicationID: Int64 = 0x574C_4447

    /// Brings `db` up to `latestVersion`.
    /// - Throws: `LedgerError.newerSchema` if the ledger is newer than this binary.
    static func migrate(_ db: Database) throws {
        let current = Int(try db.pragma("user_version"))
        if current > latestVersion {
            throw LedgerError.newerSchema(path: db.path, found: current, supported: latestVersion)
        }
        var seen = Set<Int>()
        for m in embedded {
            precondition(seen.insert(m.version).inserted, "migration \(m.version) registered twice")
            guard m.version > current else { continue }
            try db.transaction {
                try db.execute(m.sql)
                try db.execute("PRAGMA user_version = \(m.version)")
            }
        }
    }
}
