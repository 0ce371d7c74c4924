import ArgumentParser
import WLedgerKit

struct Checkout: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "checkout",
        abstract: "Rewrite the work tree (or another directory) to a revision.",
        discussion: """
            A weight file that keeps its header (every tensor at the same offset) gets only its changed tensors \
            written, in place, unless --no-in-place; other changed files, and any file that is a symlink or has \
            another hard link or is read-only, are written to temporary files and renamed into place; unchanged files are left \
            alone. A killed checkout is finished by the next wledger command. \
            A changed tensor whose target version descends from the one the clean work tree holds continues from \
            those bytes (only the later patches applied). \
            Every rebuilt tensor is verified against its recorded fingerprint (and sha256 with --verify). \
            Uncommitted changes are kept when the switch leaves them alone, as git does (a modified tensor the \
            revision has as HEAD has it, in a file patched in place or not written; a side file changed, added or \
            deleted where the two agree; listed as M/A/D lines); any other is refused unless --force discards it. \
            Switching to HEAD's own commit under another name (a branch there, -b, or detached) writes nothing. \
            -b NAME creates branch NAME at the revision (default HEAD) and switches to it. \
            '-' is where the last checkout that moved HEAD came from.

            Examples: wledger checkout HEAD~3 --output /tmp/model-before-edit; wledger checkout -b rect HEAD~2; \
            wledger checkout -
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Revision: commit id prefix, branch, tag, HEAD~N or base (with -b, default HEAD); - for the previous one.") var revision: String?
    @Option(name: .customShort("b"), help: ArgumentHelp("Create this branch at the revision and switch to it.", valueName: "new-branch"))
    var newBranch: String?
    @Option(help: "Materialize into this (new or empty) directory; HEAD and the work tree stay as they are.") var output: String?
    @Flag(name: .shortAndLong, help: "Discard uncommitted changes in the work tree.") var force = false
    @Flag(help: "Also verify the sha256 of every rebuilt tensor.") var verify = false
    @Flag(inversion: .prefixedNo, help: "Write only the changed tensors into weight files that allow it (--no-in-place: write every changed file anew, so a process that has it mapped keeps the old weights; default: core.in-place of .wledger/config, else in place).")
    var inPlace: Bool?
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        if revision == nil && newBranch == nil { throw ValidationError("Missing expected argument '<revision>'") }
    }

    func run() throws {
        let repo = try global.openRepository(forWriting: output == nil)
        let r = try repo.checkout(revision ?? "HEAD", newBranch: newBranch, output: output, force: force, verifySHA256: verify,
                                  inPlace: inPlace, progress: global.progress)
        warnWorkTreeMismatches(r.workTreeMismatches)
        if r.branchCreated, let b = r.branch { try warnIfBranchAndTagShare(b, created: .branch, in: repo) }
        if json { return try printJSON(r) }
        if global.quiet { return }   // as git's -q: no summary either
        if output != nil {
            print("Wrote \(r.written.count) file(s) of \(short(r.commit)) to \(r.directory) (\(humanBytes(r.bytesWritten)))")
        } else {
            // Uncommitted changes the switch left alone, as git lists them (not untracked files).
            for t in r.carriedTensors { print("M\t\(t)") }
            for f in r.carriedSideFiles where f.change != .added { print("\(f.change.rawValue.prefix(1).uppercased())\t\(f.path)") }
            let continued = r.tensorsContinued > 0 ? " (\(r.tensorsContinued) continued from the work tree)" : ""
            let inPlace = r.patchedInPlace.isEmpty ? "" : ", \(r.patchedInPlace.count) of them in place; \(r.tensorsRebuilt) tensor(s) rebuilt\(continued)"
            let what = "(\(r.written.count) file(s) written\(inPlace), \(r.unchanged.count) unchanged)"
            let switched = r.branchCreated ? "Switched to a new branch" : "Switched to branch"
            print(r.branch.map { "\(switched) '\($0)' at \(short(r.commit)) \(what)" } ?? "HEAD is now at \(short(r.commit)) \(what)")
        }
    }
}
