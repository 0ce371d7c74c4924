import ArgumentParser
import WLedgerKit

struct Stash: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stash",
        abstract: "Set uncommitted changes aside and bring them back later.",
        discussion: """
            As git stash. 'wledger stash' (push) records the work tree's uncommitted changes (tensors, \
            headers, tracked side files, NaN and Inf included; untracked files stay where they are unless \
            -u records and removes them) as a \
            commit on HEAD that no branch points to, pushes it onto the stash as stash@{0}, and writes \
            HEAD's bytes back where the work tree differs (in place where it can); hooks do not run. \
            'apply' writes a stash's files back into the work tree without moving HEAD. On another commit \
            than the one it was made on it merges, per tensor and file: what HEAD still has as that commit \
            had it gets the stash's bytes, a float tensor HEAD changed too gets HEAD + the stash's ΔW \
            (float64, rounded to the dtype, as cherry-pick), and a side file both changed refuses \
            ('stash branch NAME' creates a branch where the stash was made and pops it there). Uncommitted \
            changes it does not touch are kept, as a checkout keeps them, and any other refuses before a \
            byte is written. 'show' lists what an entry changes (ΔW per tensor, changed files). 'pop' applies and drops; 'drop' and 'clear' remove entries (their commits \
            stay until 'wledger gc'; gc never removes a stash entry's commit). stash@{N} (and stash, \
            stash@{0}) works as a revision anywhere (show, diff, cherry-pick).

            Examples: wledger stash -m "try layer 9"; wledger stash list; wledger diff stash@{0}~1 stash@{0} --stat; wledger stash pop
            """,
        subcommands: [Push.self, List.self, Show.self, Apply.self, Pop.self, Branch.self, Drop.self, Clear.self],
        defaultSubcommand: Push.self)

    struct Push: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "push", abstract: "Save the uncommitted changes as stash@{0} and rewrite the work tree to HEAD.")
        @OptionGroup var global: GlobalOptions
        @Option(name: .shortAndLong, help: "Describe the entry (default: WIP on BRANCH: COMMIT SUBJECT).") var message: String?
        @Flag(name: [.customShort("u"), .long], help: "Also stash untracked side files, and remove them from the work tree.")
        var includeUntracked = false
        @Flag(help: "Print the result as JSON.") var json = false

        func run() throws {
            let repo = try global.openRepository(forWriting: true)
            let r = try repo.stashPush(message: message, includeUntracked: includeUntracked, progress: global.progress)
            if let c = r.checkout { warnWorkTreeMismatches(c.workTreeMismatches) }
            if json { return try printJSON(r) }
            guard let s = r.stash else { return global.quiet ? () : print("No local changes to save") }   // as git's -q
            if !global.quiet { print("Saved working directory state \(s.message) as \(s.selector) (\(short(s.commit)))") }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the stash entries, newest first.")
        @OptionGroup var global: GlobalOptions
        @Flag(help: "Print the result as JSON.") var json = false

        func run() throws {
            let repo = try global.openRepository(forWriting: false)
            let list = try repo.stashList()
            if json { return try printJSON(list) }
            for s in list { print("\(s.selector): \(s.message)") }
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show what a stash entry changes: ΔW per tensor and the files it changed.",
            discussion: "As git stash show: the stash against the commit it was made on (wledger diff stash@{N}~1 stash@{N}), then its changed files.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "stash@{N} or N (default: stash@{0}).") var stash: String?
        @Flag(help: "Skip the SVD-based statistics (σmax, σmin, κ, rank of ΔW).") var noSpectrum = false
        @Flag(help: "Print the result as JSON.") var json = false

        func run() throws {
            let repo = try global.openRepository(forWriting: false)
            var options = DiffOptions()
            options.spectrum = !noSpectrum
            let r = try repo.stashShow(stash, options: options, progress: global.progress)
            if json { return try printJSON(r) }
            print("\(r.stash.selector) (\(short(r.stash.commit))): \(r.stash.message)")
            printDiffTables(r.diff)
            for f in r.files { print("\(f.change.rawValue.prefix(1).uppercased())\t\(f.path)") }
        }
    }

    struct Apply: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "apply", abstract: "Write a stash's files into the work tree (HEAD stays); keep the entry.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "stash@{N} or N (default: stash@{0}).") var stash: String?
        @Flag(help: "Print the result as JSON.") var json = false

        func run() throws { try runApply(global: global, stash: stash, pop: false, json: json) }
    }

    struct Pop: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "pop", abstract: "Apply a stash, then drop it.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "stash@{N} or N (default: stash@{0}).") var stash: String?
        @Flag(help: "Print the result as JSON.") var json = false

        func run() throws { try runApply(global: global, stash: stash, pop: true, json: json) }
    }

    struct Branch: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "branch", abstract: "Create a branch at the commit a stash was made on, check it out and pop the stash there.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The new branch.") var name: String
        @Argument(help: "stash@{N} or N (default: stash@{0}).") var stash: String?
        @Flag(help: "Print the result as JSON.") var json = false

        func run() throws {
            let repo = try global.openRepository(forWriting: true)
            let r = try repo.stashBranch(name, stash, progress: global.progress)
            warnWorkTreeMismatches(r.checkout.workTreeMismatches)
            if json { return try printJSON(r) }
            if !global.quiet { print("Switched to a new branch '\(name)' at \(short(r.stash.base)); applied and dropped \(r.stash.selector) (\(short(r.stash.commit)))") }
        }
    }

    struct Drop: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "drop", abstract: "Remove one stash entry.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "stash@{N} or N (default: stash@{0}).") var stash: String?
        @Flag(help: "Print the result as JSON.") var json = false

        func run() throws {
            let repo = try global.openRepository(forWriting: true)
            let s = try repo.stashDrop(stash)
            if json { return try printJSON(s) }
            if !global.quiet { print("Dropped \(s.selector) (\(short(s.commit)))") }
        }
    }

    struct Clear: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "clear", abstract: "Remove every stash entry.")
        @OptionGroup var global: GlobalOptions

        func run() throws {
            let repo = try global.openRepository(forWriting: true)
            let n = try repo.stashClear()
            if !global.quiet { print("Cleared \(n) stash entr\(n == 1 ? "y" : "ies")") }
        }
    }
}

private func runApply(global: GlobalOptions, stash: String?, pop: Bool, json: Bool) throws {
    let repo = try global.openRepository(forWriting: true)
    let r = try repo.stashApply(stash, pop: pop, progress: global.progress)
    warnWorkTreeMismatches(r.checkout.workTreeMismatches)
    if json { return try printJSON(r) }
    guard !global.quiet else { return }
    for name in r.checkout.carriedTensors { print("M\t\(name)") }
    for name in r.mergedTensors { print("merged\t\(name)\t(HEAD's + the stash's ΔW)") }
    let removed = r.checkout.removed.isEmpty ? "" : ", \(r.checkout.removed.count) removed"
    let head = try repo.resolve("HEAD")
    let onto = head == r.stash.base ? "" : " onto HEAD \(short(head))"
    print("Applied \(r.stash.selector) (\(short(r.stash.commit)))\(onto): \(r.checkout.written.count) file(s) written\(removed)\(r.dropped ? "; dropped it" : "")")
}
