import ArgumentParser
import WLedgerKit

struct Checkout: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Rewrite the work tree (or another directory) to a revision.",
        discussion: """
            Files are written to temporary files and renamed into place; unchanged files are left alone. \
            Every rebuilt tensor is verified against its recorded fingerprint (and sha256 with --verify). \
            Refuses to overwrite uncommitted changes unless --force.

            Example: wledger checkout HEAD~3 --output /tmp/model-before-edit
            """)

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Revision: commit id prefix, branch, tag, HEAD~N or base.") var revision: String
    @Option(help: "Materialize into this (new or empty) directory; HEAD and the work tree stay as they are.") var output: String?
    @Flag(name: .shortAndLong, help: "Discard uncommitted changes in the work tree.") var force = false
    @Flag(help: "Also verify the sha256 of every rebuilt tensor.") var verify = false
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let repo = try global.openRepository(forWriting: output == nil)
        let r = try repo.checkout(revision, output: output, force: force, verifySHA256: verify, progress: global.progress)
        if json { return try printJSON(r) }
        if output != nil {
            print("Wrote \(r.written.count) file(s) of \(short(r.commit)) to \(r.directory) (\(humanBytes(r.bytesWritten)))")
        } else if let b = r.branch {
            print("Switched to branch '\(b)' at \(short(r.commit)) (\(r.written.count) file(s) written, \(r.unchanged.count) unchanged)")
        } else {
            print("HEAD is now at \(short(r.commit)) (\(r.written.count) file(s) written, \(r.unchanged.count) unchanged)")
        }
    }
}
