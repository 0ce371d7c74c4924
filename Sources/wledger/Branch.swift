import ArgumentParser
import WLedgerKit

struct Branch: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "branch",
        abstract: "List, create, rename or delete branches.",
        discussion: """
            As git branch. -d deletes a branch whose commit is in HEAD's history (it is merged); -D (or \
            -d -f) deletes any other branch but the current one, whose commits then stay reachable through \
            the reflog until a 'wledger gc' 30 days later removes them ('wledger gc --expire-unreachable' at once).

            Examples: wledger branch; wledger branch rect HEAD~2; wledger branch -m rect rect-40; wledger branch -d rect
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Branch to create (list when omitted); with -m, the branch to rename, or the new name of the current one.") var name: String?
    @Argument(help: "Where the new branch starts (default HEAD); with -m, the new name.") var startPoint: String?
    @Flag(name: .shortAndLong, help: "Delete the branch (refused when it is not merged into HEAD).") var delete = false
    @Flag(name: .customShort("D"), help: "Delete the branch even when it is not merged into HEAD (-d -f).") var forceDelete = false
    @Flag(name: [.customShort("m"), .long], help: "Rename the branch (HEAD follows the current one).") var move = false
    @Flag(name: .shortAndLong, help: "Move the branch if it exists (with -m: replace the new name's branch; with -d: delete it even when not merged).") var force = false
    @Flag(help: "Print the result as JSON.") var json = false

    mutating func validate() throws {
        if forceDelete { delete = true; force = true }
        if move && delete { throw ValidationError("-m and -d/-D cannot be combined") }
        if move && name == nil { throw ValidationError("-m needs the new name (wledger branch -m [OLD] NEW)") }
        if delete && startPoint != nil { throw ValidationError("-d/-D takes one branch name") }
        if (delete || force) && name == nil { throw ValidationError("branch name required (-d, -D and -f act on one)") }
    }

    func run() throws {
        if move, let name {
            let repo = try global.openRepository(forWriting: true)
            let (old, new) = startPoint.map { (Optional(name), $0) } ?? (nil, name)
            let r = try repo.renameBranch(old, to: new, force: force)
            try warnIfBranchAndTagShare(r.to, created: .branch, in: repo)
            if json { return try printJSON(r) }
            if global.quiet { return }   // as git's -q
            return print("Renamed branch \(r.from) to \(r.to)\(r.current ? " (HEAD follows it)" : "")")
        }
        try runRefCommand(.branch, global: global, name: name, startPoint: startPoint ?? "HEAD", delete: delete, force: force, json: json)
    }
}

struct Tag: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tag",
        abstract: "List, create or delete tags.",
        discussion: "Examples: wledger tag; wledger tag before-edits base; wledger tag -d before-edits")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Tag to create (list when omitted).") var name: String?
    @Argument(help: "Commit to tag (default HEAD).") var target = "HEAD"
    @Flag(name: .shortAndLong, help: "Delete the tag.") var delete = false
    @Flag(name: .shortAndLong, help: "Move the tag if it exists.") var force = false
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        if (delete || force) && name == nil { throw ValidationError("tag name required (-d and -f act on one)") }
    }

    func run() throws {
        try runRefCommand(.tag, global: global, name: name, startPoint: target, delete: delete, force: force, json: json)
    }
}

func runRefCommand(_ kind: RefKind, global: GlobalOptions, name: String?, startPoint: String, delete: Bool, force: Bool, json: Bool) throws {
    guard let name else {
        let repo = try global.openRepository(forWriting: false)
        let refs = try repo.listRefs(kind)
        if json { return try printJSON(refs) }
        // Names are padded to the longest (at least 24 columns), never cut. A detached HEAD is
        // listed first, as git does.
        var width = max(24, refs.map(\.name.count).max() ?? 0)
        let head = try repo.ledger.head()
        if kind == .branch, head.branchName == nil {
            let detached = "(HEAD detached at \(short(head.commit)))"
            width = max(width, detached.count)
            print("* \(detached.padding(toLength: width, withPad: " ", startingAt: 0)) \(short(head.commit))")
        }
        for r in refs { print("\(r.current ? "*" : " ") \(r.name.padding(toLength: width, withPad: " ", startingAt: 0)) \(short(r.commit))") }
        return
    }
    let repo = try global.openRepository(forWriting: true)
    if delete {
        let was = try repo.deleteRef(kind, name: name, force: force)
        struct Deleted: Encodable { var deleted: String; var kind: String; var commit: String }
        if json { return try printJSON(Deleted(deleted: name, kind: kind.rawValue, commit: was)) }
        if global.quiet { return }   // as git's -q
        print("Deleted \(kind.rawValue) \(name) (was \(short(was)))")
        return
    }
    let (r, before) = try repo.createRef(kind, name: name, at: startPoint, force: force)
    try warnIfBranchAndTagShare(name, created: kind, in: repo)
    if json { return try printJSON(r) }
    if global.quiet { return }   // as git's -q: no message (warnings still go to stderr)
    if before == r.commit {
        print("\(kind.rawValue.prefix(1).uppercased() + kind.rawValue.dropFirst()) \(r.name) already at \(short(r.commit)); unchanged")
    } else if let before {
        print("Moved \(kind.rawValue) \(r.name) to \(short(r.commit)) (was \(short(before)))")
    } else {
        print("Created \(kind.rawValue) \(r.name) at \(short(r.commit))")
    }
}

/// Warns when a branch or tag just created (or a branch renamed) shares its name with a ref of
/// the other kind: revisions take the branch (as `git checkout` does), so the tag is reached
/// only by its full name.
func warnIfBranchAndTagShare(_ name: String, created kind: RefKind, in repo: Repository) throws {
    let other: RefKind = kind == .branch ? .tag : .branch
    if try repo.listRefs(other).contains(where: { $0.name == name }) {
        warn("a \(other.rawValue) is named '\(name)' too; '\(name)' means the branch (the tag is refs/tags/\(name))")
    }
}
