import CSQLite
import Codec

/// A value bound to or read from SQLite.
public enum SQLValue: Sendable, Equatable {
    case null
    case int(Int64)
    case double(Double)
    case text(String)
    case blob([UInt8])
}

extension Int: SQLBindable { public var sqlValue: SQLValue { .int(Int64(self)) } }
extension Int64: SQLBindable { public var sqlValue: SQLValue { .int(self) } }
extension Double: SQLBindable { public var sqlValue: SQLValue { .double(self) } }
extension String: SQLBindable { public var sqlValue: SQLValue { .text(self) } }
extension Optional: SQLBindable where Wrapped: SQLBindable { public var sqlValue: SQLValue { self?.sqlValue ?? .null } }

/// Types that can be bound as SQL parameters.
public protocol SQLBindable { var sqlValue: SQLValue { get } }

/// The one wrapper around the SQLite C API: a connection owning its handle.
///
/// One connection per process is enough. It is opened in SQLite's serialized mode
/// (`SQLITE_OPEN_FULLMUTEX`) so that `BlobReader`s may read stored chunks on decoding threads while
/// the owning thread goes on; everything else (statements, the statement cache) belongs to the
/// thread that opened it. The corresponding C functions are `sqlite3_open_v2`, `sqlite3_prepare_v3`, `sqlite3_step`.
public final class Database {
    let handle: OpaquePointer
    public let path: String
    /// Opened with `immutable`: SQLite reads the file and nothing else, takes no locks and writes
    /// nothing (no -wal or -shm file); a transaction is a plain BEGIN, and a write in it fails.
    public let immutable: Bool

