import ArgumentParser
import WLedgerKit

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove commits nothing reaches, and what only they stored; compact the ledger.",
        discussion: """
            As git gc --prune=now: a commit stays while a branch, a tag, HEAD, a reflog entry, a stash \
            entry, a bisect session or 'checkout -' reaches it (with its ancestors), or a kept commit links to it (the \
            commit a cherry-pick was picked from, the edit a revert or prune undid). The others are \
            removed with the tensor versions and stored objects only they used, and the ledger file is \
            rewritten without the freed space (SQLite VACUUM: a temporary copy in $SQLITE_TMPDIR, \
            /var/tmp or /tmp and a WAL next to the ledger, each up to the ledger's size; it compacts \
            when a commit, version or object was removed or free pages make up 1% of the ledger or more). As git gc, it \
            first expires the reflog: entries older than gc.reflogExpire (default 90 days) and entries \
            older than gc.reflogExpireUnreachable (default 30 days) whose commit no branch, tag, HEAD, \
            stash entry or bisect session reaches go (see 'wledger reflog expire'; stash entries never do), so what reset --hard or \
            deleting a branch left behind goes a month later. --expire-unreachable drops every \
            entry of a commit none of those reaches now (git reflog expire --expire-unreachable=now --all), so \
            those commits go at once and HEAD@{N} counts only what is left. --dry-run lists what would go \
            and changes nothing. The work tree is never touched; every kept commit checks out byte for \
            byte as before.

            Examples: wledger gc --dry-run; wledger gc; wledger gc --expire-unreachable
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Drop the reflog entries of commits no branch, tag, HEAD, stash entry or bisect session reaches whatever their age, so those commits go.")
    var expireUnreachable = false
    @Flag(name: [.customShort("n"), .long], help: "Show what would be removed; change nothing.") var dryRun = false
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let repo = try global.openRepository(forWriting: true)
        let r = try repo.gc(expireUnreachable: expireUnreachable, dryRun: dryRun, progress: global.progress)
        if json { return try printJSON(r) }
        let verb = r.dryRun ? "Would remove" : "Removed"
        for c in r.removedCommits { print("\(r.dryRun ? "would remove" : "removed") commit \(short(c))") }
        print("\(verb) \(r.removedCommits.count) commit(s), \(r.removedTensorVersions) tensor version(s), \(r.removedObjects) object(s) "
              + "(\(humanBytes(r.removedStoredBytes)) stored)"
              + (r.removedReflogEntries > 0 ? ", \(r.removedReflogEntries) reflog entr\(r.removedReflogEntries == 1 ? "y" : "ies")" : ""))
        if !r.dryRun && r.ledgerBytesAfter != r.ledgerBytesBefore {
            print("ledger \(humanBytes(r.ledgerBytesBefore)) -> \(humanBytes(r.ledgerBytesAfter))")
        }
        if r.keptUnreachableCommits > 0 {
            print("kept \(r.keptUnreachableCommits) commit(s) no branch, tag, HEAD, stash entry or bisect session reaches (named by "
                  + (expireUnreachable ? "'checkout -' or a kept commit's link)" : "the reflog or another root; --expire-unreachable removes those only recent reflog entries name)"))
        }
    }
}
