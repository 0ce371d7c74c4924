import Foundation
import Ledger

/// A branch or tag as listed by `branch` / `tag`.
public struct RefInfo: Encodable, Sendable {
    public var name: String
    public var commit: String
    public var current: Bool
}

/// What `branch -m` did.
public struct BranchRename: Encodable, Sendable {
    public var from: String
    public var to: String
    public var commit: String
    /// HEAD points to the branch (it followed the rename).
    public var current: Bool
}

/// How far `reset` goes: the ref only, or the work tree too.
public enum ResetMode: String, Encodable, Sendable {
    /// Move the ref; the work tree stays (git's --soft, and its --mixed: there is no index).
    case soft
    /// Move the ref and rewrite the work tree to it, discarding uncommitted changes.
    case hard
}

/// What `reset` did.
public struct ResetResult: Encodable, Sendable {
    /// HEAD's commit before.
    public var from: String
    /// HEAD's commit now.
    public var commit: String
    /// The branch that moved (nil: a detached HEAD moved).
    public var branch: String?
    public var mode: ResetMode
    /// `hard`: the rewrite of the work tree (as `checkout --force HEAD`).
    public var checkout: CheckoutResult?
}

/// One move of HEAD or a branch, as `reflog` lists it (newest first).
public struct ReflogItem: Encodable, Sendable {
    /// How to name this position: "HEAD@{2}", "main@{0}".
    public var selector: String
    /// The commit the ref pointed to after the move.
    public var commit: String
    /// The commit it pointed to before (nil: the ref was created).
    public var previous: String?
    /// ISO 8601, UTC.
    public var date: String
    /// What moved it: "commit: …", "checkout: moving from main to …", "reset: moving to HEAD~1".
    public var message: String
}

/// Whether an operation concerns branches or tags.
public enum RefKind: String, Sendable {
    case branch, tag
    public var prefix: String { self == .branch ? "refs/heads/" : "refs/tags/" }
}

extension Repository {
    /// Lists branches or tags.
    public func listRefs(_ kind: RefKind) throws -> [RefInfo] {
        let head = try ledger.head()
        return try ledger.refs(prefix: kind.prefix).map { r in
            let short = String(r.name.dropFirst(kind.prefix.count))
            return RefInfo(name: short, commit: r.target, current: kind == .branch && head.branchName == short)
        }
    }

    /// Creates a branch or tag at `revision` (default HEAD); `force` moves an existing one. Returns
    /// the ref and where it pointed before (nil: created), read in the transaction that moves it.
    @discardableResult
    public func createRef(_ kind: RefKind, name: String, at revision: String = "HEAD", force: Bool = false) throws -> (ref: RefInfo, previous: String?) {
        try Ledger.validateRefName(name)
        let target = try resolve(revision)
        if kind == .branch, force, try ledger.head().branchName == name {
            throw KitError.refused("cannot force-update branch '\(name)': HEAD points to it (use 'wledger reset')")
        }
        let previous = try ledger.transaction { () -> String? in
            let previous = try ledger.refTarget(kind.prefix + name)
            // As git: an existing name is refused (exit 1, as `checkout -b` and `branch -m`).
            if previous != nil && !force {
                throw KitError.refused("\(kind == .branch ? "a branch named" : "tag") '\(name)' already exists (use -f to move it)")
            }
            try ledger.updateRef(kind.prefix + name, to: target, expected: previous.map { .value($0) } ?? .absent,
                                 message: previous != nil ? "branch: Reset to \(revision)" : "branch: Created from \(revision)")
            return previous
        }
        return (RefInfo(name: name, commit: target, current: false), previous)
    }

