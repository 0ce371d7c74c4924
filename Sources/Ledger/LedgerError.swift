/// Errors raised by the ledger (SQLite, objects, refs, revisions, locking).
public enum LedgerError: Error, CustomStringConvertible {
    /// An SQLite call failed.
    case sqlite(code: Int32, message: String, sql: String?)
    /// `.wledger/ledger` is not a wledger database, or is damaged.
    case notALedger(path: String, reason: String)
    /// The ledger was written by a newer wledger.
    case newerSchema(path: String, found: Int, supported: Int)
    /// No `.wledger/` above the given directory.
    case noRepository(path: String)
    /// `init` on a directory that already has one.
    case alreadyInitialized(path: String)
    /// A stored object is missing or does not match its hash; `tensor`: the tensor whose version
    /// was being rebuilt from it, where the caller knew (`naming(tensor:_:)`).
    /// `of`: what the object holds, where known ("tensor 'x'", "file 'config.json'").
    case corruptObject(id: String, reason: String, of: String? = nil)
    /// A revision does not name a commit.
    case unknownRevision(String)
    /// A revision prefix matches several commits.
    case ambiguousRevision(String, candidates: [String])
    /// A ref name is invalid, exists already, or moved under us.
    case ref(name: String, reason: String)
    /// Another process holds the lock.
    case locked(path: String, holder: String)
    /// Anything else the ledger refuses (one-line reason).
    case invalid(String)
    /// SQLite could not write the ledger for lack of space; the transaction was rolled back.
    case diskFull(path: String)
    /// SQLite could not write the ledger: a file of it or its directory is read-only.
    case readOnly(path: String, reason: String? = nil)

    public var description: String {
        switch self {
        case let .sqlite(code, message, sql):
            if let sql { return "sqlite error \(code): \(message) (in '\(sql.prefix(80))')" }
            return "sqlite error \(code): \(message)"
        case let .notALedger(path, reason): return "'\(path)' is not a wledger ledger: \(reason)"
        case let .readOnly(path, reason?):
            return "cannot read the ledger '\(path)' without writing to it, which this user may not: \(reason)"
        case let .readOnly(path, nil):
            return "cannot write the ledger '\(path)': it, its -wal or -shm file, or its directory is read-only (check their permissions and owner)"
        case let .newerSchema(path, found, supported):
            return "'\(path)' has ledger schema version \(found), newer than this wledger supports (\(supported)); upgrade wledger"
        case let .noRepository(path): return "not a wledger model directory (or any parent): '\(path)'; run 'wledger init' there first"
        case let .alreadyInitialized(path): return "'\(path)' is already a wledger model directory"
        case let .corruptObject(id, reason, of):
            return (of.map { "\($0): " } ?? "") + "object '\(id.prefix(12))' is corrupt: \(reason)"
        case let .unknownRevision(r): return "unknown revision '\(Self.oneLine(r))'"
        case let .ambiguousRevision(r, c): return "ambiguous revision '\(Self.oneLine(r))': matches \(c.map { String($0.prefix(12)) }.joined(separator: ", "))"
        case let .ref(name, reason): return "ref '\(Self.oneLine(name))': \(reason)"
        case let .locked(path, holder): return "'\(path)' is locked by another wledger process (\(holder)); try again when it finishes"
        case let .invalid(reason): return reason
        case let .diskFull(path): return "cannot write '\(path)': no space left on device (nothing was recorded; free some space and run the command again)"
        }
    }
}

extension LedgerError {
    /// A name or revision the user typed, with control characters (a newline) shown escaped, so
    /// the message that quotes it stays one line.
    static func oneLine(_ s: String) -> String {
        s.unicodeScalars.map { $0.value < 0x20 || $0.value == 0x7F ? $0.escaped(asASCII: true) : String($0) }.joined()
    }

    /// Runs `body`, naming `tensor` in a corrupt-object error it throws that names no tensor yet:
    /// an object is shared by every tensor version built on it, so only the caller knows which
    /// tensor it was rebuilding.
    public static func naming<T>(tensor: String, _ body: () throws -> T) throws -> T {
        try naming("tensor '\(tensor)'", body)
    }

    /// `naming(tensor:)` for a work-tree file's object (a side file, a weight file's header).
    public static func naming<T>(file: String, _ body: () throws -> T) throws -> T {
        try naming("file '\(file)'", body)
    }

    private static func naming<T>(_ label: String, _ body: () throws -> T) throws -> T {
        do {
            return try body()
        } catch let LedgerError.corruptObject(id, reason, nil) {
            throw LedgerError.corruptObject(id: id, reason: reason, of: label)
        }
    }
}