    /// Opens (or creates) the database at `path`; `immutable`: read only, for a database no
    /// process changes while it is open and whose WAL holds nothing (SQLite's `immutable=1`).
    public init(path: String, create: Bool, immutable: Bool = false) throws {
        self.path = path
        self.immutable = immutable
        var db: OpaquePointer?
        let rc: Int32
        if immutable {
            // A URI: '%', '?', '#' and non-ASCII bytes of the path are %-escaped.
            var uri = "file:"
            let hex = Array("0123456789ABCDEF")
            for c in path.utf8 {
                if c >= 0x80 || c == UInt8(ascii: "%") || c == UInt8(ascii: "?") || c == UInt8(ascii: "#") {
                    uri += "%" + String(hex[Int(c >> 4)]) + String(hex[Int(c & 15)])
                } else {
                    uri.unicodeScalars.append(UnicodeScalar(c))
                }
            }
            rc = sqlite3_open_v2(uri + "?mode=ro&immutable=1", &db, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI | SQLITE_OPEN_FULLMUTEX, nil)
        } else {
            rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_FULLMUTEX, nil)
        }
        guard rc == SQLITE_OK, let db else {
            let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? "cannot open"
            if let db { sqlite3_close_v2(db) }
            throw LedgerError.sqlite(code: rc, message: msg, sql: nil)
        }
        handle = db
        sqlite3_extended_result_codes(db, 1)
        sqlite3_busy_timeout(db, 60_000)
    }

    /// Statements of `run`/`query`/`queryOne`, prepared once per SQL text and reset after each
    /// use (a ledger lookup repeated per tensor costs a bind and a step, not a parse).
    private var cache: [String: Statement] = [:]

    deinit {
        cache.removeAll()   // finalized before the connection closes
        sqlite3_close_v2(handle)
    }

    private func error(_ rc: Int32, _ sql: String?) -> LedgerError {
        failure(rc, Database.message(handle, rc), sql)
    }

    /// The connection's message for the failure `rc`, or SQLite's generic text for `rc` when the
    /// connection's error state no longer is that failure: decoding threads read blobs through
    /// this (serialized) connection, and a call of theirs between the failure and this one resets
    /// the state ("not an error").
    static func message(_ db: OpaquePointer, _ rc: Int32) -> String {
        sqlite3_extended_errcode(db) == rc ? String(cString: sqlite3_errmsg(db)) : String(cString: sqlite3_errstr(rc))
    }

    /// The error for a failed call: a full disk names the ledger file, anything else is an SQLite error.
    func failure(_ rc: Int32, _ message: String, _ sql: String?) -> LedgerError {
        Database.failure(rc, message, sql, path: path)
    }

    static func failure(_ rc: Int32, _ message: String, _ sql: String?, path: String) -> LedgerError {
        switch rc & 0xFF {
        case SQLITE_FULL: return .diskFull(path: path)
        // (not READONLY_DBMOVED: the file was moved or deleted while open, no permission problem)
        case SQLITE_READONLY where rc != SQLITE_READONLY | (4 << 8): return .readOnly(path: path)
        default: return .sqlite(code: rc, message: message, sql: sql)
        }
    }

    /// Runs one or more statements without results.
    public func execute(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? "error"
            sqlite3_free(err)
            throw failure(rc, msg, sql)
        }
    }

    /// Prepares a statement.
    public func prepare(_ sql: String) throws -> Statement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v3(handle, sql, -1, 0, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw error(rc, sql) }
        return Statement(handle: handle, path: path, stmt: stmt, sql: sql)
    }

    /// Runs `body` with the cached statement for `sql` bound to `params`, resetting it afterwards
    /// so it holds no lock. A statement already in use (a row mapper running the same SQL) gets
    /// a fresh one.
    private func withStatement<T>(_ sql: String, _ params: [SQLValue], _ body: (Statement) throws -> T) throws -> T {
        let s: Statement
        if let c = cache[sql], !c.inUse {
            s = c
        } else {
            s = try prepare(sql)
            if cache[sql] == nil { cache[sql] = s }
        }
        s.inUse = true
        defer {
            sqlite3_reset(s.stmt)
            sqlite3_clear_bindings(s.stmt)
            s.inUse = false
        }
        try s.bind(params)
        return try body(s)
    }

    /// Runs a statement with parameters and discards results.
    public func run(_ sql: String, _ params: [SQLValue] = []) throws {
        try withStatement(sql, params) { s in while try s.step() {} }
    }

    /// Runs a query and maps every row.
    public func query<T>(_ sql: String, _ params: [SQLValue] = [], _ row: (Statement) throws -> T) throws -> [T] {
        try withStatement(sql, params) { s in
            var out: [T] = []
            while try s.step() { out.append(try row(s)) }
            return out
        }
    }

    /// The first row of a query, mapped, or nil.
    public func queryOne<T>(_ sql: String, _ params: [SQLValue] = [], _ row: (Statement) throws -> T) throws -> T? {
        try withStatement(sql, params) { s in try s.step() ? row(s) : nil }
    }

    /// Reads the whole blob in `column` of row `rowid` of `table` straight into a new array
    /// (incremental blob I/O: SQLite copies the pages into the array, with no intermediate copy).
    public func readBlob(table: String, column: String, rowid: Int64, count: Int) throws -> [UInt8] {
        var blob: OpaquePointer?
        var rc = sqlite3_blob_open(handle, "main", table, column, rowid, 0, &blob)
        guard rc == SQLITE_OK, let blob else { throw error(rc, "blob \(table).\(column) row \(rowid)") }
        defer { sqlite3_blob_close(blob) }
        guard Int(sqlite3_blob_bytes(blob)) == count, count <= Int(Int32.max) else {
            throw LedgerError.invalid("blob \(table).\(column) row \(rowid) holds \(sqlite3_blob_bytes(blob)) bytes, expected \(count)")
        }
        var out = uninitializedBytes(count)
        rc = out.withUnsafeMutableBytes { sqlite3_blob_read(blob, $0.baseAddress, Int32(count), 0) }
        guard rc == SQLITE_OK else { throw error(rc, "blob \(table).\(column) row \(rowid)") }
        return out
    }

    /// Whether other threads may call into this connection: the library is built thread-safe, so
    /// the connection was opened serialized.
    public var serialized: Bool { sqlite3_threadsafe() != 0 }

    /// Opens the blob in `column` of row `rowid` of `table` for reads by offset, from any thread.
    ///
    /// While a reader is open the connection holds a read transaction on the snapshot it opened
    /// in: on this connection, `BEGIN IMMEDIATE` then fails at once (`SQLITE_BUSY_SNAPSHOT`, no
    /// busy wait) if another connection has committed since, and a checkpoint cannot finish
    /// (`SQLITE_LOCKED`). Callers therefore finish their decodes before they write or checkpoint
    /// (commit, checkout and fsck do). Closing and reopening per piece would avoid that, but each
    /// open walks the blob's overflow-page chain from its start again.
    public func openBlob(table: String, column: String, rowid: Int64, count: Int) throws -> BlobReader {
        var blob: OpaquePointer?
        let rc = sqlite3_blob_open(handle, "main", table, column, rowid, 0, &blob)
        guard rc == SQLITE_OK, let blob else {
            if let blob { sqlite3_blob_close(blob) }
            throw failure(rc, String(cString: sqlite3_errstr(rc)), "blob \(table).\(column) row \(rowid)")
        }
        guard Int(sqlite3_blob_bytes(blob)) == count, count <= Int(Int32.max) else {
            let held = sqlite3_blob_bytes(blob)
            sqlite3_blob_close(blob)
            throw LedgerError.invalid("blob \(table).\(column) row \(rowid) holds \(held) bytes, expected \(count)")
        }
        return BlobReader(database: self, handle: blob, count: count, what: "blob \(table).\(column) row \(rowid)")
    }

    /// Rows changed by the last statement.
    public var changes: Int { Int(sqlite3_changes(handle)) }

    /// Runs `body` in a `BEGIN IMMEDIATE` transaction (a plain BEGIN on an immutable database);
    /// rolls back if it throws.
    public func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute(immutable ? "BEGIN" : "BEGIN IMMEDIATE")
        do {
            let v = try body()
            try execute("COMMIT")
            return v
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }

    /// A single integer PRAGMA value.
    public func pragma(_ name: String) throws -> Int64 {
        try queryOne("PRAGMA \(name)") { $0.int(0) } ?? 0
    }
}

