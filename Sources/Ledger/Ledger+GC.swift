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
    /// Reflog entries dropped (those the expiry names).
    public var reflogEntries: Int
    /// Commits no ref, stash entry or bisect session reaches that are kept because a reflog
    /// entry, `checkout -`'s memory or a kept commit's link still names them.
    public var keptByReflog: Int
}

/// Which reflog entries `gc` and `reflog expire` drop, as git's `gc.reflogExpire` and
/// `gc.reflogExpireUnreachable`. The stash's log is never expired (its entries go with `stash
/// drop`/`clear`).
public struct ReflogExpiry: Equatable, Sendable {
    /// Entries older than this (unix seconds; `Int64.max`: every entry) go; nil keeps them.
    public var before: Int64?
    /// Entries older than this go when no ref (branch, tag, HEAD), stash entry or bisect session
    /// reaches their commit, and an entry older than this that stays forgets its previous commit
    /// when nothing of those reaches it; nil keeps them.
    public var unreachableBefore: Int64?
    /// The logs it applies to ("HEAD", "refs/heads/x"); nil: every log but the stash's.
    public var refs: [String]?

    public init(before: Int64?, unreachableBefore: Int64?, refs: [String]? = nil) {
        self.before = before
        self.unreachableBefore = unreachableBefore
        self.refs = refs
    }

    /// Keeps every entry (and so every commit the reflog names).
    public static let never = ReflogExpiry(before: nil, unreachableBefore: nil)

    /// SQL conditions on a `reflog` row, given `temp.gcRefLive` (the commits the refs reach) and
    /// `temp.gcExpireRef` (the logs in scope, when `refs` is set): the entry goes; its `old`
    /// is forgotten.
    var conditions: (entry: String, old: String) {
        var scope = "ref <> '\(Ledger.stashLog)'"
        if refs != nil { scope += " AND ref IN (SELECT ref FROM gcExpireRef)" }
        var entry: [String] = [], old: [String] = []
        if let t = before { entry.append("time < \(t)") }
        if let t = unreachableBefore {
            entry.append("(time < \(t) AND new NOT IN (SELECT id FROM gcRefLive))")
            old.append("(time < \(t) AND old NOT IN (SELECT id FROM gcRefLive))")
        }
        func or(_ c: [String]) -> String { c.isEmpty ? "0" : "(\(scope) AND (\(c.joined(separator: " OR "))))" }
        return (or(entry), "(old IS NOT NULL AND \(or(old)))")
    }
}

/// A reflog entry `reflog expire` or `gc` drops.
public struct ExpiredReflogEntry: Equatable, Sendable {
    public var ref: String
    public var old: String?
    public var new: String
    public var time: Int64
    public var message: String
}

extension Ledger {
    /// Creates `temp.gcRefLive` (the commits the refs, the stash entries and a bisect session
    /// reach: what git's refs, refs/stash and refs/bisect/* would) and `temp.gcExpireRef`.
    private func prepareExpiry(_ expiry: ReflogExpiry) throws {
        try db.execute("""
            CREATE TEMP TABLE gcRefLive(id TEXT PRIMARY KEY) WITHOUT ROWID;
            CREATE TEMP TABLE gcExpireRef(ref TEXT PRIMARY KEY) WITHOUT ROWID;
            INSERT INTO gcRefLive WITH RECURSIVE live(id) AS (
                SELECT target FROM ref WHERE target IS NOT NULL
                UNION SELECT new FROM reflog WHERE ref = '\(Self.stashLog)'
                UNION SELECT current FROM bisectSession WHERE current IS NOT NULL
                UNION SELECT origHead FROM bisectSession WHERE origHead IN (SELECT id FROM "commit")
                UNION SELECT target FROM bisectMark
                UNION SELECT c.parent FROM "commit" c JOIN live ON c.id = live.id WHERE c.parent IS NOT NULL)
            SELECT id FROM live;
            """)
        for r in expiry.refs ?? [] { try db.run("INSERT OR IGNORE INTO gcExpireRef VALUES(?)", [.text(r)]) }
    }

