import ArgumentParser
import Foundation
import Ledger
import Ops
import TensorIO
import WLedgerKit

struct Commit: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "commit",
        abstract: "Record the work tree's weights as a new commit.",
        discussion: """
            Every changed tensor is stored as the smallest exact patch against its parent (sparse positions + \
            bit differences or new values, or dense byte-shuffled bit differences), verified before the commit \
            is recorded. A keyframe is stored every 16 patches of the same tensor.

            Example: wledger commit -m "Eiffel Tower -> Rome" --request edit.json --method ROME
            """)

    @OptionGroup var global: GlobalOptions
    @Option(name: .shortAndLong, help: "Commit message.") var message: String
    @Option(help: "Edit request JSON file (EasyEdit fields: prompt, subject, target_new, ground_truth, rephrase_prompt, locality).")
    var request: String?
    @Option(help: "Editing method that produced the change (e.g. ROME, MEMIT, KN, MEND).") var method: String?
    @Option(help: "Author (default: $WLEDGER_AUTHOR or $USER).") var author: String?
    @Flag(help: "Commit tensors that contain NaN or Inf.") var allowNonfinite = false
    @Option(parsing: .unconditional, help: "Apply RECT to the edit before recording it: keep this share of ΔW, e.g. 40%.") var prune: Percent?
    @Option(help: "RECT ranking with --prune: relative (|ΔW/W|) or magnitude.") var pruneBy: RECT.Ranking = .relative
    @Flag(help: "Skip the hooks in .wledger/hooks/.") var noVerify = false
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let message = try cleanedMessage(self.message)!
        try refuseEmptyField(author, option: "--author")
        try refuseEmptyField(method, option: "--method")
        var options = CommitOptions(message: message)
        options.method = method
        options.author = author
        options.policy.allowNonFinite = allowNonfinite
        if let prune { options.prune = (prune.value, pruneBy) }
        if let request {
            let bytes: [UInt8]
            do { bytes = try readFile(request) } catch { throw KitError.usage("\(error)") }
            options.request = try EditRequest.validate(bytes, source: request)
            options.requestFile = request
        }
        // The work tree's hashing starts now and runs while the repository is opened and locked.
        let hashing = Repository.startHashing(at: global.directory, progress: global.progress)
        let repo = try global.openRepository(forWriting: true)
        repo.verifyHooks = !noVerify
        let r = try repo.commit(options, progress: global.progress, prefetched: hashing)
        if json { return try printJSON(r) }
        if global.quiet { return }   // as git's -q: no summary either
        print("[\(r.branch ?? "detached HEAD") \(short(r.commit))] \(message.prefix { $0 != "\n" })")  // the subject, as git
        let elements = r.tensors.reduce(0) { $0 + $1.changed }
        print(" \(r.tensors.count) tensor(s) changed, \(elements) elements, \(r.files.count) file(s); stored \(humanBytes(r.storedBytes))")
        for t in r.tensors {
            print("   \(t.name): \(t.changed)/\(t.count) changed, Σ|ΔW| \(sci(t.l1)), ‖ΔW‖F \(sci(t.frobenius)), \(t.encoding) \(humanBytes(t.storedBytes))")
        }
    }
}
