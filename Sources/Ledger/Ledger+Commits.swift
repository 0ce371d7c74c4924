import TensorIO

extension Ledger {
    private static let commitColumns = "id, parent, generation, kind, message, author, time, method, request, parameters, tree, fullManifest"

    private func commitRow(_ s: Statement) throws -> CommitRecord {
        guard let kind = CommitKind(rawValue: s.text(3)) else { throw LedgerError.invalid("commit '\(s.text(0).prefix(12))' has unknown kind '\(s.text(3))'") }
        return CommitRecord(id: s.text(0), parent: s.optionalText(1), generation: Int(s.int(2)), kind: kind,
                            message: s.text(4), author: s.text(5), time: s.int(6), method: s.optionalText(7),
                            request: s.optionalText(8), parameters: s.optionalText(9), tree: s.text(10), fullManifest: s.int(11) != 0)
    }

    public func commit(_ id: String) throws -> CommitRecord? {
        try db.queryOne("SELECT \(Ledger.commitColumns) FROM \"commit\" WHERE id = ?", [.text(id)], commitRow)
    }

    /// Commits whose id starts with `prefix` (lowercase hex).
    public func commits(withPrefix prefix: String) throws -> [String] {
        let upper = prefix + "g"  // every hex id with this prefix sorts below prefix + "g"
        return try db.query("SELECT id FROM \"commit\" WHERE id >= ? AND id < ? LIMIT 10", [.text(prefix), .text(upper)]) { $0.text(0) }
    }

    /// Number of commits in the ledger.
    public func commitCount() throws -> Int {
        try db.queryOne("SELECT count(*) FROM \"commit\"") { Int($0.int(0)) } ?? 0
    }

    /// All commits (for fsck and log --all).
    public func allCommits() throws -> [CommitRecord] {
        try db.query("SELECT \(Ledger.commitColumns) FROM \"commit\" ORDER BY generation, time, id", [], commitRow)
    }

    /// Inserts a commit with its manifest and file rows. Call inside a transaction.
    /// - Parameters:
    ///   - tensors: rows to store; `stats` non-nil marks tensors changed by this commit.
    ///   - files: rows to store (changed files, or all of them for a full manifest).
    public func insert(_ c: CommitRecord, tensors: [(entry: ManifestEntry, stats: ChangeStats?)], files: [FileEntry]) throws {
        try db.run("INSERT INTO \"commit\"(\(Ledger.commitColumns)) VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", [
            .text(c.id), c.parent.sqlValue, .int(Int64(c.generation)), .text(c.kind.rawValue), .text(c.message), .text(c.author),
            .int(c.time), c.method.sqlValue, c.request.sqlValue, c.parameters.sqlValue, .text(c.tree), .int(c.fullManifest ? 1 : 0),
        ])
        let ts = try db.prepare("""
            INSERT INTO commitTensor("commit", name, file, dtype, shape, hash, changed, l1, frobenius, maxAbs, baseNorm, storedBytes)
            VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """)
        for (e, st) in tensors {
            try ts.bind([.text(c.id), .text(e.name), .text(e.file), .text(e.dtype.rawValue), .text(e.shapeJSON), .text(e.hash),
                         st.map { .int(Int64($0.changed)) } ?? .null, st.map { .double($0.l1) } ?? .null,
                         st.map { .double($0.frobenius) } ?? .null, st.map { .double($0.maxAbs) } ?? .null,
                         st.map { .double($0.baseNorm) } ?? .null, st.map { .int(Int64($0.storedBytes)) } ?? .null])
            try ts.step()
        }
        let fs = try db.prepare("INSERT INTO commitFile(\"commit\", path, kind, object, size) VALUES(?, ?, ?, ?, ?)")
        for f in files {
            try fs.bind([.text(c.id), .text(f.path), .text(f.kind.rawValue), f.object.sqlValue, .int(Int64(f.size))])
            try fs.step()
        }
    }

    /// The full manifest of a commit: every tensor name → entry.
    ///
    /// Walks from the commit towards the base, taking each name's newest row, and stops at the
    /// first commit that stores a full manifest (at most `fullManifestInterval` steps).
    public func manifest(of commitID: String) throws -> [String: ManifestEntry] {
        var out: [String: ManifestEntry] = [:]
        try walkManifestChain(of: commitID, table: "commitTensor", columns: "t.name, t.file, t.dtype, t.shape, t.hash") { id, s in
            let name = s.text(0)
            guard out[name] == nil else { return }
            guard let dt = DType(rawValue: s.text(2)) else { throw LedgerError.invalid("commit '\(id.prefix(12))': unknown dtype '\(s.text(2))'") }
            out[name] = ManifestEntry(name: name, file: s.text(1), dtype: dt, shape: try parseShape(s.text(3)), hash: s.text(4))
        }
        return out
    }

    /// The tracked files of a commit (removed side files omitted).
    public func files(of commitID: String) throws -> [String: FileEntry] {
        var out: [String: FileEntry] = [:]
        var seen = Set<String>()
        try walkManifestChain(of: commitID, table: "commitFile", columns: "t.path, t.kind, t.object, t.size") { _, s in
            let path = s.text(0)
            guard seen.insert(path).inserted, let object = s.optionalText(2) else { return }
            out[path] = FileEntry(path: path, kind: FileKind(rawValue: s.text(1)) ?? .side, object: object, size: Int(s.int(3)))
        }
        return out
    }

