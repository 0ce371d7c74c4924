import Foundation
import TensorIO

/// What a garbage collection removes (or, planned, would remove).
public struct GarbagePlan: Equatable, Sendable {
    /// Commits no root reaches, oldest generation first.
    public var commits: [String]
    /// Tensor versions only those commits (or nothing) use.
    public var tensorVersions: Int
    /// Objects nothing kept refers to, and their stored (compressed) bytes.
    public var objects: Int
    public var storedBytes: Int
    /// Reflog entries dropped (with `expireUnreachable`).
    public var reflogEntries: Int
    /// Commits no ref reaches that are kept because a reflog entry, the bisect session,
    /// `checkout -`'s memory or a kept commit's link still names them.
    public var keptByReflog: Int
}

extension Ledger {
    /// Plans, and unless `dryRun` carries out in one transaction, the removal of everything no
    /// root reaches, as `git gc --prune=now` does:
    ///
    /// - roots: every ref (HEAD, branches, tags), every stash entry, every commit the reflog names (old and new),
    ///   the bisect session's commits and marks, and the extra ids in `otherRoots`;
    /// - kept commits: the roots and all their ancestors, and the commits a kept one links to in
    ///   its parameters (`cherryPickedFrom`, `reverts`, `prunes`) with theirs;
    /// - kept tensor versions: those the kept commits' manifest rows name, and every version on
    ///   their patch chains (a chain can pass through a version only a removed commit introduced);
    /// - kept objects: those the kept versions and the kept commits' file rows store, and those
    ///   `meta` values name (the key statistics of the editors).
    ///
    /// With `expireUnreachable`, reflog entries only name roots when a ref reaches their commits:
    /// the entries of moves to a commit no ref reaches are dropped, so those commits go too
    /// (`git reflog expire --expire-unreachable=now --all`), and an entry of a move away from
    /// one stays without its old value.
    /// Derived rows of removed versions (spectra) and stat-cache rows of removed commits go with
    /// them; cached evaluations are keyed by tree and kept.
    public func collectGarbage(otherRoots: [String], expireUnreachable: Bool, dryRun: Bool) throws -> GarbagePlan {
        try transaction {
            defer { try? db.execute("DROP TABLE IF EXISTS temp.gcRoot; DROP TABLE IF EXISTS temp.gcLive; DROP TABLE IF EXISTS temp.gcRefLive; DROP TABLE IF EXISTS temp.gcVersion; DROP TABLE IF EXISTS temp.gcObject") }
            try db.execute("""
                CREATE TEMP TABLE gcRoot(id TEXT PRIMARY KEY) WITHOUT ROWID;
                CREATE TEMP TABLE gcLive(id TEXT PRIMARY KEY) WITHOUT ROWID;
                CREATE TEMP TABLE gcRefLive(id TEXT PRIMARY KEY) WITHOUT ROWID;
                CREATE TEMP TABLE gcVersion(hash TEXT PRIMARY KEY) WITHOUT ROWID;
                CREATE TEMP TABLE gcObject(id TEXT PRIMARY KEY) WITHOUT ROWID;
                """)
            let closure = """
                WITH RECURSIVE live(id) AS (
                    SELECT id FROM gcRoot
                    UNION SELECT c.parent FROM "commit" c JOIN live ON c.id = live.id WHERE c.parent IS NOT NULL)
                SELECT id FROM live
                """
            // The commits the refs alone keep.
            try db.execute("INSERT OR IGNORE INTO gcRoot SELECT target FROM ref WHERE target IS NOT NULL")
            try db.execute("INSERT INTO gcRefLive \(closure)")
            // Everything else that names a commit.
            if !expireUnreachable {
                try db.execute("""
                    INSERT OR IGNORE INTO gcRoot SELECT new FROM reflog;
                    INSERT OR IGNORE INTO gcRoot SELECT old FROM reflog WHERE old IS NOT NULL;
                    """)
            } else {
                // Stash entries are kept until dropped, like refs.
                try db.run("INSERT OR IGNORE INTO gcRoot SELECT new FROM reflog WHERE ref = ?", [.text(Self.stashLog)])
            }
            try db.execute("""
                INSERT OR IGNORE INTO gcRoot SELECT current FROM bisectSession WHERE current IS NOT NULL;
                INSERT OR IGNORE INTO gcRoot SELECT target FROM bisectMark;
                INSERT OR IGNORE INTO gcRoot SELECT origHead FROM bisectSession WHERE origHead IN (SELECT id FROM "commit");
                """)
            for id in otherRoots {
                try db.run("INSERT OR IGNORE INTO gcRoot SELECT id FROM \"commit\" WHERE id = ?", [.text(id)])
            }
            try db.execute("INSERT INTO gcLive \(closure)")
            // A kept commit's links keep their targets (and those targets' links): cherry-pick
            // follows `cherryPickedFrom` to the first commit of an edit to refuse applying it
            // twice, and a picked revert or prune is matched to its edit through that chain.
            let links = """
                SELECT DISTINCT t FROM (
                    SELECT json_extract(parameters, '$.cherryPickedFrom') AS t FROM "commit" WHERE id IN (SELECT id FROM gcLive) AND parameters IS NOT NULL
                    UNION ALL SELECT json_extract(parameters, '$.reverts') FROM "commit" WHERE id IN (SELECT id FROM gcLive) AND parameters IS NOT NULL
                    UNION ALL SELECT json_extract(parameters, '$.prunes') FROM "commit" WHERE id IN (SELECT id FROM gcLive) AND parameters IS NOT NULL)
                WHERE t IN (SELECT id FROM "commit") AND t NOT IN (SELECT id FROM gcLive)
                """
            while true {
                try db.execute("INSERT OR IGNORE INTO gcRoot \(links)")
                guard (try db.queryOne("SELECT changes()") { $0.int(0) } ?? 0) > 0 else { break }
                try db.execute("DELETE FROM gcLive; INSERT INTO gcLive \(closure)")
            }
            let reflogEntries = Int(try db.queryOne("""
                SELECT count(*) FROM reflog WHERE new NOT IN (SELECT id FROM gcLive)
                """) { $0.int(0) } ?? 0)
            try db.execute("""
                INSERT INTO gcVersion
                WITH RECURSIVE lv(hash) AS (
                    SELECT hash FROM commitTensor WHERE "commit" IN (SELECT id FROM gcLive)
                    UNION SELECT v.base FROM tensorVersion v JOIN lv ON v.hash = lv.hash WHERE v.base IS NOT NULL)
                SELECT hash FROM lv;
                INSERT OR IGNORE INTO gcObject SELECT object FROM tensorVersion WHERE hash IN (SELECT hash FROM gcVersion);
                INSERT OR IGNORE INTO gcObject SELECT object FROM commitFile
                    WHERE object IS NOT NULL AND "commit" IN (SELECT id FROM gcLive);
                """)
            // Objects a meta value names ("<object id> <tokens>" for the editors' key statistics).
            for value in try db.query("SELECT value FROM meta", [], { $0.text(0) }) {
                for word in value.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\"" }) where word.count == 64 {
                    try db.run("INSERT OR IGNORE INTO gcObject SELECT id FROM object WHERE id = ?", [.text(String(word))])
                }
            }
            let commits = try db.query("""
                SELECT id FROM "commit" WHERE id NOT IN (SELECT id FROM gcLive) ORDER BY generation, time, id
                """) { $0.text(0) }
            let keptByReflog = Int(try db.queryOne("""
                SELECT count(*) FROM gcLive WHERE id NOT IN (SELECT id FROM gcRefLive)
                """) { $0.int(0) } ?? 0)
            let versions = Int(try db.queryOne("""
                SELECT count(*) FROM tensorVersion WHERE hash NOT IN (SELECT hash FROM gcVersion)
                """) { $0.int(0) } ?? 0)
            let (objects, stored) = try db.queryOne("""
                SELECT count(*), coalesce(sum(storedSize), 0) FROM object WHERE id NOT IN (SELECT id FROM gcObject)
                """) { (Int($0.int(0)), Int($0.int(1))) } ?? (0, 0)
            let plan = GarbagePlan(commits: commits, tensorVersions: versions, objects: objects, storedBytes: stored,
                                   reflogEntries: reflogEntries, keptByReflog: keptByReflog)
            guard !dryRun else { return plan }
            // Children before parents would not matter (constraints are checked per statement);
            // rows that refer to a removed row go first.
            try db.execute("""
                DELETE FROM reflog WHERE new NOT IN (SELECT id FROM gcLive);
                UPDATE reflog SET old = NULL WHERE old IS NOT NULL AND old NOT IN (SELECT id FROM gcLive);
                DELETE FROM worktreeFile WHERE "commit" NOT IN (SELECT id FROM gcLive);
                DELETE FROM commitTensor WHERE "commit" NOT IN (SELECT id FROM gcLive);
                DELETE FROM commitFile WHERE "commit" NOT IN (SELECT id FROM gcLive);
                DELETE FROM "commit" WHERE id NOT IN (SELECT id FROM gcLive);
                DELETE FROM tensorSpectrum WHERE hash NOT IN (SELECT hash FROM gcVersion);
                DELETE FROM tensorVersion WHERE hash NOT IN (SELECT hash FROM gcVersion);
                DELETE FROM object WHERE id NOT IN (SELECT id FROM gcObject);
                """)
            return plan
        }
    }

    /// Rewrites the ledger file without its free pages (SQLite `VACUUM`, through a temporary
    /// file rather than memory, then the WAL checkpointed and truncated).
    public func vacuum() throws {
        try db.execute("PRAGMA temp_store = FILE")
        defer { try? db.execute("PRAGMA temp_store = MEMORY") }
        try db.execute("VACUUM")
        try checkpoint()
    }

    /// Bytes of the ledger's free pages (what `vacuum` would give back).
    public func freeBytes() throws -> Int { Int(try db.pragma("freelist_count") * db.pragma("page_size")) }

    /// Bytes of the ledger file and its WAL.
    public func fileBytes() -> Int {
        [path, path + "-wal"].reduce(0) { $0 + Int(FileStat.of($1)?.size ?? 0) }
    }
}