    /// Renames branch `old` (nil: the current one) to `new`, in one transaction; HEAD follows it
    /// when it is the current branch. `force` replaces an existing `new`, unless HEAD points to it.
    @discardableResult
    public func renameBranch(_ old: String?, to new: String, force: Bool = false) throws -> BranchRename {
        let head = try ledger.head()
        guard let old = old ?? head.branchName else {
            throw KitError.refused("HEAD is detached: name the branch to rename (wledger branch -m OLD NEW)")
        }
        try Ledger.validateRefName(new)
        let prefix = RefKind.branch.prefix
        guard let target = try ledger.refTarget(prefix + old) else { throw KitError.usage("branch '\(old)' not found") }
        let current = head.branchName == old
        let result = BranchRename(from: old, to: new, commit: target, current: current)
        guard old != new else { return result }
        if try ledger.refTarget(prefix + new) != nil {
            if head.branchName == new { throw KitError.refused("cannot replace branch '\(new)': HEAD points to it") }
            guard force else { throw KitError.refused("a branch named '\(new)' already exists (use -f to replace it)") }
        }
        // A bisect returns to the branch it started on: neither it nor its name may change under it.
        if let session = try ledger.bisectSession(), [prefix + old, prefix + new].contains(session.origHead) {
            throw KitError.refused("cannot rename branch '\(old)' to '\(new)': a bisect started on '\(session.origHead.dropFirst(prefix.count))' returns there (wledger bisect reset first)")
        }
        try ledger.transaction {
            let log = "Branch: renamed \(prefix + old) to \(prefix + new)"
            try ledger.moveReflog(from: prefix + old, to: prefix + new)
            try ledger.updateRef(prefix + new, to: target, expected: force ? .any : .absent, message: log, loggedOld: target)
            if current { try ledger.setHead(.branch(name: new, commit: target), message: log) }
            try ledger.deleteRef(prefix + old, expected: .value(target))
            if try ledger.meta(Self.previousHeadKey) == prefix + old { try ledger.setMeta(Self.previousHeadKey, prefix + new) }
        }
        return result
    }

    /// `wledger reset [--soft|--hard] REV`: moves the current branch (or a detached HEAD) to
    /// `revision`, as git does. `soft` leaves the work tree alone, so what differs from the new
    /// HEAD shows as uncommitted changes and `commit` can record it again; `hard` then rewrites the
    /// work tree to it as `checkout --force HEAD` does (every weight file in full, from the
    /// ledger), discarding uncommitted changes and removing side files the target does not track.
    /// The ref moves in one transaction before the work tree is touched: a hard reset killed
    /// before the checkout's journal is left as a soft one, one killed after it is finished by the
    /// next command, and one whose checkout fails before the journal moves the ref back.
    /// Commits left behind stay in the ledger, reachable by their ids (`from`).
    /// Refused while a bisect runs (it returns to the branch it started on).
    public func reset(to revision: String, mode: ResetMode, progress: ProgressReporter = .silent) throws -> ResetResult {
        let target = try RevisionResolver(ledger: ledger).resolve(revision)
        if try ledger.bisectSession() != nil {
            throw KitError.refused("a bisect is running; end it first (wledger bisect reset)")
        }
        let head = try ledger.head()
        // What the hard reset's checkout refuses before writing, refused before the ref moves (no
        // reflog entries for a reset that did not happen).
        if mode == .hard { try refuseDirectories(at: try ledger.files(of: target), shown: String(target.prefix(12))) }
        try ledger.transaction {
            let log = "reset: moving to \(revision)"
            if target != head.commit {
                try ledger.advanceHead(from: head.commit, to: target, message: log)
            } else {
                // As git: a reset that stays (`reset --hard` to discard changes) is logged too.
                try ledger.logStay("HEAD", at: target, message: log)
                if let b = head.branchName { try ledger.logStay(RefKind.branch.prefix + b, at: target, message: log) }
            }
        }
        var result = ResetResult(from: head.commit, commit: target, branch: head.branchName, mode: mode, checkout: nil)
        if mode == .hard {
            // The checkout compares the target with itself (HEAD moved): side files only the
            // previous HEAD tracks are named for removal.
            let gone = try ledger.files(of: head.commit).filter { $0.value.kind == .side }.map(\.key)
            do {
                result.checkout = try checkout("HEAD", force: true, alsoRemoving: gone, progress: progress)
            } catch {
                // Failed before its journal (staging, verification): nothing was renamed into the
                // work tree, so the ref goes back and the reset fails as a whole. With a journal the
                // next command finishes the checkout, and the ref stays where it went.
                if target != head.commit, !FileManager.default.fileExists(atPath: journalPath) {
                    try? ledger.transaction {
                        try ledger.advanceHead(from: target, to: head.commit, message: "reset: moving back to \(head.commit.prefix(12)) (the rewrite failed)")
                    }
                }
                throw error
            }
        }
        return result
    }

