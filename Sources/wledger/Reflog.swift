import ArgumentParser
import WLedgerKit

struct Reflog: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show where HEAD or a branch pointed after each of its moves.",
        discussion: """
            As git reflog: newest first, one line per move (commit, checkout, reset, branch creation or \
            rename), with the selector that names that position in any command: HEAD@{1} is where HEAD \
            was before its last move, main@{2} where main was two moves ago, @{1} the current branch's, @{-1} the branch (or commit) the last checkout came from. \
            A commit that reset --hard left behind is found here. A branch's log goes when the branch is \
            deleted and follows it when it is renamed; tags do not move and have none. Ledgers made \
            before the reflog existed start with an empty one.

            Examples: wledger reflog; wledger reflog main -n 5; wledger reset --hard HEAD@{1}
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "HEAD (default), a branch, or @ for the current branch.") var ref = "HEAD"
    @Option(name: [.customShort("n"), .long], help: "Show at most this many entries.") var maxCount: Int?
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        if let n = maxCount, n < 0 { throw ValidationError("-n must be 0 or more") }
    }

    func run() throws {
        let repo = try global.openRepository(forWriting: false)
        let entries = try repo.reflog(ref, limit: maxCount)
        if json { return try printJSON(entries) }
        for e in entries { print("\(short(e.commit)) \(e.selector): \(e.message)") }
    }
}
