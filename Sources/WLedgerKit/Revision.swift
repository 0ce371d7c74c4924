import Ledger

/// Resolves revision strings: `HEAD` (or `@`), `base`, branch and tag names, full or unique
/// prefixes (≥ 4 hex digits) of commit ids, `REF@{N}` (where HEAD or a branch pointed N moves
/// ago, from the reflog; `@{N}` is the current branch's; `@{-N}` is the N-th previous checkout's
/// branch or commit), each optionally followed by `~N`, `~` or `^` (first parent, N times) and
/// `^0`/`^1` (the commit itself, its parent).
public struct RevisionResolver {
    public let ledger: Ledger

    public init(ledger: Ledger) { self.ledger = ledger }

    public func resolve(_ revision: String) throws -> String {
        guard !revision.isEmpty else { throw LedgerError.unknownRevision(revision) }
        var name = Substring(revision)
        var steps = 0
        /// Adds n steps; steps past an Int go past the base commit of any history.
        func add(_ n: Int) throws {
            let (sum, overflow) = steps.addingReportingOverflow(n)
            guard !overflow else { throw LedgerError.invalid("revision '\(revision)' goes past the base commit") }
            steps = sum
        }
        // Peel ancestry suffixes from the right.
        while let last = name.last {
            if last == "^" {
                try add(1)
                name = name.dropLast()
            } else if let caret = name.lastIndex(of: "^"), name[name.index(after: caret)...].allSatisfy(\.isNumber) {
                // `^N`, git's N-th parent: ^0 is the commit itself, ^1 its parent; a wledger
                // commit has one parent, so ^2 and above name none.
                guard let n = Int(name[name.index(after: caret)...]), n <= 1 else {
                    throw LedgerError.invalid("revision '\(revision)': a wledger commit has one parent, so '^\(name[name.index(after: caret)...])' names none")
                }
                try add(n)
                name = name[..<caret]
            } else if let tilde = name.lastIndex(of: "~"), name[name.index(after: tilde)...].allSatisfy(\.isNumber) {
                let digits = name[name.index(after: tilde)...]
                guard let n = digits.isEmpty ? 1 : Int(digits) else { throw LedgerError.unknownRevision(revision) }
                try add(n)
                name = name[..<tilde]
            } else {
                break
            }
        }
        var id = try resolveName(String(name), original: revision)
        for _ in 0..<steps {
            guard let c = try ledger.commit(id), let p = c.parent else {
                throw LedgerError.invalid("revision '\(revision)' goes past the base commit")
            }
            id = p
        }
        return id
    }

    private func resolveName(_ name: String, original: String) throws -> String {
        if name == "HEAD" || name == "@" { return try ledger.head().commit }
        if name.hasSuffix("}"), let at = name.range(of: "@{", options: .backwards) {
            return try resolveReflog(ref: String(name[..<at.lowerBound]), selector: String(name[at.upperBound...].dropLast()), original: original)
        }
        if name == "base" {
            let roots = try ledger.history(from: ledger.head().commit).last
            guard let r = roots else { throw LedgerError.unknownRevision(original) }
            return r.id
        }
        // `stash` alone is stash@{0} while the stash has entries (git's refs/stash).
        if name == "stash" || name == Ledger.stashLog, let top = try ledger.reflog(Ledger.stashLog, limit: 1).first { return top.new }
        // A full commit id names that commit, also where a branch or tag has the same name (as
        // git takes a full object name as the object).
        if name.utf8.count == 64, name.allSatisfy(\.isHexDigit), let c = try ledger.commit(name.lowercased()) { return c.id }
        if name.hasPrefix("refs/"), let t = try ledger.refTarget(name) { return t }
        if let t = try ledger.refTarget("refs/heads/" + name) { return t }
        if let t = try ledger.refTarget("refs/tags/" + name) { return t }
        let lower = name.lowercased()
        if lower.count >= 4, lower.count <= 64, lower.allSatisfy({ $0.isHexDigit }) {
            let matches = try ledger.commits(withPrefix: lower)
            if matches.count == 1 { return matches[0] }
            if matches.count > 1 { throw LedgerError.ambiguousRevision(original, candidates: matches) }
        }
        throw LedgerError.unknownRevision(original)
    }