    /// `wledger reflog [REF]`: where HEAD (default), a branch, or the current branch (`@`) pointed
    /// after each of its moves, newest first; at most `limit` entries. As git's, `REF@{N}` starts
    /// at that entry (`HEAD@{2}`: the third newest), its selectors numbered as before.
    public func reflog(_ ref: String = "HEAD", limit: Int? = nil) throws -> [ReflogItem] {
        var name = ref, skip = 0
        if ref.hasSuffix("}"), let open = ref.range(of: "@{", options: .backwards) {
            let n = ref[open.upperBound..<ref.index(before: ref.endIndex)]
            guard let k = Int(n), k >= 0, n.allSatisfy({ $0.isASCII && $0.isNumber }) else {
                throw LedgerError.invalid("'\(ref)': not a reflog selector (REF@{N}: the log from N moves back, N ≥ 0)")
            }
            name = open.lowerBound == ref.startIndex ? "@" : String(ref[..<open.lowerBound])
            skip = k
        }
        let full = try RevisionResolver(ledger: ledger).reflogName(name, original: ref)
        let shown = Self.logName(full)
        let (total, overflow) = (limit ?? 0).addingReportingOverflow(skip)
        let entries = try ledger.reflog(full, limit: limit == nil || overflow ? nil : total)
        return entries.enumerated().dropFirst(skip).map { i, e in
            ReflogItem(selector: "\(shown)@{\(i)}", commit: e.new, previous: e.old, date: isoDate(e.time), message: e.message)
        }
    }

    /// How a log is named to the user: "HEAD", "stash", or the branch's name.
    static func logName(_ full: String) -> String {
        full == "HEAD" ? "HEAD" : full == Ledger.stashLog ? "stash" : String(full.dropFirst(RefKind.branch.prefix.count))
    }

    /// Deletes a branch or tag; returns the commit it pointed to. The current branch cannot be
    /// deleted, nor the branch a running bisect returns to, and, as git's `branch -d`, neither
    /// can a branch whose commit is not in HEAD's history unless `force` (`-D`): its commits
    /// would then be reachable only through the reflog, until a `gc` 30 days later
    /// (`gc.reflogExpireUnreachable`) or `gc --expire-unreachable`.
    @discardableResult
    public func deleteRef(_ kind: RefKind, name: String, force: Bool = false) throws -> String {
        let full = kind.prefix + name
        guard let old = try ledger.refTarget(full) else { throw KitError.usage("\(kind.rawValue) '\(name)' not found") }
        if kind == .branch, try ledger.head().branchName == name {
            throw KitError.refused("cannot delete branch '\(name)': HEAD points to it")
        }
        if kind == .branch, let session = try ledger.bisectSession(), session.origHead == full {
            throw KitError.refused("cannot delete branch '\(name)': a bisect started on it returns there (wledger bisect reset first)")
        }
        if kind == .branch, !force, try mergeBase(old, "HEAD") != old {
            throw KitError.refused("the branch '\(name)' is not fully merged into HEAD; 'wledger branch -D \(name)' deletes it anyway")
        }
        try ledger.transaction { try ledger.deleteRef(full, expected: .value(old)) }
        return old
    }
}
