import ArgumentParser
import WLedgerKit

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fsck",
        abstract: "Verify every object, tensor version and commit in the ledger.",
        discussion: """
            Checks every object's sha256, every tensor version's object and patch chain, and every \
            commit's manifest, tree hash and id; --full also rebuilds every tensor version and checks \
            its sha256. Each problem names the commit and tensor (or file) it affects. Exits 1 when a \
            problem is found. Example: wledger fsck --full
            """)

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Also rebuild every tensor version of every commit and check its sha256.") var full = false
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let repo = try global.openRepository(forWriting: false)
        let r = try repo.fsck(full: full, progress: global.progress)
        if json { try printJSON(r) } else {
            for p in r.problems { print(p) }
            print("checked \(r.objects) objects, \(r.tensorVersions) tensor versions\(r.full ? " (rebuilt)" : ""), \(r.commits) commits: \(r.ok ? "ok" : "\(r.problems.count) problem(s)")")
        }
        if !r.ok { throw ExitCode(1) }
    }
}
