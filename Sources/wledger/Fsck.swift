import ArgumentParser
import WLedgerKit

struct Fsck: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Verify every object, tensor version and commit in the ledger.",
        discussion: "Exits 1 when a problem is found. Example: wledger fsck")

    @OptionGroup var global: GlobalOptions
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let repo = try global.openRepository(forWriting: false)
        let r = try repo.fsck(progress: global.progress)
        if json { try printJSON(r) } else {
            for p in r.problems { print(p) }
            print("checked \(r.objects) objects, \(r.tensorVersions) tensor versions, \(r.commits) commits: \(r.ok ? "ok" : "\(r.problems.count) problem(s)")")
        }
        if !r.ok { throw ExitCode(1) }
    }
}
