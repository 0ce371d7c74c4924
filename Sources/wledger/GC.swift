import ArgumentParser
import WLedgerKit

struct GC: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "gc",
        abstract: "Remove commits nothing reaches, and what only they stored; compact the ledger.",
        discussion: """
            As git gc --prune=now: a commit stays while a branch, a tag, HEAD, a reflog entry, a bisect \
            session or 'checkout -' reaches it (with its ancestors); the others (left behind by reset \
            --hard or by deleting a branch) are removed with the tensor versions and stored objects only \
            they used, and the ledger file is rewritten without the freed space (SQLite VACUUM: it needs \
            free disk space of about twice the ledger's size while it runs). --expire-unreachable first drops the reflog entries of commits no ref reaches \
            (git reflog expire --expire-unreachable=now --all), so HEAD@{N} can no longer name them and \
            they go too. --dry-run lists what would go and changes nothing. The work tree is never \
            touched; every kept commit checks out byte for byte as before.

            Examples: wledger gc --dry-run; wledger gc; wledger gc --expire-unreachable
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Also drop the reflog entries of commits no branch, tag or HEAD reaches, so those commits go.")
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
            print("kept \(r.keptUnreachableCommits) commit(s) that only the reflog (or a bisect, or 'checkout -') reaches; --expire-unreachable removes them")
        }
    }
}
