import Ledger

/// What `gc` removed (or, with `--dry-run`, would remove).
public struct GCResult: Encodable, Sendable {
    public var dryRun: Bool
    /// Commits no ref, reflog entry or bisect session reaches, oldest first.
    public var removedCommits: [String]
    public var removedTensorVersions: Int
    public var removedObjects: Int
    /// Stored (compressed) bytes of the removed objects.
    public var removedStoredBytes: Int
    /// Reflog entries dropped: older than `reflogExpire`, or older than `reflogExpireUnreachable`
    /// with a commit no ref reaches.
    public var removedReflogEntries: Int
    /// The cutoffs applied (`never`, `all` or an ISO date): the config's `gc.reflogExpire` and
    /// `gc.reflogExpireUnreachable`, else 90 and 30 days; `all` for the latter with `--expire-unreachable`.
    public var reflogExpire: String
    public var reflogExpireUnreachable: String
    /// Commits no ref, stash entry or bisect session reaches, kept because the reflog,
    /// `checkout -` or a kept commit's cherry-pick, revert or prune link still names them.
    public var keptUnreachableCommits: Int
    /// The ledger file and its WAL before and after (equal for a dry run).
    public var ledgerBytesBefore: Int
    public var ledgerBytesAfter: Int
}

extension Repository {
    /// `wledger gc [--expire-unreachable] [--dry-run]`: removes the commits nothing reaches (left
    /// behind by `reset --hard`, `branch -D`, `commit --amend`-style rewrites), the tensor versions
    /// and objects only they used, then compacts the ledger file. As git's gc, it first expires
    /// the reflog (`gc.reflogExpire`, default 90 days; `gc.reflogExpireUnreachable`, default 30
    /// days, for entries of commits no ref reaches); the commits the remaining entries name are
    /// kept, so `HEAD@{N}` still works. `expireUnreachable` drops every entry of a commit no ref
    /// reaches (git's `reflog expire --expire-unreachable=now --all` then `gc --prune=now`). The
    /// work tree is never touched.
    public func gc(expireUnreachable: Bool = false, dryRun: Bool = false, progress: ProgressReporter = .silent) throws -> GCResult {
        let (all, unreachable) = try reflogExpiryTimes(expire: nil, expireUnreachable: nil, unreachableNow: expireUnreachable)
        let before = ledger.fileBytes()
        // `checkout -` remembers a detached HEAD's commit.
        let previous = try ledger.meta(Self.previousHeadKey).flatMap { $0.hasPrefix(RefKind.branch.prefix) ? nil : $0 }
        let plan = try ledger.collectGarbage(otherRoots: previous.map { [$0] } ?? [],
                                           expiry: ReflogExpiry(before: all.cutoff, unreachableBefore: unreachable.cutoff), dryRun: dryRun)
        let removedAnything = !plan.commits.isEmpty || plan.tensorVersions > 0 || plan.objects > 0
        // Compacted when a commit, version or object went, or when free pages make up 1% of the
        // file or more (an earlier compaction failed, or other work freed them); reflog rows
        // aged out alone free too little to rewrite the file for.
        let free = try ledger.freeBytes()
        if !dryRun && (removedAnything || (free > 0 && free >= before / 100)) {
            progress.start("compacting the ledger", total: 1)
            do { try ledger.vacuum() } catch {
                progress.finish()
                // The removal is committed; only the file's compaction failed (e.g. no space for
                // its temporary copy), which leaves a whole ledger with free pages in it.
                let why: String
                if case LedgerError.diskFull = error { why = "no space left on device" } else { why = "\(error)" }
                let removed = removedAnything ? "removed \(plan.commits.count) commit(s) and \(plan.objects) object(s), but " : ""
                throw KitError.refused(removed + "compacting '\(ledger.path)' failed: \(why) (the ledger is intact and later commits "
                    + "reuse its free space; 'wledger gc' compacts it once there is room for a temporary copy and a WAL of its size)")
            }
            progress.advance()
            progress.finish()
        }
        return GCResult(dryRun: dryRun, removedCommits: plan.commits, removedTensorVersions: plan.tensorVersions,
                        removedObjects: plan.objects, removedStoredBytes: plan.storedBytes,
                        removedReflogEntries: plan.reflogEntries, reflogExpire: all.description,
                        reflogExpireUnreachable: unreachable.description, keptUnreachableCommits: plan.keptByReflog,
                        ledgerBytesBefore: before, ledgerBytesAfter: dryRun ? before : ledger.fileBytes())
    }
}
