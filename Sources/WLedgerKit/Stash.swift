import Foundation
import Ledger

/// One stash entry, as `stash list` shows it.
public struct StashItem: Encodable, Sendable {
    /// `stash@{N}`.
    public var selector: String
    public var commit: String
    /// The commit it was made on (HEAD then).
    public var base: String
    public var message: String
    public var date: String
}

/// What `stash show` reports.
public struct StashShowResult: Encodable, Sendable {
    public var stash: StashItem
    /// ΔW per changed tensor, the commit it was made on to the stash.
    public var diff: DiffReport
    /// Files whose bytes the stash changed (side files, and weight files whose header changed).
    public var files: [StatusReport.SideFileChange]
}

/// What `stash push` did.
public struct StashPushResult: Encodable, Sendable {
    /// Nil when there was nothing to save.
    public var stash: StashItem?
    public var commit: CommitResult?
    /// The work tree's rewrite back to HEAD.
    public var checkout: CheckoutResult?
}

/// What `stash apply` / `stash pop` did.
public struct StashApplyResult: Encodable, Sendable {
    public var stash: StashItem
    public var checkout: CheckoutResult
    /// `pop`: the entry was dropped.
    public var dropped: Bool
}

extension Repository {
    /// `wledger stash [push] [-m MSG] [-u]`: records the work tree's uncommitted changes (tensors,
    /// headers, tracked side files; untracked ones stay, as with git, unless `includeUntracked`
    /// records them too and removes them from the work tree) as a commit on HEAD that no
    /// ref points to, pushed onto the stash (`stash@{0}`), then writes HEAD's bytes back where the
    /// work tree differs (`checkout` with `discard`). Hooks do not run. Nothing to save: a result
    /// with no stash.
    public func stashPush(message: String? = nil, includeUntracked: Bool = false, progress: ProgressReporter = .silent) throws -> StashPushResult {
        let head = try ledger.head()
        let subject = (try ledger.commit(head.commit)?.message ?? "").split(separator: "\n", omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let on = head.branchName ?? "(no branch)"
        var options = CommitOptions(message: message.map { "On \(on): \($0)" } ?? "WIP on \(on): \(head.commit.prefix(12)) \(subject)")
        options.stash = true
        options.stashUntracked = includeUntracked
        options.policy.allowNonFinite = true   // a stash saves whatever the work tree holds
        let hooks = verifyHooks
        verifyHooks = false
        defer { verifyHooks = hooks }
        let committed: CommitResult
        do {
            committed = try commit(options, progress: progress)
        } catch KitError.refused(let why) where why == Repository.nothingToCommit {
            return StashPushResult(stash: nil, commit: nil, checkout: nil)
        }
        // The saved changes are overwritten with HEAD's bytes, only where they differ. If that
        // fails before its journal is written the work tree is as it was: the entry is dropped
        // again, so a retry does not stash twice (the commit is left for gc).
        let restored: CheckoutResult
        do {
            // The untracked files a `-u` stash recorded go from the work tree, as git's do.
            let untracked = includeUntracked ? try ledger.fileRows(of: committed.commit) : []
            var digests: [String: String] = [:]
            for f in untracked { digests[f.path] = f.object }
            restored = try checkout("HEAD", alsoRemoving: untracked.map(\.path), discard: true, removeDigests: digests, progress: progress)
        } catch {
            if !FileManager.default.fileExists(atPath: journalPath) { try? ledger.transaction { _ = try ledger.dropStash(0) } }
            throw error
        }
        return StashPushResult(stash: try stashList().first, commit: committed, checkout: restored)
    }

    /// `wledger stash list`: newest first.
    public func stashList() throws -> [StashItem] {
        try ledger.reflog(Ledger.stashLog).enumerated().map { i, e in
            StashItem(selector: "stash@{\(i)}", commit: e.new, base: try ledger.commit(e.new)?.parent ?? "", message: e.message,
                      date: isoDate(e.time))
        }
    }

    /// `wledger stash show [STASH]`: what a stash entry would change, as git's `stash show`: ΔW
    /// statistics of every tensor it changed against the commit it was made on (`diff
    /// stash@{N}~1 stash@{N}`), and the files whose bytes it changed (tracked side files, and
    /// weight files whose header changed).
    public func stashShow(_ selector: String?, options: DiffOptions = DiffOptions(),
                          progress: ProgressReporter = .silent) throws -> StashShowResult {
        let (_, item) = try stashEntry(selector)
        let diff = try self.diff(item.base, item.commit, options: options, progress: progress)
        let before = try ledger.files(of: item.base), after = try ledger.files(of: item.commit)
        var files: [StatusReport.SideFileChange] = []
        for path in Set(before.keys).union(after.keys).sorted() {
            switch (before[path], after[path]) {
            case (nil, _?): files.append(.init(path: path, change: .added))
            case (_?, nil): files.append(.init(path: path, change: .deleted))
            case let (b?, a?) where b.object != a.object: files.append(.init(path: path, change: .modified))
            default: break
            }
        }
        return StashShowResult(stash: item, diff: diff, files: files)
    }

    /// The entry `selector` names ("stash@{N}", "N", or nil for the newest) with its index.
    func stashEntry(_ selector: String?) throws -> (index: Int, item: StashItem) {
        let list = try stashList()
        guard !list.isEmpty else { throw KitError.usage("no stash entries") }
        guard let s = selector else { return (0, list[0]) }
        let digits = s.hasPrefix("stash@{") && s.hasSuffix("}") ? String(s.dropFirst(7).dropLast()) : s
        guard let n = Int(digits), n >= 0 else { throw KitError.usage("'\(s)' is not a stash entry (stash@{N} or N)") }
        guard n < list.count else { throw KitError.usage("'\(s)': the stash has \(Ledger.stashSizeText(list.count))") }
        return (n, list[n])
    }

    /// `wledger stash apply|pop [STASH]`: writes the stash's files into the work tree, leaving HEAD
    /// where it is, so its changes are uncommitted again; `pop` then drops the entry. HEAD must be
    /// the commit the stash was made on (elsewhere: `stashBranch`, or `cherry-pick stash@{N}` to
    /// commit its ΔW onto HEAD). Uncommitted changes the stash does not touch are
    /// kept, as a checkout keeps them; any other refuses before anything is written.
    public func stashApply(_ selector: String? = nil, pop: Bool = false, progress: ProgressReporter = .silent) throws -> StashApplyResult {
        let (index, item) = try stashEntry(selector)
        let head = try ledger.head()
        guard head.commit == item.base else {
            let tensorsOnly = try ledger.fileRows(of: item.commit).isEmpty
            throw KitError.refused("\(item.selector) was made on \(item.base.prefix(12)), HEAD is \(head.commit.prefix(12)): check out \(item.base.prefix(12)) to apply it there ('wledger stash branch NAME' makes a branch there and pops it)"
                + (tensorsOnly ? ", or 'wledger cherry-pick \(item.selector)' to commit its ΔW onto HEAD" : ""))
        }
        // By its selector, so a refusal names the stash entry.
        let result = try checkout(item.selector, keepHead: true, progress: progress)
        if pop { _ = try ledger.transaction { try ledger.dropStash(index) } }
        return StashApplyResult(stash: item, checkout: result, dropped: pop)
    }

    /// `wledger stash branch NAME [STASH]`: creates branch NAME at the commit the stash was made on,
    /// checks it out (as `checkout -b`), and pops the stash there, where it always applies.
    public func stashBranch(_ name: String, _ selector: String? = nil, progress: ProgressReporter = .silent) throws -> StashApplyResult {
        let (_, item) = try stashEntry(selector)
        _ = try checkout(item.base, newBranch: name, progress: progress)
        return try stashApply(item.selector, pop: true, progress: progress)
    }

    /// `wledger stash drop [STASH]`: removes one entry (its commit stays until `gc`).
    public func stashDrop(_ selector: String? = nil) throws -> StashItem {
        let (index, item) = try stashEntry(selector)
        _ = try ledger.transaction { try ledger.dropStash(index) }
        return item
    }

    /// `wledger stash clear`: removes every entry; returns how many there were.
    public func stashClear() throws -> Int { try ledger.transaction { try ledger.clearStash() } }
}