/// An open blob read by offset (`sqlite3_blob_read`), closed on deinit. It keeps its connection
/// open and may be used from any thread, one thread at a time.
public final class BlobReader {
    private let database: Database
    private let handle: OpaquePointer
    private let what: String
    public let count: Int

    init(database: Database, handle: OpaquePointer, count: Int, what: String) {
        self.database = database; self.handle = handle; self.count = count; self.what = what
    }

    /// Copies `buffer.count` bytes from `offset` into `buffer`.
    public func read(_ offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws {
        guard offset >= 0, buffer.count <= count - offset else {
            throw LedgerError.invalid("\(what): read of \(buffer.count) bytes at \(offset) passes its \(count) bytes")
        }
        guard buffer.count > 0 else { return }
        let rc = sqlite3_blob_read(handle, buffer.baseAddress, Int32(buffer.count), Int32(offset))
        guard rc == SQLITE_OK else { throw database.failure(rc, String(cString: sqlite3_errstr(rc)), what) }
    }

    deinit { sqlite3_blob_close(handle) }
}

/// A prepared statement owning its handle; finalized on deinit.
public final class Statement {
    // The connection's handle, not the `Database` (whose statement cache holds statements): a
    // statement outliving its `Database` keeps the closed connection alive until it is finalized.
    let handle: OpaquePointer
    let path: String
    let stmt: OpaquePointer
    let sql: String
    /// Set while a cached statement is being stepped (see `Database.withStatement`).
    var inUse = false

    init(handle: OpaquePointer, path: String, stmt: OpaquePointer, sql: String) {
        self.handle = handle; self.path = path; self.stmt = stmt; self.sql = sql
    }

    deinit { sqlite3_finalize(stmt) }

    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    /// Resets the statement and binds parameters 1...n.
    public func bind(_ params: [SQLValue]) throws {
        sqlite3_reset(stmt)
        sqlite3_clear_bindings(stmt)
        for (i, p) in params.enumerated() {
            let idx = Int32(i + 1)
            let rc: Int32
            switch p {
            case .null: rc = sqlite3_bind_null(stmt, idx)
            case let .int(v): rc = sqlite3_bind_int64(stmt, idx, v)
            case let .double(v): rc = sqlite3_bind_double(stmt, idx, v)
            case let .text(s):
                // By length, not up to the first NUL: a tensor name may hold U+0000.
                var s = s
                rc = s.withUTF8 { u in
                    u.withMemoryRebound(to: CChar.self) { c in
                        withUnsafePointer(to: CChar(0)) { empty in
                            sqlite3_bind_text64(stmt, idx, c.baseAddress ?? empty, sqlite3_uint64(c.count), Statement.transient, UInt8(SQLITE_UTF8))
                        }
                    }
                }
            case let .blob(b):
                rc = b.withUnsafeBytes { sqlite3_bind_blob64(stmt, idx, $0.baseAddress ?? UnsafeRawPointer(bitPattern: 1), sqlite3_uint64($0.count), Statement.transient) }
            }
            guard rc == SQLITE_OK else { throw Database.failure(rc, Database.message(handle, rc), sql, path: path) }
        }
    }

    /// Binds a blob parameter without copying; `bytes` must stay valid until the statement is stepped.
    public func bindBlobNoCopy(_ index: Int, _ bytes: UnsafeRawBufferPointer) throws {
        let rc = sqlite3_bind_blob64(stmt, Int32(index), bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1), sqlite3_uint64(bytes.count), nil)
        guard rc == SQLITE_OK else { throw Database.failure(rc, Database.message(handle, rc), sql, path: path) }
    }

    /// Advances; true when a row is available.
    @discardableResult
    public func step() throws -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw Database.failure(rc, Database.message(handle, rc), sql, path: path)
    }

    public func isNull(_ col: Int) -> Bool { sqlite3_column_type(stmt, Int32(col)) == SQLITE_NULL }
    public func int(_ col: Int) -> Int64 { sqlite3_column_int64(stmt, Int32(col)) }
    public func double(_ col: Int) -> Double { sqlite3_column_double(stmt, Int32(col)) }
    public func text(_ col: Int) -> String {
        guard let p = sqlite3_column_text(stmt, Int32(col)) else { return "" }
        return String(decoding: UnsafeBufferPointer(start: p, count: Int(sqlite3_column_bytes(stmt, Int32(col)))), as: UTF8.self)
    }
    public func optionalText(_ col: Int) -> String? { isNull(col) ? nil : text(col) }
    public func optionalDouble(_ col: Int) -> Double? { isNull(col) ? nil : double(col) }
    public func optionalInt(_ col: Int) -> Int64? { isNull(col) ? nil : int(col) }

    /// Calls `body` with the blob of column `col` (valid only inside `body`).
    public func withBlob<T>(_ col: Int, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
        let n = Int(sqlite3_column_bytes(stmt, Int32(col)))
        let p = sqlite3_column_blob(stmt, Int32(col))
        return try body(UnsafeRawBufferPointer(start: p, count: n))
    }

    public func blob(_ col: Int) -> [UInt8] { withBlob(col) { Array($0) } }
}
