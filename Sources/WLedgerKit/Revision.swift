import Ledger

/// Resolves revision strings: `HEAD` (or `@`), `base`, branch and tag names, full or unique
/// prefixes (≥ 4 hex digits) of commit ids, each optionally followed by `~N`, `~` or `^`
/// (first parent, N times).
public struct RevisionResolver {
    public let ledger: Ledger

    public init(ledger: Ledger) { self.ledger = ledger }

    public func resolve(_ revision: String) throws -> String {
        guard !revision.isEmpty else { throw LedgerError.unknownRevision(revision) }
        var name = Substring(revision)
        var steps = 0
        // Peel ancestry suffixes from the right.
        while let last = name.last {
            if last == "^" {
                steps += 1
                name = name.dropLast()
            } else if let tilde = name.lastIndex(of: "~"), name[name.index(after: tilde)...].allSatisfy(\.isNumber) {
                let digits = name[name.index(after: tilde)...]
                guard let n = digits.isEmpty ? 1 : Int(digits) else { throw LedgerError.unknownRevision(revision) }
                steps += n
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
        if name == "base" {
            let roots = try ledger.history(from: ledger.head().commit).last
            guard let r = roots else { throw LedgerError.unknownRevision(original) }
            return r.id
        }
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

    /// Whether `revision` is exactly a branch name (so checkout attaches HEAD to it).
    public func branchName(_ revision: String) throws -> String? {
        if revision.hasPrefix("refs/heads/"), try ledger.refTarget(revision) != nil { return String(revision.dropFirst(11)) }
        if try ledger.refTarget("refs/heads/" + revision) != nil { return revision }
        return nil
    }
}
