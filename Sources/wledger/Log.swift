import ArgumentParser
import WLedgerKit

struct Log: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show commit history.",
        discussion: "Example: wledger log --oneline")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Revision to start from.") var revision = "HEAD"
    @Flag(help: "One line per commit.") var oneline = false
    @Option(name: [.customShort("n"), .long], help: "Show at most this many commits.") var maxCount: Int?
    @Flag(help: "Print the result as JSON.") var json = false

    func run() throws {
        let repo = try global.openRepository(forWriting: false)
        let commits = try repo.log(from: revision, limit: maxCount ?? Int.max)
        if json { return try printJSON(commits) }
        for c in commits {
            let deco = c.refs.isEmpty ? "" : " (\(c.refs.joined(separator: ", ")))"
            if oneline {
                print("\(short(c.id))\(deco) \(c.kind): \(c.message.split(separator: "\n").first ?? "")")
                continue
            }
            print("commit \(c.id)\(deco)")
            print("Kind:   \(c.kind)\(c.method.map { " (\($0))" } ?? "")")
            print("Author: \(c.author)")
            print("Date:   \(c.date)")
            let s = c.summary
            if c.kind != "base" {
                print("Stats:  \(s.tensors) tensor(s), \(s.changedElements) elements changed, Σ|ΔW| \(sci(s.l1)), ‖ΔW‖F \(sci(s.frobenius)), stored \(humanBytes(s.storedBytes))")
            }
            print("")
            for line in c.message.split(separator: "\n", omittingEmptySubsequences: false) { print("    \(line)") }
            print("")
        }
    }
}
