#if canImport(Glibc)
import Glibc
#endif
import TensorIO

/// An exclusive advisory lock on `.wledger/lock` held by writers (init, commit, checkout, ...),
/// so two wledger processes never interleave changes to the ledger or the work tree.
///
/// The corresponding C function is `flock`. The lock is released when this object is
/// deallocated or the process exits (even by SIGKILL).
public final class RepositoryLock {
    private let fd: Int32
    public let path: String

    /// Takes the lock, waiting up to `timeout` seconds for another process to release it.
    /// `shared`: a reader's shared lock on an existing lock file, opened read-only (a reader
    /// that may not write the ledger keeps writers out while it reads; see `Ledger.open`).
    /// - Parameter onWait: called once, with the holder's description, if we have to wait.
    public init(path: String, timeout: Double, shared: Bool = false, onWait: (String) -> Void) throws {
        self.path = path
        fd = shared ? open(path, O_RDONLY | O_CLOEXEC) : open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw TensorIOError.io(path: path, operation: "open lock", reason: errnoText()) }
        var waited = false
        let deadline = Double(monotonicNanoseconds()) / 1e9 + timeout
        while flock(fd, (shared ? LOCK_SH : LOCK_EX) | LOCK_NB) != 0 {
            guard errno == EWOULDBLOCK || errno == EINTR else {
                let reason = errnoText()
                close(fd)
                throw TensorIOError.io(path: path, operation: "lock", reason: reason)
            }
            let holder = RepositoryLock.holder(path)
            if Double(monotonicNanoseconds()) / 1e9 >= deadline {
                close(fd)
                throw LedgerError.locked(path: path, holder: holder)
            }
            if !waited { onWait(holder); waited = true }
            usleep(50_000)
        }
        if shared { return }
        // Written over the old record, then cut to its length: a waiting process reads this
        // record's line first (or the old one's), never an empty file.
        let pid = "pid \(getpid())\n"
        let length = pid.withCString { pwrite(fd, $0, strlen($0), 0) }
        if length > 0 { ftruncate(fd, off_t(length)) }
    }

    deinit {
        flock(fd, LOCK_UN)
        close(fd)
    }

    private static func holder(_ path: String) -> String {
        guard let bytes = try? readFile(path) else { return "unknown" }
        // The first line: a shorter record written over a longer one leaves the old tail until
        // the file is cut to length.
        let first = bytes.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false).first ?? []
        let s = String(decoding: first, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        return s.isEmpty ? "unknown" : s
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
public func monotonicNanoseconds() -> UInt64 {
    var ts = timespec()
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
}

/// CLOCK_REALTIME in nanoseconds.
public func wallClockNanoseconds() -> Int64 {
    var ts = timespec()
    clock_gettime(CLOCK_REALTIME, &ts)
    return Int64(ts.tv_sec) * 1_000_000_000 + Int64(ts.tv_nsec)
}

private extension String {
    func trimmingCharacters(in _: WhitespaceSet) -> String {
        var s = Substring(self)
        while let f = s.first, f.isWhitespace { s = s.dropFirst() }
        while let l = s.last, l.isWhitespace { s = s.dropLast() }
        return String(s)
    }
}

private enum WhitespaceSet { case whitespacesAndNewlines }