    /// The entries `expiry` drops, oldest first.
    private func expiredEntries(_ expiry: ReflogExpiry) throws -> [ExpiredReflogEntry] {
        try db.query("SELECT ref, old, new, time, message FROM reflog WHERE \(expiry.conditions.entry) ORDER BY seq") {
            ExpiredReflogEntry(ref: $0.text(0), old: $0.optionalText(1), new: $0.text(2), time: $0.int(3), message: $0.text(4))
        }
    }

    /// `git reflog expire`: drops the entries `expiry` names, and forgets the previous commit of
    /// the others where it names one (unless `dryRun`); the commits stay until `gc`. Returns the
    /// dropped entries, oldest first.
    public func expireReflog(_ expiry: ReflogExpiry, dryRun: Bool) throws -> [ExpiredReflogEntry] {
        try transaction {
            defer { try? db.execute("DROP TABLE IF EXISTS temp.gcRefLive; DROP TABLE IF EXISTS temp.gcExpireRef") }
            try prepareExpiry(expiry)
            let entries = try expiredEntries(expiry)
            guard !dryRun else { return entries }
            let c = expiry.conditions
            try db.execute("DELETE FROM reflog WHERE \(c.entry); UPDATE reflog SET old = NULL WHERE \(c.old)")
            return entries
        }
    }

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
    /// The reflog entries `expiry` names are dropped first and name no roots (`git reflog
    /// expire`): with `unreachableBefore` = `Int64.max`, the entries of moves to a commit no ref
    /// reaches go, so those commits go too (`--expire-unreachable=now --all`), and an entry of a
    /// move away from one stays without its old value.
    /// Derived rows of removed versions (spectra) and stat-cache rows of removed commits go with
    /// them; cached evaluations are keyed by tree and kept.
    public func collectGarbage(otherRoots: [String], expiry: ReflogExpiry, dryRun: Bool) throws -> GarbagePlan {
        try transaction {
            defer { try? db.execute("DROP TABLE IF EXISTS temp.gcRoot; DROP TABLE IF EXISTS temp.gcLive; DROP TABLE IF EXISTS temp.gcRefLive; DROP TABLE IF EXISTS temp.gcExpireRef; DROP TABLE IF EXISTS temp.gcVersion; DROP TABLE IF EXISTS temp.gcObject") }
            try prepareExpiry(expiry)
            try db.execute("""
                CREATE TEMP TABLE gcRoot(id TEXT PRIMARY KEY) WITHOUT ROWID;
                CREATE TEMP TABLE gcLive(id TEXT PRIMARY KEY) WITHOUT ROWID;
                CREATE TEMP TABLE gcVersion(hash TEXT PRIMARY KEY) WITHOUT ROWID;
                CREATE TEMP TABLE gcObject(id TEXT PRIMARY KEY) WITHOUT ROWID;
                """)
            let closure = """
                WITH RECURSIVE live(id) AS (
                    SELECT id FROM gcRoot
                    UNION SELECT c.parent FROM "commit" c JOIN live ON c.id = live.id WHERE c.parent IS NOT NULL)
                SELECT id FROM live
                """
            // What the refs, the stash entries and a bisect session reach (`prepareExpiry`), then
            // the other names of commits: the reflog entries that stay.
            let expired = expiry.conditions
            try db.execute("""
                INSERT INTO gcRoot SELECT id FROM gcRefLive;
                INSERT OR IGNORE INTO gcRoot SELECT new FROM reflog WHERE NOT \(expired.entry);
                INSERT OR IGNORE INTO gcRoot SELECT old FROM reflog WHERE old IS NOT NULL AND NOT \(expired.entry) AND NOT \(expired.old);
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
            let reflogEntries = Int(try db.queryOne("SELECT count(*) FROM reflog WHERE \(expired.entry)") { $0.int(0) } ?? 0)
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
                DELETE FROM reflog WHERE \(expired.entry);
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
