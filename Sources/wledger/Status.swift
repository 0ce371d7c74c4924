import ArgumentParser
import WLedgerKit

struct Status: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show which tensors and files differ from HEAD.",
        discussion: """
            Files whose size, mtime, ctime and inode match the last commit or checkout are not rehashed; \
            the others are fingerprinted tensor by tensor (XXH3-128) and compared with HEAD.

            --short prints one line per change, as git status --short: ' M' a modified tensor or side file, \
            ' D' a deleted side file, '??' an untracked one, ' M FILE (header)' a changed safetensors header, \
            '!!' a structural change that cannot be committed; -b adds '## BRANCH' first.

            Examples: wledger status --json; wledger status -sb
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Ignore recorded file stats and hash every tensor.") var rehash = false
    @Flag(name: [.customShort("s"), .customLong("short")], help: "One line per change (git's short format).") var shortFormat = false
    @Flag(name: .shortAndLong, help: "With --short: the branch first ('## main').") var branch = false
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        if branch && !shortFormat { throw ValidationError("-b goes with --short") }
        if shortFormat && json { throw ValidationError("--short and --json cannot be combined") }
    }

    func run() throws {
        let repo = try global.openRepository(forWriting: false)
        let r = try repo.status(rehash: rehash, progress: global.progress)
        if json { return try printJSON(r) }
        if shortFormat {
            if branch { print("## " + (r.branch ?? "HEAD (no branch)")) }
            for s in r.structural { print("!! \(s)") }
            for t in r.modifiedTensors { print(" M \(quotedName(t.name))") }
            for h in r.modifiedHeaders { print(" M \(quotedName(h)) (header)") }
            for f in r.sideFiles { print("\(f.change == .added ? "??" : f.change == .deleted ? " D" : " M") \(quotedName(f.path))") }
            return
        }
        print(r.branch.map { "On branch \($0)" } ?? "HEAD detached at \(short(r.head))")
        // As git: a bisect in progress is said, with where 'bisect reset' returns.
        if let session = try repo.ledger.bisectSession() {
            let origin = session.origHead.hasPrefix(RefKind.branch.prefix) ? "branch '\(session.origHead.dropFirst(RefKind.branch.prefix.count))'"
                : short(session.origHead)
            print("You are currently bisecting, started from \(origin) ('wledger bisect reset' returns there).")
        }
        if r.clean { print(Repository.nothingToCommit); return }
        if !r.structural.isEmpty {
            print("Structural changes (cannot be committed):")
            for s in r.structural { print("  \(s)") }
        }
        if !r.modifiedTensors.isEmpty || !r.modifiedHeaders.isEmpty || !r.sideFiles.isEmpty {
            print("Changes not committed:")
            for t in r.modifiedTensors { print("  modified tensor: \(quotedName(t.name))  (\(quotedName(t.file)))") }
            for h in r.modifiedHeaders { print("  modified header: \(quotedName(h))") }
            for f in r.sideFiles { print("  \(f.change.rawValue):\(String(repeating: " ", count: max(1, 16 - f.change.rawValue.count)))\(quotedName(f.path))") }
        }
    }
}