    /// `REF@{N}`: the commit `ref` (HEAD, a branch, or "" for the current branch) pointed to N
    /// moves ago. `@{0}` is where it points now; the oldest entry's old value is one more back.
    private func resolveReflog(ref: String, selector: String, original: String) throws -> String {
        if ref.isEmpty, selector.hasPrefix("-"), let n = Int(selector.dropFirst()), n > 0 {
            let name = try previousCheckout(n, original: original)
            return try resolveName(name, original: original)
        }
        // Digits past what a log could hold (or an Int) still select: they go back too far.
        guard !selector.isEmpty, selector.allSatisfy({ ("0"..."9").contains($0) }) else {
            throw LedgerError.invalid("'\(original)': not a reflog selector (REF@{N}: N moves back, N ≥ 0; @{-N}: the N-th previous checkout)")
        }
        let n = min(Int(selector) ?? Int.max, Int(Int32.max))
        let full = try reflogName(ref, original: original)
        if full == Ledger.stashLog {
            // The stash is a log with no ref: stash@{N} is its N-th newest entry.
            let entries = try ledger.reflog(full, limit: n + 1)
            guard n < entries.count else {
                throw LedgerError.invalid("'\(original)': the stash has \(Ledger.stashSizeText(entries.count))")
            }
            return entries[n].new
        }
        if n == 0 { return full == "HEAD" ? try ledger.head().commit : try ledger.refTarget(full) ?? ledger.head().commit }
        let entries = try ledger.reflog(full, limit: n + 1)
        if n < entries.count { return entries[n].new }
        if n == entries.count, let old = entries.last?.old { return old }
        let shown = ref.isEmpty ? "@" : ref
        throw LedgerError.invalid("'\(original)': the log of '\(shown)' goes back only \(entries.last?.old == nil ? max(entries.count - 1, 0) : entries.count) moves")
    }

    /// `@{-N}`: the branch (or the commit, when HEAD was detached) that the N-th last checkout
    /// moving HEAD came from, read from HEAD's log as git does ("checkout: moving from X to Y").
    private func previousCheckout(_ n: Int, original: String) throws -> String {
        let prefix = "checkout: moving from "
        var found = 0
        for e in try ledger.reflog("HEAD") where e.message.hasPrefix(prefix) {
            found += 1
            if found == n, let from = e.message.dropFirst(prefix.count).split(separator: " ").first { return try renamedBranch(String(from), since: e.seq) }
        }
        throw LedgerError.invalid("'\(original)': HEAD's log has only \(found) checkout(s)")
    }

    /// A branch name from the log entry numbered `seq`, followed through `branch -m` (as
    /// `checkout -` is): each step takes the first rename of that name after the step before,
    /// also where a new branch took the old name since; the renames are in the renamed branches'
    /// logs ("Branch: renamed refs/heads/OLD to refs/heads/NEW"), ordered by their place in the
    /// ledger's log, not their time (renames within one second are told apart).
    private func renamedBranch(_ name: String, since seq: Int64) throws -> String {
        let prefix = RefKind.branch.prefix
        var renames: [(old: String, new: String, seq: Int64)] = []
        for (ref, _) in try ledger.refs(prefix: prefix) {
            for e in try ledger.reflog(ref) where e.message.hasPrefix("Branch: renamed \(prefix)") {
                let parts = e.message.dropFirst("Branch: renamed ".count).components(separatedBy: " to ")
                if parts.count == 2 { renames.append((String(parts[0].dropFirst(prefix.count)), String(parts[1].dropFirst(prefix.count)), e.seq)) }
            }
        }
        var current = name, since = seq
        while let next = renames.filter({ $0.old == current && $0.seq > since }).min(by: { $0.seq < $1.seq }) {
            (current, since) = (next.new, next.seq)
        }
        return current
    }

    /// `@{-N}` names a branch when the checkout it refers to came from one.
    private func previousBranch(_ revision: String) throws -> String? {
        guard revision.hasPrefix("@{-"), revision.hasSuffix("}"), let n = Int(revision.dropFirst(3).dropLast()), n > 0,
              let name = try? previousCheckout(n, original: revision) else { return nil }
        return try ledger.refTarget(RefKind.branch.prefix + name) != nil ? name : nil
    }

    /// The full name of the ref whose log `REF@{…}` or `reflog REF` reads.
    public func reflogName(_ ref: String, original: String? = nil) throws -> String {
        switch ref {
        case "HEAD": return "HEAD"
        case "", "@":
            let head = try ledger.head()
            return head.branchName.map { RefKind.branch.prefix + $0 } ?? "HEAD"
        default:
            // As git's refs/stash, the stash comes before a branch or tag of that name.
            if ref == "stash" || ref == Ledger.stashLog { return Ledger.stashLog }
            if ref.hasPrefix(RefKind.branch.prefix), try ledger.refTarget(ref) != nil { return ref }
            if try ledger.refTarget(RefKind.branch.prefix + ref) != nil { return RefKind.branch.prefix + ref }
            if try ledger.refTarget(RefKind.tag.prefix + ref) != nil {
                throw LedgerError.invalid("'\(original ?? ref)': tags have no log (they do not move)")
            }
            throw LedgerError.unknownRevision(original ?? ref)
        }
    }

    /// Whether `revision` is exactly a branch name (so checkout attaches HEAD to it).
    public func branchName(_ revision: String) throws -> String? {
        if let previous = try previousBranch(revision) { return previous }
        if revision.hasPrefix("refs/heads/"), try ledger.refTarget(revision) != nil { return String(revision.dropFirst(11)) }
        if try ledger.refTarget("refs/heads/" + revision) != nil { return revision }
        return nil
    }
}
