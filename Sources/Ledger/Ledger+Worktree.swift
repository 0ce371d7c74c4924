import TensorIO

extension Ledger {
    /// The recorded stat of a work-tree file known to equal `commit`'s version, if any.
    public func worktreeStat(_ path: String) throws -> (commit: String, stat: FileStat, recordedNs: Int64)? {
        try db.queryOne("SELECT \"commit\", size, mtimeNs, ctimeNs, inode, device, recordedNs FROM worktreeFile WHERE path = ?", [.text(path)]) { s in
            (s.text(0), FileStat(size: s.int(1), mtimeNs: s.int(2), ctimeNs: s.int(3), inode: UInt64(bitPattern: s.int(4)), device: UInt64(bitPattern: s.int(5))), s.int(6))
        }
    }

    /// Records that the file at `path`, with this stat, equals `commit`'s version.
    public func recordWorktreeStat(_ path: String, commit: String, stat: FileStat, recordedNs: Int64) throws {
        guard !readOnly else { return }   // a cache: left as it is on a read-only ledger
        try db.run("""
            INSERT INTO worktreeFile(path, "commit", size, mtimeNs, ctimeNs, inode, device, recordedNs) VALUES(?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT(path) DO UPDATE SET "commit" = excluded."commit", size = excluded.size, mtimeNs = excluded.mtimeNs,
              ctimeNs = excluded.ctimeNs, inode = excluded.inode, device = excluded.device, recordedNs = excluded.recordedNs
            """, [.text(path), .text(commit), .int(stat.size), .int(stat.mtimeNs), .int(stat.ctimeNs),
                  .int(Int64(bitPattern: stat.inode)), .int(Int64(bitPattern: stat.device)), .int(recordedNs)])
    }

    /// Forgets all recorded stats (everything will be rehashed).
    public func clearWorktreeStats() throws {
        try db.run("DELETE FROM worktreeFile")
    }
}
