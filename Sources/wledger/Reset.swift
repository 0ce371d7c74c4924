import ArgumentParser
import WLedgerKit

struct Reset: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reset",
        abstract: "Move the current branch (or a detached HEAD) to a revision.",
        discussion: """
            As git reset. --soft (the default; --mixed is the same, as there is no index) leaves the work \
            tree alone: what differs from the new HEAD shows in 'wledger status' and 'wledger commit' records \
            it again. --hard also rewrites the work tree to the revision (as checkout --force HEAD: every \
            weight file in full, from the ledger), discarding uncommitted changes and removing side files \
            the revision does not track. The commits left behind stay in the ledger (until a 'wledger gc' \
            30 days later, or 'wledger gc --expire-unreachable'); the previous HEAD \
            is printed, and 'wledger reset <that id>' (or 'wledger reset HEAD@{1}', see 'wledger reflog') \
            goes back. Refused while a bisect runs.

            Examples: wledger reset HEAD~1; wledger reset --hard edits-25; wledger reset --hard HEAD@{1}
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Revision to move to.") var revision = "HEAD"
    @Flag(help: "Move the ref only (default).") var soft = false
    @Flag(help: "Same as --soft: there is no index.") var mixed = false
    @Flag(help: "Also rewrite the work tree to the revision, discarding uncommitted changes.") var hard = false
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        if [soft, mixed, hard].filter({ $0 }).count > 1 { throw ValidationError("--soft, --mixed and --hard cannot be combined") }
    }

    func run() throws {
        let repo = try global.openRepository(forWriting: true)
        let r = try repo.reset(to: revision, mode: hard ? .hard : .soft, progress: global.progress)
        if let c = r.checkout { warnWorkTreeMismatches(c.workTreeMismatches) }
        if json { return try printJSON(r) }
        if global.quiet { return }   // as git's -q: no summary either
        let ref = r.branch.map { "branch '\($0)'" } ?? "HEAD (detached)"
        let files = r.checkout.map { " (\($0.written.count) file(s) written, \($0.unchanged.count) unchanged)" } ?? ""
        print("Reset \(ref) to \(short(r.commit)), was \(short(r.from))\(files)")
    }
}
