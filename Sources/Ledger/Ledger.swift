import Codec
import TensorIO
#if canImport(Glibc)
import Glibc
#endif

/// The SQLite ledger in `.wledger/ledger`: objects, tensor versions, commits, manifests, refs.
///
/// Not thread-safe: one `Ledger` is used from one thread. Encoding and decoding of objects happen
/// off it (`PreparedObject`, `StoredObject`).
public final class Ledger {
    public let path: String
    let db: Database
    /// Opened read-only (`open(at:readOnly:)`): the caches (tensor spectra, work-tree stats,
    /// probes, evaluations) are not written, and any other write fails.
    public var readOnly: Bool { db.immutable }

    /// Every `fullManifestInterval`-th generation stores a full manifest.
    public static let fullManifestInterval = 64

    private init(path: String, db: Database) {
        self.path = path
        self.db = db
    }

    /// Creates a new ledger file at `path` (which must not exist) with 64 KiB pages and WAL.
    public static func create(at path: String) throws -> Ledger {
        let db = try Database(path: path, create: true)
        try db.execute("PRAGMA page_size = 65536")
        try db.execute("PRAGMA journal_mode = WAL")
        try db.execute("PRAGMA application_id = \(SchemaMigrations.applicationID)")
        try configure(db)
        try SchemaMigrations.migrate(db)
        return Ledger(path: path, db: db)
    }

    /// Opens an existing ledger, checking that it is one and migrating it to the current schema.
    /// `readOnly`: for a reader that may not write the ledger or its directory, while no writer
    /// can run (the caller holds the repository lock shared) and the WAL holds nothing; SQLite
    /// then reads the file alone (`Database(immutable:)`).
    /// - Throws: `LedgerError.notALedger` for foreign or damaged files, `.newerSchema` for newer ones.
    public static func open(at path: String, readOnly: Bool = false) throws -> Ledger {
        guard let st = FileStat.of(path) else { throw LedgerError.notALedger(path: path, reason: "file is missing") }
        if st.size == 0 { throw LedgerError.notALedger(path: path, reason: "empty file") }
        // A ledger the user may not read is named as such, not as "not a ledger".
        if access(path, R_OK) != 0 { throw TensorIOError.io(path: path, operation: "read", reason: errnoText()) }
        let db: Database
        do {
            db = try Database(path: path, create: false, immutable: readOnly)
            let appID = try db.pragma("application_id")
            guard appID == SchemaMigrations.applicationID else {
                throw LedgerError.notALedger(path: path, reason: "SQLite database of another application (application_id \(appID))")
            }
        } catch let e as LedgerError {
            if case .notALedger = e { throw e }
            if case let .sqlite(code, message, _) = e {
                throw LedgerError.notALedger(path: path, reason: "\(message) (sqlite code \(code))")
            }
            throw e
        }
        try configure(db)
        try SchemaMigrations.migrate(db)
        return Ledger(path: path, db: db)
    }

    private static func configure(_ db: Database) throws {
        try db.execute("PRAGMA foreign_keys = ON")
        try db.execute("PRAGMA synchronous = NORMAL")
        try db.execute("PRAGMA temp_store = MEMORY")
    }

    /// Schema version recorded in the file.
    public func schemaVersion() throws -> Int { Int(try db.pragma("user_version")) }

    /// Runs `body` in one all-or-nothing transaction.
    public func transaction<T>(_ body: () throws -> T) throws -> T { try db.transaction(body) }

    /// Checkpoints the WAL into the main file (after large writes); `mode` is SQLite's
    /// (TRUNCATE also empties the WAL file, PASSIVE does not wait for readers).
    public func checkpoint(mode: String = "TRUNCATE") throws { try db.execute("PRAGMA wal_checkpoint(\(mode))") }

    /// Runs SQLite's own integrity check; returns problems (empty when fine).
    public func integrityCheck() throws -> [String] {
        let rows = try db.query("PRAGMA integrity_check") { $0.text(0) }
        let fk = try db.query("PRAGMA foreign_key_check") { "foreign key violation in \($0.text(0))" }
        return rows.filter { $0 != "ok" } + fk
    }

    // MARK: meta

    public func meta(_ key: String) throws -> String? {
        try db.queryOne("SELECT value FROM meta WHERE key = ?", [.text(key)]) { $0.text(0) }
    }

    public func setMeta(_ key: String, _ value: String) throws {
        try db.run("INSERT INTO meta(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value", [.text(key), .text(value)])
    }
}
