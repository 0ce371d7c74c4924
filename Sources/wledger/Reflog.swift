import ArgumentParser
import WLedgerKit

struct Reflog: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "reflog",
        abstract: "Show where HEAD or a branch pointed after each of its moves; expire old entries.",
        discussion: """
            As git reflog: newest first, one line per move (commit, checkout, reset, branch creation or \
            rename), with the selector that names that position in any command: HEAD@{1} is where HEAD \
            was before its last move, main@{2} where main was two moves ago, @{1} the current branch's, @{-1} the branch (or commit) the last checkout came from. \
            A commit that reset --hard left behind is found here. A branch's log goes when the branch is \
            deleted and follows it when it is renamed; tags do not move and have none. Ledgers made \
            before the reflog existed start with an empty one. Entries record the clock's time, even where \
            $WLEDGER_TIME pins commit times. 'reflog expire' drops old entries (gc does it first, with the config's \
            gc.reflogExpire and gc.reflogExpireUnreachable: 90 and 30 days by default).

            Examples: wledger reflog; wledger reflog main -n 5; wledger reset --hard HEAD@{1}; wledger reflog expire --expire-unreachable=now --all
            """,
        subcommands: [Show.self, Expire.self],
        defaultSubcommand: Show.self)

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "show", abstract: "List a log's entries, newest first (the default).")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "HEAD (default), a branch, stash, or @ for the current branch; NAME@{N} starts at that entry.") var ref = "HEAD"
        @Option(name: [.customShort("n"), .long], parsing: .unconditional, help: "Show at most this many entries.") var maxCount: Int?
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

    struct Expire: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "expire",
            abstract: "Drop old reflog entries, so gc can remove the commits only they kept.",
            discussion: """
                As git reflog expire: drops the entries of HEAD's and the branches' logs older than \
                --expire, and those older than --expire-unreachable whose commit no branch, tag or HEAD \
                reaches (nor a stash entry or bisect session); an entry older than --expire-unreachable that \
                stays forgets its previous commit when that one is unreachable so. \
                Defaults: the config's gc.reflogExpire and gc.reflogExpireUnreachable, else 90.days.ago \
                and 30.days.ago. Times: now (every entry), never, yesterday, N.UNIT[.ago] (second, minute, hour, \
                day, week, month = 30 days, year), a UTC date 2026-01-31[T12:00[:00]], or @UNIX. The \
                commits stay until 'wledger gc'. The stash's entries are never expired: 'stash drop' \
                and 'stash clear' remove them.

                Examples: wledger reflog expire --all --dry-run; wledger reflog expire --expire-unreachable=now --all; wledger reflog expire --expire=2.weeks.ago HEAD
                """)
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The logs to expire: HEAD, a branch, or @ (or --all).") var refs: [String] = []
        @Flag(help: "Expire HEAD's log and every branch's.") var all = false
        @Option(help: ArgumentHelp("Drop entries older than this.", valueName: "time")) var expire: String?
        @Option(help: ArgumentHelp("Drop entries older than this whose commit no ref reaches.", valueName: "time"))
        var expireUnreachable: String?
        @Flag(name: [.customShort("n"), .long], help: "List what would be dropped; change nothing.") var dryRun = false
        @Flag(help: "Print the result as JSON.") var json = false

        func validate() throws {
            if all == !refs.isEmpty { throw ValidationError("name the logs to expire or give --all (not both)") }
        }

        func run() throws {
            let repo = try global.openRepository(forWriting: true)
            let r = try repo.expireReflog(refs: all ? nil : refs, expire: expire, expireUnreachable: expireUnreachable, dryRun: dryRun)
            if json { return try printJSON(r) }
            for d in r.dropped {
                print("\(dryRun ? "would drop" : "dropped") \(d.ref) \(short(d.commit)) \(d.date): \(d.message)")
            }
            if !global.quiet || dryRun {
                print("\(dryRun ? "Would drop" : "Dropped") \(r.dropped.count) reflog entr\(r.dropped.count == 1 ? "y" : "ies") "
                      + "(expire \(r.expire), unreachable \(r.expireUnreachable))")
            }
        }
    }
}
