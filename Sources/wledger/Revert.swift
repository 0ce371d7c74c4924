import ArgumentParser
import WLedgerKit

struct Revert: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revert",
        abstract: "Commit the inverse of one edit's ΔW onto HEAD (any commit, not only HEAD).",
        discussion: """
            For every tensor the commit changed, HEAD − ΔW_rev is computed in float64 and rounded to the tensor's \
            dtype; where HEAD still holds exactly what the commit wrote, the parent's bytes come back exactly. \
            Later edits to the same matrices are kept. Side files the commit changed go back to its parent's \
            version where HEAD has them as the commit left them (one changed since refuses), as git's revert. \
            Reverting a revert restores the edit. Untracked files stay.

            Example: wledger revert HEAD~3
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "The commit to revert.") var revision: String
    @Option(name: .shortAndLong, help: "Message (default: Revert \"<original message>\").") var message: String?
    @Option(help: "Author (default: $WLEDGER_AUTHOR or $USER).") var author: String?
    @Flag(help: "Skip the hooks in .wledger/hooks/.") var noVerify = false
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let message = try cleanedMessage(self.message)
        try refuseEmptyField(author, option: "--author")
        try recordCommit(global, noVerify: noVerify, json: json) { repo in
            try repo.revert(revision, message: message, author: author, progress: global.progress)
        }
    }
}

/// Runs a command that records one commit onto HEAD (`revert`, `cherry-pick`, `prune`,
/// `restrain`): opens the repository for writing with the hooks on unless `noVerify`, and prints
/// the result as JSON or as the commit's summary followed by `details`.
func recordCommit(_ global: GlobalOptions, noVerify: Bool, json: Bool, _ body: (Repository) throws -> RegularizerResult,
                  details: (RegularizerResult) -> Void = { _ in }) throws {
    let repo = try global.openRepository(forWriting: true)
    repo.verifyHooks = !noVerify
    let r = try body(repo)
    warnWorkTreeMismatches(r.commit.workTreeMismatches)
    if json { return try printJSON(r) }
    printCommitSummary(r.commit)
    details(r)
}

/// The two-line summary every committing command prints.
func printCommitSummary(_ r: CommitResult) {
    let files = r.files.isEmpty ? "" : ", \(r.files.count) file(s)"
    print("[\(r.branch ?? "detached HEAD") \(short(r.commit))] \(r.kind): \(r.tensors.count) tensor(s) changed\(files), stored \(humanBytes(r.storedBytes))")
    for t in r.tensors {
        print("   \(t.name): \(t.changed)/\(t.count) changed, Σ|ΔW| \(sci(t.l1)), ‖ΔW‖F \(sci(t.frobenius)), \(t.encoding) \(humanBytes(t.storedBytes))")
    }
    for f in r.files { print("   \(f)") }
}
