import Foundation
import Ledger
import TensorIO

/// A model directory under wledger: the work tree and its `.wledger/` ledger.
public final class Repository {
    public static let directoryName = ".wledger"
    public static let ledgerName = "ledger"

    /// The model directory (work tree).
    public let root: String
    public let ledger: Ledger
    /// Held for writing operations; nil for read-only use.
    private var lock: RepositoryLock?
    /// Run the hooks in `.wledger/hooks/` (off: `--no-verify`).
    public var verifyHooks = true
    /// Most bytes held to write tensors in place (`Repository.inPlaceLimit`; tests lower it).
    var inPlaceMemoryLimit = Repository.inPlaceLimit

    public var wledgerDirectory: String { root + "/" + Repository.directoryName }
    public var ledgerPath: String { wledgerDirectory + "/" + Repository.ledgerName }

    init(root: String, ledger: Ledger, lock: RepositoryLock?) {
        self.root = root
        self.ledger = ledger
        self.lock = lock
    }

    /// Finds the repository containing `path` (walking up) and opens its ledger.
    /// - Parameter forWriting: take the repository lock (waiting for other writers).
    public static func open(at path: String, forWriting: Bool, progress: ProgressReporter? = nil) throws -> Repository {
        let root = try discoverRoot(from: path)
        let dir = root + "/" + directoryName
        if !forWriting, access(dir, W_OK) != 0 || access(dir + "/" + ledgerName, W_OK) != 0 {
            return try openReadOnly(root: root, progress: progress)
        }
        let lock = forWriting ? try takeLock(dir, progress: progress) : nil
        let ledger = try Ledger.open(at: dir + "/" + ledgerName)
        let repo = Repository(root: root, ledger: ledger, lock: lock)
        // Finish what a killed process left half done (see Journal.swift) before anything else.
        if forWriting {
            if let notice = try repo.recoverInterruptedOperation() { progress?.message(notice) }
        } else if FileManager.default.fileExists(atPath: repo.journalPath) {
            let held = try takeLock(dir, progress: progress)
            if let notice = try repo.recoverInterruptedOperation() { progress?.message(notice) }
            withExtendedLifetime(held) {}
        }
        return repo
    }

    /// Starts hashing the work tree of the repository at or above `path` before the repository
    /// is opened (and its lock taken), for `commit(_:progress:prefetched:)`; nil when there is no
    /// repository or no readable model there (opening it then says why).
    public static func startHashing(at path: String, progress: ProgressReporter) -> WorkTreeHashing? {
        guard let root = try? discoverRoot(from: path),
              let hashing = TensorHashing.prefetch(root: root, throttle: .besideScan(), progress: progress) else { return nil }
        return WorkTreeHashing(hashing)
    }

    /// A reading command's repository where the user may not write the ledger or `.wledger/`
    /// (another user's model, a read-only mount), as git reads a repository it cannot write: the
    /// lock is held shared while the command runs, so no writer changes the ledger under it, and
    /// SQLite reads the ledger file alone, creating no -wal or -shm file (which it could not).
    /// The caches are not written. A ledger whose WAL holds commits (a writer was killed before
    /// its checkpoint) or whose journal holds an interrupted operation needs a writer first.
    static func openReadOnly(root: String, progress: ProgressReporter?) throws -> Repository {
        let dir = root + "/" + directoryName, path = dir + "/" + ledgerName
        let lock = try takeLock(dir, shared: true, progress: progress)
        if FileManager.default.fileExists(atPath: dir + "/" + journalName) {
            throw LedgerError.readOnly(path: path, reason: "an interrupted operation ('\(dir)/\(journalName)') must be finished by a user who can write it")
        }
        if let wal = FileStat.of(path + "-wal"), wal.size > 0 {
            throw LedgerError.readOnly(path: path, reason: "its WAL holds changes a killed writer left; a user who can write it must open it first")
        }
        let ledger = try Ledger.open(at: path, readOnly: true)
        return Repository(root: root, ledger: ledger, lock: lock)
    }

    /// Takes the repository lock of a `.wledger` directory (`shared`: a reader's, see `openReadOnly`).
    static func takeLock(_ dir: String, shared: Bool = false, progress: ProgressReporter?) throws -> RepositoryLock {
        let timeout = Double(ProcessInfo.processInfo.environment["WLEDGER_LOCK_TIMEOUT"] ?? "") ?? 600
        return try RepositoryLock(path: dir + "/lock", timeout: timeout, shared: shared) { holder in
            progress?.message("waiting for another wledger process (\(holder)) to finish")
        }
    }

    /// The nearest directory at or above `path` that contains `.wledger/`.
    public static func discoverRoot(from path: String) throws -> String {
        // As `git -C`: a directory that is not there is named as such, not as "not a model
        // directory" of a parent (whose weights `commit` would start hashing).
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        if !exists || !isDirectory.boolValue {
            throw KitError.usage("cannot change to '\(path)': \(exists ? "Not a directory" : "No such file or directory")")
        }
        var dir = absolutePath(path)
        while true {
            var isDir: ObjCBool = false
            if FileManager.default.fileExists(atPath: dir + "/" + directoryName, isDirectory: &isDir), isDir.boolValue {
                return dir
            }
            if dir == "/" || dir.isEmpty { throw LedgerError.noRepository(path: path == "." ? absolutePath(path) : path) }
            dir = parentDirectory(of: dir)
        }
    }

    /// Releases the write lock early.
    public func unlock() { lock = nil }

    /// Resolves a revision to a commit id.
    public func resolve(_ revision: String) throws -> String {
        try RevisionResolver(ledger: ledger).resolve(revision)
    }
}

/// An absolute `path` with symbolic links resolved: its deepest existing ancestor by realpath,
/// the rest appended.
func resolvedPath(_ path: String) -> String {
    var head = path, tail: [String] = []
    while !head.isEmpty && head != "/" {
        if let r = realpath(head, nil) {
            defer { free(r) }
            return ([String(cString: r)] + tail.reversed()).joined(separator: "/")
        }
        tail.append(String(head.split(separator: "/").last ?? ""))
        head = parentDirectory(of: head)
    }
    return "/" + tail.reversed().joined(separator: "/")
}

/// `path` made absolute against the current directory, with "." and ".." removed.
public func absolutePath(_ path: String) -> String {
    let base = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    var parts: [Substring] = []
    for p in base.split(separator: "/") {
        if p == "." || p.isEmpty { continue }
        if p == ".." { if !parts.isEmpty { parts.removeLast() }; continue }
        parts.append(p)
    }
    return "/" + parts.joined(separator: "/")
}