    /// Calls `row` with the rows of `table` (`columns` of alias `t`, from column 0) of `commitID`,
    /// then of each parent in turn up to the first commit that stores a full manifest: newest
    /// first, in one query (a recursive walk of the parents), where a query per commit took
    /// two read transactions per step of a walk up to `fullManifestInterval` long.
    /// - Throws: `LedgerError.unknownRevision` naming the first commit of the walk the ledger
    ///   does not hold; `invalid` for a parent chain that does not end.
    private func walkManifestChain(of commitID: String, table: String, columns: String,
                                   row: (_ commit: String, _ s: Statement) throws -> Void) throws {
        var last: (depth: Int64, id: String, parent: String?, full: Bool)? = nil
        let n = columns.split(separator: ",").count   // the chain's columns follow the table's
        _ = try db.query("""
            WITH RECURSIVE chain(id, parent, full, depth) AS (
                SELECT id, parent, fullManifest, 0 FROM "commit" WHERE id = ?1
                UNION ALL
                SELECT c.id, c.parent, c.fullManifest, chain.depth + 1 FROM chain JOIN "commit" c ON c.id = chain.parent
                WHERE chain.full = 0 AND chain.depth < (SELECT generation FROM "commit" WHERE id = ?1)
            )
            SELECT \(columns), chain.depth, chain.id, chain.parent, chain.full
            FROM chain LEFT JOIN \(table) t ON t."commit" = chain.id ORDER BY chain.depth
            """, [.text(commitID)]) { s -> Void in
            let depth = s.int(n), id = s.text(n + 1)
            if last?.depth != depth { last = (depth, id, s.optionalText(n + 2), s.int(n + 3) != 0) }
            if !s.isNull(0) { try row(id, s) }
        }
        guard let end = last else { throw LedgerError.unknownRevision(commitID) }
        if !end.full, let parent = end.parent {
            // The walk stops after `generation` steps (each parent is a generation older): a
            // parent that exists there is a chain that does not end (a cycle), not a missing one.
            guard try commit(parent) == nil else {
                throw LedgerError.invalid("commit '\(commitID.prefix(12))': its chain of parents is longer than its generation")
            }
            throw LedgerError.unknownRevision(parent)
        }
    }

    /// Tensors changed by a commit with their ΔW statistics against its parent.
    public func changes(of commitID: String) throws -> [(entry: ManifestEntry, stats: ChangeStats)] {
        try db.query("""
            SELECT name, file, dtype, shape, hash, changed, l1, frobenius, maxAbs, baseNorm, storedBytes
            FROM commitTensor WHERE "commit" = ? AND changed IS NOT NULL ORDER BY name
            """, [.text(commitID)]) { s in
            let e = ManifestEntry(name: s.text(0), file: s.text(1), dtype: DType(rawValue: s.text(2)) ?? .u8, shape: try parseShape(s.text(3)), hash: s.text(4))
            // SQLite stores NaN as NULL: a changed row's NULL statistic is a NaN one (weights
            // committed with --allow-nonfinite), not 0.
            let st = ChangeStats(changed: Int(s.int(5)), l1: s.optionalDouble(6) ?? .nan, frobenius: s.optionalDouble(7) ?? .nan,
                                 maxAbs: s.optionalDouble(8) ?? .nan, baseNorm: s.optionalDouble(9) ?? .nan, storedBytes: Int(s.int(10)))
            return (e, st)
        }
    }

    /// Files whose rows a commit stores (changed ones; all for a full manifest).
    public func fileRows(of commitID: String) throws -> [FileEntry] {
        try db.query("SELECT path, kind, object, size FROM commitFile WHERE \"commit\" = ? ORDER BY path", [.text(commitID)]) { s in
            FileEntry(path: s.text(0), kind: FileKind(rawValue: s.text(1)) ?? .side, object: s.optionalText(2), size: Int(s.int(3)))
        }
    }

    /// The commit and its ancestors, newest first (at most `limit`).
    public func history(from commitID: String, limit: Int = Int.max) throws -> [CommitRecord] {
        var out: [CommitRecord] = []
        var cur: String? = commitID
        while let id = cur, out.count < limit {
            guard let c = try commit(id) else { throw LedgerError.unknownRevision(id) }
            out.append(c)
            cur = c.parent
        }
        return out
    }

    /// sha256 of a full manifest and file list: the commit's tree id.
    public static func treeHash(tensors: [String: ManifestEntry], files: [String: FileEntry]) -> String {
        let hasher = SHA256Hasher()
        for name in tensors.keys.sorted() {
            let e = tensors[name]!
            hasher.update(Array("T \(e.name)\u{0}\(e.file)\u{0}\(e.dtype.rawValue)\u{0}\(e.shapeJSON)\u{0}\(e.hash)\n".utf8))
        }
        for path in files.keys.sorted() {
            let f = files[path]!
            hasher.update(Array("F \(f.path)\u{0}\(f.kind.rawValue)\u{0}\(f.object ?? "-")\u{0}\(f.size)\n".utf8))
        }
        return hasher.finalize().hex
    }
}

func parseShape(_ s: String) throws -> [Int] {
    guard case let .array(items) = try JSONParser.parse(Array(s.utf8)) else { throw LedgerError.invalid("bad shape '\(s)'") }
    return try items.map { v in
        guard let i = v.intValue else { throw LedgerError.invalid("bad shape '\(s)'") }
        return Int(i)
    }
}
