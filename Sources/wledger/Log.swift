import ArgumentParser
import WLedgerKit

struct Log: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "log",
        abstract: "Show commit history.",
        discussion: "Examples: wledger log --oneline; wledger log main..rect (the commits of rect that main does not have); wledger log main...rect (both sides since they forked); wledger log --all --oneline (every branch and tag)")

    @OptionGroup var global: GlobalOptions
    @Argument(help: "Revision to start from (default HEAD), or a range A..B: B's commits that are not A's; A...B: the commits of either that the other lacks (an omitted side is HEAD).") var revision: String?
    @Flag(help: "The commits of every branch, tag and HEAD (and of the revision, if given), newest first.") var all = false
    @Flag(help: "One line per commit.") var oneline = false
    @Flag(help: "Add a ΔW summary: Σ|ΔW| and the condition number κ of each edited matrix before → after.") var stat = false
    @Option(name: [.customShort("n"), .long], parsing: .unconditional, help: "Show at most this many commits.") var maxCount: Int?
    @Flag(help: "Print the result as JSON.") var json = false

    func validate() throws {
        if let n = maxCount, n < 0 { throw ValidationError("-n must be 0 or more") }
    }

    func run() throws {
        let repo = try global.openRepository(forWriting: false)
        let commits = try repo.log(from: revision, all: all, limit: maxCount ?? Int.max, stat: stat)
        if json { return try printJSON(commits) }
        for c in commits {
            let deco = c.refs.isEmpty ? "" : " (\(c.refs.joined(separator: ", ")))"
            if oneline {
                print("\(short(c.id))\(deco) \(c.kind): \(c.message.split(separator: "\n").first ?? "")")
                if stat, c.kind != "base" { print("    \(statLine(c))") }
                continue
            }
            print("commit \(c.id)\(deco)")
            print("Kind:   \(c.kind)\(c.method.map { " (\($0))" } ?? "")")
            print("Author: \(c.author)")
            print("Date:   \(c.date)")
            let s = c.summary
            if c.kind != "base" {
                print("Stats:  \(s.tensors) tensor(s), \(s.changedElements) elements changed, Σ|ΔW| \(sci(s.l1)), ‖ΔW‖F \(sci(s.frobenius)), stored \(humanBytes(s.storedBytes))")
                if stat { print("        \(statLine(c))") }
            }
            print("")
            for line in c.message.split(separator: "\n", omittingEmptySubsequences: false) { print("    \(line)") }
            print("")
        }
    }
}

/// "Σ|ΔW| 5391, κ 18.20→18.31 (model.layers.3.mlp.down_proj.weight)".
func statLine(_ c: CommitInfo) -> String {
    var parts = ["Σ|ΔW| \(sci(c.summary.l1))"]
    for k in c.kappa ?? [] {
        parts.append("κ \(k.before.map { String(format: "%.2f", $0) } ?? "-")→\(k.after.map { String(format: "%.2f", $0) } ?? "-") (\(k.name))")
    }
    return parts.joined(separator: ", ")
}
